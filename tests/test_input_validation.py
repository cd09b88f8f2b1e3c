"""Bad input that used to pass silently, or fail without naming the argument.

Every case fails eagerly, before anything is compiled (issue 12).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl


@rdppl.model(observed="x", reconstruction="x_hat")
def linear(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", 2.0 * z)
    numpyro.sample("x", dist.Normal(x_hat, 0.5).to_event(1), obs=x)


@rdppl.model(observed="x")
def poisson(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Poisson(jnp.exp(z)), obs=x)


@rdppl.model(observed="x")
def bernoulli(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    numpyro.sample("x", dist.Bernoulli(logits=z).to_event(1), obs=x)


@rdppl.model(observed="x")
def uniform_up_to_latent(x=None):
    z = numpyro.sample("z", dist.LogNormal(0.0, 1.0))
    numpyro.sample("x", dist.Uniform(0.0, z), obs=x)


DATA = np.zeros((2, 2))


def call(model=linear, data=DATA, **overrides):
    arguments = {
        "rng_key": jax.random.key(0),
        "schedule": rdppl.linear_schedule(2),
        "num_chains": 2,
        "kernel": rdppl.HMC(num_leapfrog=1),
    }
    arguments.update(overrides)
    return rdppl.rd_curve(model, data, **arguments)


@pytest.mark.parametrize("num_chains", [None, float("nan"), 2.5, True, np.ones(2)])
def test_num_chains_not_a_positive_integer(num_chains):
    with pytest.raises(
        ValueError,
        match=re.escape(f"num_chains must be a positive integer, got {num_chains!r}"),
    ):
        call(num_chains=num_chains)


def test_numpy_generator_as_rng_key():
    with pytest.raises(
        TypeError,
        match=r"rng_key must be a JAX key, got a NumPy Generator .*"
        r"rng_key=jax\.random\.key\(seed\)",
    ):
        call(rng_key=np.random.default_rng(0))


@pytest.mark.parametrize(
    ("data", "error", "pattern"),
    [
        ([[1.0, 2.0], [3.0]], ValueError, "data must be a rectangular array"),
        ("abc", TypeError, "data must be numeric, got the string 'abc'"),
        (np.ones((3, 2), complex), TypeError, "data must be real, got dtype complex"),
        (
            np.array([[1.0, None], [2.0, 3.0]], dtype=object),
            TypeError,
            "data must be numeric, got dtype object",
        ),
    ],
)
def test_data_not_a_real_array(data, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call(data=data)


def test_data_overflowing_the_run_dtype():
    data = np.array([[1.0, 2.0], [1e39, 0.0]])
    if jnp.result_type(float) == jnp.float64:
        pytest.skip("1e39 is finite in float64")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "data must be finite in the run's float dtype float32, but "
            "data[1, 0] = 1e+39 overflows to inf"
        ),
    ):
        call(data=data)


@pytest.mark.parametrize(
    ("model", "data", "pattern"),
    [
        (
            poisson,
            [1.0, 2.5, 0.0],
            "data[1] = 2.5 is outside the support of observed "
            "site 'x' (Poisson with support IntegerNonnegative",
        ),
        (
            poisson,
            [1.0, 0.0, -3.0],
            "data[2] = -3.0 is outside the support of observed site 'x' (Poisson",
        ),
        (
            bernoulli,
            [[0.0, 1.0], [1.0, 2.0]],
            "data[1] = [1. 2.] is outside the support of observed site 'x' (Bernoulli",
        ),
        (bernoulli, [[0.5, 1.0]], "data[0] = [0.5 1. ] is outside"),
    ],
)
def test_data_outside_the_observed_support(model, data, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        call(model, np.asarray(data))


def test_support_check_covers_every_example():
    data = np.zeros(10_000)
    data[9_876] = 0.5
    with pytest.raises(ValueError, match=re.escape("data[9876] = 0.5 is outside")):
        call(poisson, data)


def test_latent_dependent_support_is_not_checked():
    # Uniform(0, z): whether 5.0 is possible depends on z, so no eager error; the
    # failure (if any) comes from tracing the schedule, not the support check
    from rdppl.validation import validate_observed_support

    validate_observed_support(
        uniform_up_to_latent, jnp.asarray([0.5, 5.0]), observed="x"
    )


@pytest.mark.parametrize(
    ("reconstruction", "pattern"),
    [
        (
            "x",
            "reconstruction site 'x' is the observed site; it must be a "
            "numpyro.deterministic site computed from the latents",
        ),
        (
            "z",
            "reconstruction site 'z' is a sample site (a latent); it must be a "
            "numpyro.deterministic site computed from the latents",
        ),
    ],
)
def test_reconstruction_not_a_deterministic_site(reconstruction, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        call(reconstruction=reconstruction, distortion="squared_error")


def test_deterministic_named_like_a_sample_site():
    @rdppl.model(observed="x")
    def duplicate(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.deterministic("z", 2.0 * z)
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(
        ValueError, match=r"two sites of the model share a name .*`z` duplicated"
    ):
        call(duplicate, np.zeros(2))
