"""Problems with exact log Z at every beta for ``benchmarks/peers.py``.

Each problem is a NumPyro program for rdppl, the same log-likelihood written in JAX
for BlackJAX (standard normal prior on unconstrained ``z``), float32 data drawn from
the model with a fixed seed, and the exact ``log Z_beta(x)`` in float64:

- ``linear10``: linear Gaussian decoder 10 -> 64 pixels, unit noise, beta to 50
  (``benchmarks/thermodynamic_schedule.py``'s ``linear_problem`` with seed 3);
- ``linear50``: 50 -> 784 pixels, unit noise, beta to 1;
- ``illcond20``: 20 -> 100 pixels, ``W = U diag(s) V^T`` with singular values
  log-spaced from 100 down to 0.1 (condition number 1e3; the posterior's
  precision spans 1.01 to 1e4), unit noise, beta to 1;
- ``tanh2``: 2 latents -> 32 pixels through ``tanh(A z + c)``, noise 0.3, beta to
  10; log Z by the rectangle rule on a 2-D grid (spacing 0.025 on [-7, 7]^2,
  checked against spacing 0.0125 when built) at 201 reference betas, and
  cubic Hermite interpolation in beta with the exact derivative ``E_beta[log p(x|z)]``
  in between (checked against direct quadrature at random betas when built).

The exact answers use the float32-rounded weights and data, i.e. the model that
was actually run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from thermodynamic_schedule import LINEAR, linear_problem  # noqa: E402

import rdppl  # noqa: E402
from rdppl.analytic import linear_gaussian_rd  # noqa: E402


@rdppl.model(observed="x", reconstruction="x_hat")
def TANH(A, c, sigma, x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([A.shape[1]]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", jnp.tanh(A @ z + c))
    numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)


def linear_decode(params, z):
    W, b, _ = params
    return W @ z + b


def tanh_decode(params, z):
    A, c, _ = params
    return jnp.tanh(A @ z + c)


def gaussian_log_likelihood(x, x_hat, sigma):
    """``log N(x; x_hat, sigma^2 I)`` summed over pixels (what rdppl's nll uses)."""
    n = x.shape[-1]
    return (
        -0.5 * jnp.sum(((x - x_hat) / sigma) ** 2)
        - n * jnp.log(sigma)
        - 0.5 * n * math.log(2.0 * math.pi)
    )


@dataclasses.dataclass
class Problem:
    """One benchmark problem.

    ``exact(example, betas)`` is the exact ``log Z_beta`` (float64) of one example.
    ``decode(model_args, z)`` is the decoder in JAX for the SMC side; the noise
    standard deviation is ``model_args[2]``.
    """

    name: str
    description: str
    beta_max: float
    latent_dim: int
    x: np.ndarray
    model: Any
    model_args: tuple
    decode: Callable
    exact: Callable[[int, np.ndarray], np.ndarray]


def _linear(name, description, W, b, sigma, x, beta_max):
    W32, b32, x = W.astype(np.float32), b.astype(np.float32), x.astype(np.float32)
    W64, b64, x64 = (a.astype(np.float64) for a in (W32, b32, x))
    sigma32 = np.float32(sigma)

    def exact(example, betas):
        betas = np.asarray(betas, np.float64)
        return linear_gaussian_rd(W64, b64, float(sigma32), x64[example], betas).log_z[
            0
        ]

    return Problem(
        name,
        description,
        beta_max,
        W.shape[1],
        x,
        LINEAR,
        (W32, b32, np.asarray(sigma32)),
        linear_decode,
        exact,
    )


def linear10(num_examples):
    W, b, x = linear_problem(10, 64, 1.0, seed=3, num_examples=num_examples)
    description = "linear 10 -> 64, unit noise, beta to 50"
    return _linear("linear10", description, W, b, 1.0, x, 50.0)


def linear50(num_examples):
    W, b, x = linear_problem(50, 784, 1.0, seed=7, num_examples=num_examples)
    description = "linear 50 -> 784, unit noise, beta to 1"
    return _linear("linear50", description, W, b, 1.0, x, 1.0)


def illcond20(num_examples):
    rng = np.random.default_rng(11)
    U, _ = np.linalg.qr(rng.normal(size=(100, 20)))
    V, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    s = np.logspace(2.0, -1.0, 20)  # condition number 1e3
    W = (U * s) @ V.T
    b = rng.normal(size=100)
    z = rng.normal(size=(num_examples, 20))
    x = z @ W.T + b + rng.normal(size=(num_examples, 100))
    description = "linear 20 -> 100, cond(W) = 1e3, unit noise, beta to 1"
    return _linear("illcond20", description, W, b, 1.0, x, 1.0)


class GridLogZ:
    """Exact log Z_beta of a 2-latent model by quadrature on a uniform grid.

    On a uniform grid the rectangle rule is spectrally accurate for smooth,
    rapidly decaying integrands once the spacing is below the posterior's width
    (here 0.025 against a narrowest posterior standard deviation of about 0.02 at
    beta 10; halving the spacing changes log Z by about 1e-7).
    """

    def __init__(
        self, log_likelihood_grid, beta_max, spacing=0.025, radius=7.0, references=200
    ):
        self.log_likelihood_grid = log_likelihood_grid
        self.beta_max = beta_max
        self.spacing, self.radius = spacing, radius
        self.reference = np.concatenate(
            [[0.0], np.geomspace(1e-6 * beta_max, beta_max, references)]
        )
        lp, ll = self._grid(spacing)
        self.log_z, self.slope = self._direct(lp, ll, self.reference)

    def _grid(self, spacing):
        g = np.arange(-self.radius, self.radius + spacing / 2, spacing)
        z1, z2 = np.meshgrid(g, g, indexing="ij")
        z = np.stack([z1.ravel(), z2.ravel()], 1)
        log_prior = -0.5 * np.sum(z**2, 1) - np.log(2 * np.pi) + 2 * np.log(spacing)
        return log_prior, self.log_likelihood_grid(z)

    @staticmethod
    def _direct(lp, ll, betas):
        """log Z and d log Z / d beta = E_beta[log p(x|z)] at each beta."""
        log_z, slope = np.empty(len(betas)), np.empty(len(betas))
        for j, beta in enumerate(betas):
            f = lp + beta * ll
            m = f.max()
            w = np.exp(f - m)
            total = w.sum()
            log_z[j] = m + np.log(total)
            slope[j] = (w @ ll) / total
        return log_z, slope

    def check(self, rng):
        """Largest discrepancy of the grid (against half the spacing) and of the
        interpolation (against direct quadrature at random betas)."""
        betas = np.array([0.0, 1e-3, 0.03, 0.1, 1.0]) * self.beta_max
        coarse = self._direct(*self._grid(self.spacing), betas)[0]
        fine = self._direct(*self._grid(self.spacing / 2), betas)[0]
        random = self.beta_max * np.concatenate(
            [rng.uniform(0, 1, 6), 10 ** rng.uniform(-5, 0, 6)]
        )
        direct = self._direct(*self._grid(self.spacing), random)[0]
        return float(np.abs(coarse - fine).max()), float(
            np.abs(direct - self(random)).max()
        )

    def __call__(self, betas):
        betas = np.asarray(betas, np.float64)
        ref, f, d = self.reference, self.log_z, self.slope
        j = np.clip(np.searchsorted(ref, betas, side="right") - 1, 0, len(ref) - 2)
        h = ref[j + 1] - ref[j]
        t = (betas - ref[j]) / h
        h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
        h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
        return h00 * f[j] + h10 * h * d[j] + h01 * f[j + 1] + h11 * h * d[j + 1]


def tanh2(num_examples, check=True):
    rng = np.random.default_rng(17)
    n, k, sigma, beta_max = 32, 2, 0.3, 10.0
    A = rng.normal(size=(n, k)).astype(np.float32)
    c = (0.5 * rng.normal(size=n)).astype(np.float32)
    sigma32 = np.float32(sigma)
    z = rng.normal(size=(num_examples, k))
    x = (np.tanh(z @ A.T + c) + sigma * rng.normal(size=(num_examples, n))).astype(
        np.float32
    )
    A64, c64, x64, s64 = A.astype(np.float64), c.astype(np.float64), x, float(sigma32)

    def grid_function(example):
        def log_likelihood(zs):
            out = np.empty(len(zs))
            for start in range(0, len(zs), 65536):
                x_hat = np.tanh(zs[start : start + 65536] @ A64.T + c64)
                out[start : start + 65536] = (
                    -0.5 * np.sum(((x64[example] - x_hat) / s64) ** 2, 1)
                    - n * np.log(s64)
                    - 0.5 * n * np.log(2 * np.pi)
                )
            return out

        return log_likelihood

    exact_per_example = [
        GridLogZ(grid_function(e), beta_max) for e in range(num_examples)
    ]
    if check:
        grid_error, interpolation_error = exact_per_example[0].check(
            np.random.default_rng(0)
        )
        if grid_error > 1e-6 or interpolation_error > 1e-5:
            raise RuntimeError(
                f"tanh2 quadrature not converged: grid {grid_error:.2e}, "
                f"interpolation {interpolation_error:.2e}"
            )

    def exact(example, betas):
        return exact_per_example[example](betas)

    return Problem(
        "tanh2",
        "tanh decoder 2 -> 32, noise 0.3, beta to 10 (exact by 2-D quadrature)",
        beta_max,
        k,
        x,
        TANH,
        (A, c, np.asarray(sigma32)),
        tanh_decode,
        exact,
    )


PROBLEMS = {
    "linear10": linear10,
    "linear50": linear50,
    "illcond20": illcond20,
    "tanh2": tanh2,
}
