"""Bad input raises eagerly, with a message naming the problem and the bad value.

Every case here fails before anything is compiled, so the file is fast.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl
from rdppl.program.decorator import Model

W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])


@rdppl.model(observed="x", reconstruction="x_hat")
def linear(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", W @ z)
    numpyro.sample("x", dist.Normal(x_hat, 0.5).to_event(1), obs=x)


@rdppl.model(observed="x")
def no_reconstruction(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    numpyro.sample("x", dist.Normal(W @ z, 0.5).to_event(1), obs=x)


DATA = np.zeros((2, 4))


def call(model=linear, data=DATA, **overrides):
    arguments = {
        "rng_key": jax.random.key(0),
        "schedule": rdppl.linear_schedule(3),
        "num_chains": 2,
    }
    arguments.update(overrides)
    return rdppl.rd_curve(model, data, **arguments)


@pytest.mark.numpyro_promotion
def test_discrete_latent_site():
    @rdppl.model(observed="x")
    def mixture(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        c = numpyro.sample("c", dist.Bernoulli(0.5))
        numpyro.sample("x", dist.Normal(z + c, 1.0), obs=x)

    with pytest.raises(ValueError, match="latent site 'c' has a discrete distribution"):
        call(mixture, np.zeros(2))


def test_unknown_observed_site():
    with pytest.raises(
        ValueError,
        match=re.escape("observed site 'y' is not a sample site of the model; its "),
    ):
        call(observed="y")
    with pytest.raises(ValueError, match="observed site 'x_hat' is not a sample site"):
        call(observed="x_hat")


def test_unknown_reconstruction_site():
    with pytest.raises(ValueError, match="reconstruction site 'y' is not in the model"):
        call(reconstruction="y", distortion="squared_error")


def test_squared_error_without_reconstruction():
    with pytest.raises(
        ValueError, match="distortion 'squared_error' needs a reconstruction site"
    ):
        call(no_reconstruction, distortion="squared_error")
    with pytest.raises(ValueError, match="user distortion function.*reconstruction"):
        call(no_reconstruction, distortion=lambda x, x_hat: jnp.sum(x - x_hat))


@pytest.mark.parametrize(
    ("shape", "bad"),
    [((2, 5), "(5,)"), ((2, 4, 1), "(4, 1)"), ((3,), "()")],
)
def test_data_with_mismatched_trailing_shape(shape, bad):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"observed site 'x', (4,), but has shape {bad}",
        ),
    ):
        call(data=np.zeros(shape))


@pytest.mark.parametrize(
    ("data", "error", "pattern"),
    [
        (np.zeros((0, 4)), ValueError, "at least one example, got shape (0, 4)"),
        (np.zeros(()), ValueError, "got shape ()"),
        (np.full((2, 4), np.nan), ValueError, "data[0, 0] = nan"),
        (np.array([["a"] * 4]), TypeError, "data must be numeric, got dtype <U1"),
    ],
)
def test_bad_data(data, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call(data=data)


@pytest.mark.parametrize(
    ("schedule", "pattern"),
    [
        ([0.1, 0.5, 1.0], "schedule must start at 0, got schedule[0] = 0.1"),
        ([0.0, 1.0, 0.5], "schedule[2] = 0.5 <= schedule[1] = 1.0"),
        ([0.0, 1.0, 1.0], "schedule[2] = 1.0 <= schedule[1] = 1.0"),
        ([0.0, np.inf], "schedule[1] = inf is not finite"),
        ([[0.0, 1.0]], "got shape (1, 2)"),
    ],
)
def test_bad_schedule(schedule, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        call(schedule=schedule)


@pytest.mark.parametrize("num_chains", [0, -1, 1.5, True, "4"])
def test_bad_num_chains(num_chains):
    with pytest.raises(
        ValueError,
        match=re.escape(f"num_chains must be a positive integer, got {num_chains!r}"),
    ):
        call(num_chains=num_chains)


@pytest.mark.parametrize("kernel", ["hmc", rdppl.HMC, object()])
def test_wrong_kernel_type(kernel):
    with pytest.raises(
        TypeError,
        match=re.escape(
            "kernel must be rdppl.HMC(...), rdppl.NUTS(...) or "
            f"rdppl.BlackJAXKernel(step=...), got {kernel!r}"
        ),
    ):
        call(kernel=kernel)


@pytest.mark.parametrize(
    ("rng_key", "error", "pattern"),
    [
        (None, TypeError, "rng_key is required"),
        # the default dtypes: int32 and float32, or int64 and float64 with x64
        (0, TypeError, f"got dtype {jnp.asarray(0).dtype} and shape ()"),
        (
            np.array([0.0, 1.0]),
            TypeError,
            f"got dtype {jnp.asarray(0.0).dtype} and shape (2,)",
        ),
        (
            jax.random.split(jax.random.PRNGKey(0), 2),
            TypeError,
            "got dtype uint32 and shape (2, 2)",
        ),
        (
            jax.random.split(jax.random.key(0), 2),
            ValueError,
            "rng_key must be a single key, got shape (2,)",
        ),
    ],
)
def test_missing_or_invalid_rng_key(rng_key, error, pattern):
    with pytest.raises(error, match=re.escape(pattern)):
        call(rng_key=rng_key)


def test_missing_rng_key_argument():
    with pytest.raises(TypeError, match="rng_key"):
        rdppl.rd_curve(linear, DATA, schedule=[0.0, 1.0])


def test_unknown_distortion_name():
    # An unknown name is a bad *value* of the right type: ValueError, naming it.
    with pytest.raises(ValueError, match=re.escape("got 'mse'")):
        call(distortion="mse")


def test_distortion_of_wrong_type():
    with pytest.raises(TypeError, match=re.escape("or a callable d(x, x_hat)")):
        call(distortion=3)


def test_distortion_function_must_return_a_scalar():
    with pytest.raises(ValueError, match=re.escape("got shape (4,)")):
        call(distortion=lambda x, x_hat: (x - x_hat) ** 2)


def plain(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(z, 1.0), obs=x)


def test_plain_callable_without_observed():
    with pytest.raises(ValueError, match=re.escape("needs observed='site name'")):
        call(plain, np.zeros(2))
    with pytest.raises(TypeError, match="model must be a NumPyro program, got 3"):
        call(3, np.zeros(2), observed="x")


def test_other_observed_sites():
    def extra_observation(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(z, 1.0), obs=1.0)
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def factor(x=None):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.factor("penalty", -(z**2))
        numpyro.sample("x", dist.Normal(z, 1.0), obs=x)

    with pytest.raises(ValueError, match=re.escape("other than 'x': ['y']")):
        call(extra_observation, np.zeros(2), observed="x")
    with pytest.raises(ValueError, match=re.escape("other than 'x': ['penalty']")):
        call(factor, np.zeros(2), observed="x")


def test_model_without_latent_sites():
    def no_latents(x=None):
        numpyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    with pytest.raises(ValueError, match="no latent sample sites"):
        call(no_latents, np.zeros(2), observed="x")


def test_bad_site_names_in_model():
    with pytest.raises(TypeError, match="observed must be a non-empty site name"):
        rdppl.model(plain, observed="")
    with pytest.raises(TypeError, match="reconstruction must be a site name or None"):
        rdppl.model(plain, observed="x", reconstruction=1)
    with pytest.raises(TypeError, match="model must be callable, got 'abc'"):
        Model("abc", "x")


@pytest.mark.parametrize(
    ("factory", "kwargs", "pattern"),
    [
        (
            rdppl.HMC,
            {"num_leapfrog": 0},
            "num_leapfrog must be a positive integer, got 0",
        ),
        (rdppl.HMC, {"num_leapfrog": 2.5}, "got 2.5"),
        (rdppl.HMC, {"step_size": 0.0}, "step_size must be positive, got 0.0"),
        (rdppl.NUTS, {"step_size": -1.0}, "step_size must be positive, got -1.0"),
        (rdppl.HMC, {"target_acceptance": 1.0}, "target_acceptance must lie in"),
        (rdppl.NUTS, {"target_acceptance": 0.0}, "got 0.0"),
        (rdppl.HMC, {"step_size_bounds": (0.5, 0.1)}, "got (0.5, 0.1)"),
        (rdppl.HMC, {"step_size_bounds": (0.0, 0.1)}, "0 < low <= high"),
        (rdppl.HMC, {"acceptance_smoothing": 1.0}, "got 1.0"),
        (rdppl.NUTS, {"max_num_doublings": 0}, "integer in [1, 15], got 0"),
        (rdppl.NUTS, {"max_num_doublings": 16}, "got 16"),
    ],
)
def test_bad_kernel_settings(factory, kwargs, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        factory(**kwargs)


def test_bad_chunk_size():
    with pytest.raises(
        ValueError, match=re.escape("chunk_size must be a positive integer, got 0")
    ):
        call(chunk_size=0)
