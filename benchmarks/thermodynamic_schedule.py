"""log Z error of AIS with generic schedules and with a pilot-tuned one, same K.

Linear Gaussian decoder, 10 latents -> 64 pixels, unit noise, ``nll`` distortion,
32 examples, 16 chains, HMC with 10 leapfrog steps, 200 temperatures to
``beta_max = 50``. The thermodynamic schedule comes from a pilot run (100 geometric
temperatures, 8 chains: a quarter of the reported run's gradient evaluations). The
error is the mean over examples of ``log Zhat - log Z`` against the closed form.

Run: ``python benchmarks/thermodynamic_schedule.py`` (about a minute on 2 cores).
"""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

import rdppl
from rdppl.analytic import linear_gaussian_rd

BETA_MAX, K = 50.0, 200


@rdppl.model(observed="x", reconstruction="x_hat")
def LINEAR(W, b, sigma, x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([W.shape[1]]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", W @ z + b)
    numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)


def linear_problem(latent_dim, observed_dim, sigma, seed, num_examples=32):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(observed_dim, latent_dim)) / np.sqrt(latent_dim)
    b = rng.normal(size=observed_dim)
    z = rng.normal(size=(num_examples, latent_dim))
    x = z @ W.T + b + sigma * rng.normal(size=(num_examples, observed_dim))
    return W, b, x


def main():
    W, b, x = linear_problem(10, 64, 1.0, seed=3)
    model_args = (W, b, np.asarray(1.0))
    kernel = rdppl.HMC(num_leapfrog=10)
    pilot = rdppl.rd_curve(
        LINEAR,
        x,
        rng_key=jax.random.key(0),
        schedule=rdppl.geometric_schedule(100, beta_max=BETA_MAX, beta_min=1e-3),
        num_chains=8,
        kernel=kernel,
        model_args=model_args,
    )
    schedules = {
        "sigmoid (radius 10)": rdppl.sigmoid_schedule(K, beta_max=BETA_MAX, radius=10),
        "geometric": rdppl.geometric_schedule(K, beta_max=BETA_MAX, beta_min=1e-3),
        "thermodynamic (pilot)": rdppl.thermodynamic_schedule(K, pilot),
    }
    print(f"pilot: {pilot.attrs['num_gradient_evaluations']:,} gradient evaluations")
    for name, schedule in schedules.items():
        tree = rdppl.rd_curve(
            LINEAR,
            x,
            rng_key=jax.random.key(1),
            schedule=schedule,
            num_chains=16,
            kernel=kernel,
            model_args=model_args,
        )
        exact = linear_gaussian_rd(W, b, 1.0, x, schedule)
        error = tree["rate_distortion"]["log_z"].values - exact.log_z
        print(
            f"{name:22s} mean log Z error at beta_max {error[:, -1].mean():+.3f}, "
            f"worst over beta {np.abs(error.mean(0)).max():.3f}, "
            f"{tree.attrs['num_gradient_evaluations']:,} gradient evaluations"
        )


if __name__ == "__main__":
    main()
