"""The main job: an RD curve of an embedded linear Gaussian decoder, checked exactly.

``python -m rdppl demo`` runs AIS on a linear Gaussian decoder (8 latents, 32
observed dimensions) over simulated data, prints the estimated curve beside the closed
form (docs/math.md §8), and writes the result tree (netCDF) and a figure (PNG).
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rdppl.program.decorator import Model

# JAX, NumPyro and the AIS modules are imported inside the functions, so that
# ``rdppl --help`` (which builds this command's parser) stays fast.

__all__ = ["add_arguments", "check_options", "linear_gaussian_decoder", "main", "run"]

#: temperatures the demo's curve is kept at (its estimates there are exact)
CURVE_POINTS = 1000


def linear_gaussian_decoder(
    latent_dim: int = 8, observed_dim: int = 32, sigma: float = 0.3, seed: int = 0
) -> tuple[Model, np.ndarray, np.ndarray, float]:
    """The demo's model: ``z ~ N(0, I)``, ``x ~ N(W z + b, sigma^2 I)``.

    Returns
    -------
    model, W, b, sigma
    """
    import numpyro
    import numpyro.distributions as dist

    from rdppl.program.decorator import model

    rng = np.random.default_rng(seed)
    W = rng.normal(size=(observed_dim, latent_dim)) / np.sqrt(latent_dim)
    b = rng.normal(scale=0.5, size=observed_dim)

    @model(observed="x", reconstruction="x_hat")
    def decoder(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        x_hat = numpyro.deterministic("x_hat", W @ z + b)
        numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)

    return decoder, W, b, sigma


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (shared by ``rdppl demo`` and main)."""
    parser.add_argument(
        "--out", default="rdppl-demo", help="output directory (default: %(default)s)"
    )
    parser.add_argument(
        "--num-temperatures",
        type=int,
        default=20_000,
        help="AIS temperatures after beta = 0 (default: %(default)s; the curve is "
        "kept at 1000 of them)",
    )
    parser.add_argument(
        "--num-chains", type=int, default=16, help="chains (default: %(default)s)"
    )
    parser.add_argument(
        "--num-examples",
        type=int,
        default=10,
        help="simulated examples (default: %(default)s)",
    )
    parser.add_argument(
        "--beta-max",
        type=float,
        default=20.0,
        help="largest inverse temperature (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed (default: %(default)s)"
    )
    return parser


DESCRIPTION = (
    "RD curve of a linear Gaussian decoder (8 latents, 32 observed dimensions) by AIS, "
    "printed beside its closed form; writes OUT/rd_curve.nc and OUT/rd_curve.png"
)


def check_options(options: argparse.Namespace) -> None:
    """Check the demo's options before any work, with one-line messages.

    Parameters
    ----------
    options
        Parsed options (see :func:`add_arguments`).

    Raises
    ------
    ValueError
        If a count is not a positive integer or ``--beta-max`` is not positive.
    """
    for name in ("num_temperatures", "num_chains", "num_examples"):
        value = getattr(options, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    if not options.beta_max > 0:  # also rejects NaN
        raise ValueError(f"--beta-max must be positive, got {options.beta_max}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo with command-line arguments; returns a process exit code."""
    parser = argparse.ArgumentParser(prog="rdppl demo", description=DESCRIPTION)
    return run(add_arguments(parser).parse_args(argv))


def run(options: argparse.Namespace) -> int:
    """Run the demo with parsed options (see :func:`add_arguments`); returns 0."""
    check_options(options)
    import jax

    from rdppl import results
    from rdppl.numerics import analytic
    from rdppl.numerics.schedules import sigmoid_schedule
    from rdppl.rd import rd_curve

    out = pathlib.Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    decoder, W, b, sigma = linear_gaussian_decoder(seed=options.seed)
    rng = np.random.default_rng(options.seed + 1)
    z = rng.normal(size=(options.num_examples, W.shape[1]))
    data = z @ W.T + b + sigma * rng.normal(size=(options.num_examples, W.shape[0]))
    schedule = sigmoid_schedule(options.num_temperatures, beta_max=options.beta_max)

    print(
        f"rdppl demo: linear Gaussian decoder z={W.shape[1]} -> x={W.shape[0]}, "
        f"{options.num_examples} examples, {options.num_chains} chains, "
        f"{options.num_temperatures} temperatures, Hamiltonian AIS (the default "
        "kernel: one leapfrog step per temperature) "
        f"(jax backend: {jax.default_backend()})"
    )
    start = time.perf_counter()
    tree = rd_curve(
        decoder,
        data,
        rng_key=jax.random.key(options.seed),
        schedule=schedule,
        num_chains=options.num_chains,
        num_curve_points=min(CURVE_POINTS, options.num_temperatures + 1),
    )
    elapsed = time.perf_counter() - start
    curve = tree["rate_distortion"]
    schedule = curve["beta"].values  # the schedule the reported run used (tuned)
    exact = analytic.linear_gaussian_rd(W, b, sigma, data, schedule)

    print(
        f"AIS wall time {elapsed:.1f} s (compilation included), "
        f"{tree.attrs['num_gradient_evaluations']:,} gradient evaluations"
    )
    print(f"{'beta':>9} {'rate':>9} {'exact':>9} {'distortion':>11} {'exact':>9}")
    for beta in (0.05, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, options.beta_max):
        index = int(np.argmin(np.abs(schedule - beta)))
        print(
            f"{schedule[index]:9.3f} "
            f"{float(curve['rate'][:, index].mean()):9.3f} "
            f"{exact.rate[:, index].mean():9.3f} "
            f"{float(curve['distortion'][:, index].mean()):11.3f} "
            f"{exact.distortion[:, index].mean():9.3f}"
        )
    error = np.abs(curve["log_z"].values[:, -1] - exact.log_z[:, -1]).mean()
    print(f"mean |log Z error| at beta_max: {error:.3f} nats")

    netcdf_path = out / "rd_curve.nc"
    results.to_netcdf(tree, netcdf_path)
    print(f"wrote {netcdf_path}")
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "matplotlib is not installed: skipped the figure (pip install rdppl[plot])"
        )
        return 0
    from rdppl.plot import plot_rd_curve

    ax = plot_rd_curve(tree, label="AIS (rdppl)", log_distortion=True)
    ax.plot(exact.distortion.mean(0), exact.rate.mean(0), "k:", label="closed form")
    ax.legend(fontsize="small")
    figure_path = out / "rd_curve.png"
    ax.figure.savefig(figure_path, dpi=120, bbox_inches="tight")
    plt.close(ax.figure)
    print(f"wrote {figure_path}")
    return 0
