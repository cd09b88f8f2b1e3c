"""Programs that read their observed argument (``x.shape``) work in every entry point.

NumPyro programs commonly size plates from the data. rdppl calls the program with
each example as its observed argument; only simulation (BDMC) runs it with a
template of the example's shape instead of data.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl
from rdppl.numerics.analytic import linear_gaussian_log_marginal

W = np.array([[1.0, -0.5], [0.3, 2.0], [-1.2, 0.4], [0.5, 0.5]])
SIGMA = 0.5
SCHEDULE = rdppl.sigmoid_schedule(64, beta_max=2.0)
KERNEL = rdppl.HMC(num_leapfrog=5)


@rdppl.model(observed="x", reconstruction="x_hat")
def reads_shape(x=None):
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
    x_hat = numpyro.deterministic("x_hat", jnp.asarray(W) @ z)
    with numpyro.plate("pixels", x.shape[0]):
        numpyro.sample("x", dist.Normal(x_hat, SIGMA), obs=x)


DATA = np.random.default_rng(0).normal(size=(4, 4))
COMMON = {"rng_key": jax.random.key(0), "num_chains": 4, "kernel": KERNEL}


def test_rd_curve_with_posterior_and_bdmc():
    tree = rdppl.rd_curve(
        reads_shape,
        DATA,
        schedule=SCHEDULE,
        posterior_betas=[1.0],
        bdmc_betas=[2.0],
        bdmc_num_examples=2,
        distortion="squared_error",
        **COMMON,
    )
    assert np.all(np.isfinite(tree["rate_distortion"]["log_z"].values))
    assert tree["sample_stats"].attrs["target_acceptance"] == KERNEL.target_acceptance
    assert tree["weighted_posterior"]["x_hat"].shape == (4, 1, 4, 4)
    assert tree["posterior"]["x_hat"].shape == (2, 2, 4, 1, 4)  # chain, draw, ...
    assert np.all(np.isfinite(tree["bdmc"]["gap"].values))


def test_bdmc_takes_a_template_from_data_and_explains_when_it_has_none():
    tree = rdppl.bdmc(
        reads_shape, DATA, betas=[1.0], schedule=SCHEDULE, num_examples=2, **COMMON
    )
    assert tree["observed_data"]["x"].shape == (2, 1, 4)
    with pytest.raises(ValueError, match="Pass an example array as data="):
        rdppl.bdmc(reads_shape, betas=[1.0], schedule=SCHEDULE, **COMMON)


@pytest.mark.parametrize("method", ["ais", "importance", "iwae", "ais_encoder"])
def test_log_likelihood(method):
    encoder = None
    if method in ("iwae", "ais_encoder"):

        def encoder(x):
            return jnp.zeros(2), jnp.ones(2)

    tree = rdppl.log_likelihood(
        reads_shape,
        DATA,
        method=method,
        num_temperatures=64,
        encoder=encoder,
        num_samples=1024,
        rng_key=jax.random.key(0),
        num_chains=64,
        kernel=KERNEL,
    )
    estimate = tree["log_marginal_likelihood"]["log_marginal_likelihood"].values
    exact = linear_gaussian_log_marginal(W, np.zeros(4), SIGMA, DATA)
    assert estimate.shape == (4,)
    # close for this small model (64 AIS chains or 1024 importance samples; the
    # spread of these estimates is a few tenths of a nat)
    np.testing.assert_allclose(estimate, exact, atol=1.0)


def test_variational_bounds():
    def encoder(x):
        return jnp.zeros(2), jnp.ones(2)

    tree = rdppl.variational_bounds(
        reads_shape, DATA, encoder=encoder, rng_key=jax.random.key(1)
    )
    # the encoder is the prior: zero rate
    np.testing.assert_allclose(tree["variational_bounds"]["rate"], 0.0, atol=1e-6)
