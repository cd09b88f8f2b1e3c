"""Shared test settings: strict JAX, Hypothesis profiles, small reusable models."""

import os

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from hypothesis import HealthCheck, settings

import rdppl
from rdppl.sampler.mappings import release_compiled_programs

jax.config.update("jax_numpy_rank_promotion", "raise")
# mixed dtypes (float32 with float64, ints with floats) must be explicit in rdppl;
# tests marked `numpyro_promotion` sample NumPyro's discrete distributions, whose
# samplers mix bool and int (NumPyro's code, not rdppl's), under standard promotion
# (`nox -s x64` relaxes it: the tests' float32 model parameters meet float64 latents)
jax.config.update(
    "jax_numpy_dtype_promotion", os.environ.get("RDPPL_DTYPE_PROMOTION", "strict")
)


@pytest.fixture(autouse=True)
def _numpyro_promotion(request):
    if request.node.get_closest_marker("numpyro_promotion") is None:
        yield
        return
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.fixture(autouse=True)
def _below_the_mappings_limit():
    # every compiled program holds memory mappings and JAX keeps them cached: a
    # long-lived xdist worker would reach vm.max_map_count and XLA would abort it
    # mid-compilation. Clear the caches well before rdppl's own guard (at half the
    # limit) would, so that guard's RDWarning never fires inside a test.
    release_compiled_programs(0.25, warn=False)
    yield


# "default" keeps the suite fast; `nox -s slow` selects "thorough" (more examples).
settings.register_profile(
    "default",
    max_examples=6,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("RDPPL_HYPOTHESIS_PROFILE", "default"))


def make_linear_gaussian(latent_dim, observed_dim, sigma, seed=0):
    """A linear Gaussian decoder model and its parameters (W, b, sigma)."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(observed_dim, latent_dim)) / np.sqrt(latent_dim)
    b = rng.normal(size=observed_dim)

    @rdppl.model(observed="x", reconstruction="x_hat")
    def linear(x=None):
        z = numpyro.sample("z", dist.Normal(0, 1).expand([latent_dim]).to_event(1))
        x_hat = numpyro.deterministic("x_hat", W @ z + b)
        numpyro.sample("x", dist.Normal(x_hat, sigma).to_event(1), obs=x)

    return linear, W, b


def simulate_linear_gaussian(W, b, sigma, num_examples, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(num_examples, W.shape[1]))
    return z @ W.T + b + sigma * rng.normal(size=(num_examples, W.shape[0]))


@pytest.fixture(scope="session")
def linear_gaussian():
    """A small linear Gaussian model (k=2 -> n=4, sigma=0.5) with 3 examples."""
    model, W, b = make_linear_gaussian(2, 4, 0.5)
    data = simulate_linear_gaussian(W, b, 0.5, 3)
    return model, W, b, 0.5, data
