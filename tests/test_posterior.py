"""The optional posterior group: weighted chains at chosen temperatures."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import rdppl

SIGMA = 0.7


@rdppl.model(observed="x")
def normal_normal(x=None):
    scale = numpyro.sample("scale", dist.Gamma(3.0, 3.0))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0))
    numpyro.sample("x", dist.Normal(z, SIGMA), obs=x)
    numpyro.deterministic("doubled", 2.0 * z * scale / scale)


@pytest.fixture(scope="module")
def result():
    data = np.array([-1.5, 0.0, 2.0])
    return rdppl.rd_curve(
        normal_normal,
        data,
        rng_key=jax.random.key(3),
        schedule=rdppl.linear_schedule(60, beta_max=1.0),
        num_chains=256,
        kernel=rdppl.HMC(num_leapfrog=5),
        posterior_betas=[0.0, 0.49, 1.0],
    )


def test_groups_dims_and_weights(result):
    weighted = result["weighted_posterior"]
    assert weighted["z"].dims == ("example", "beta", "ais_chain")
    assert weighted["weight"].dims == ("example", "beta", "ais_chain")
    # The requested temperatures, inserted into the schedule exactly (0.49 is not
    # on the grid of step 1/60).
    np.testing.assert_array_equal(weighted["beta"].values, [0.0, 0.49, 1.0])
    curve_betas = result["rate_distortion"]["beta"].values
    assert 0.49 in curve_betas and len(curve_betas) == 62
    assert set(weighted.data_vars) == {"scale", "z", "doubled", "log_weight", "weight"}
    np.testing.assert_allclose(
        weighted["weight"].sum("ais_chain").values, 1.0, rtol=1e-6
    )
    # Constrained space: the Gamma site is positive.
    assert float(weighted["scale"].min()) > 0
    np.testing.assert_allclose(
        weighted["doubled"].values, 2.0 * weighted["z"].values, rtol=1e-5
    )


def test_equal_weight_posterior_dims_and_draws(result):
    posterior = result["posterior"]
    weighted = result["weighted_posterior"]
    assert posterior["z"].dims == ("chain", "draw", "example", "beta")
    assert posterior.sizes["chain"] == 1 and posterior.sizes["draw"] == 256
    assert set(posterior.data_vars) == {"scale", "z", "doubled"}
    np.testing.assert_array_equal(posterior["beta"].values, [0.0, 0.49, 1.0])
    # every draw is one of the weighted chains, and only chains with weight
    z = weighted["z"].values
    weight = weighted["weight"].values
    draws = posterior["z"].values[0]  # (draw, example, beta)
    for example in range(3):
        for b in range(3):
            chosen = np.isin(z[example, b], draws[:, example, b])
            assert chosen.any()
            assert np.all(weight[example, b][chosen] > 0)
            # systematic resampling: chain i is drawn floor or ceil(M w_i) times
            counts = np.array(
                [np.sum(draws[:, example, b] == value) for value in z[example, b]]
            )
            expected = 256 * weight[example, b]
            assert np.all(np.abs(counts - expected) < 1 + 1e-6)
    # beta = 0: equal weights, so every chain is drawn exactly once
    np.testing.assert_array_equal(
        np.sort(draws[:, :, 0], axis=0), np.sort(z[:, 0].T, axis=0)
    )


def test_equal_weight_draws_are_deterministic(result):
    again = rdppl.rd_curve(
        normal_normal,
        np.array([-1.5, 0.0, 2.0]),
        rng_key=jax.random.key(3),
        schedule=rdppl.linear_schedule(60, beta_max=1.0),
        num_chains=256,
        kernel=rdppl.HMC(num_leapfrog=5),
        posterior_betas=[0.0, 0.49, 1.0],
    )
    np.testing.assert_array_equal(again["posterior"]["z"], result["posterior"]["z"])


def _weighted_mean_and_error(values, weights):
    mean = np.sum(weights * values, axis=-1)
    variance = np.sum(weights * (values - mean[..., None]) ** 2, axis=-1)
    ess = 1.0 / np.sum(weights**2, axis=-1)
    return mean, np.sqrt(variance / ess)


def test_prior_and_posterior_moments(result):
    weighted = result["weighted_posterior"]
    weights = weighted["weight"]
    x = result["observed_data"]["x"].values
    # beta = 0: the prior (Gamma(3, 3) has mean 1; N(0, 1) has mean 0).
    scale0, error0 = _weighted_mean_and_error(
        weighted["scale"].sel(beta=0.0).values, weights.sel(beta=0.0).values
    )
    np.testing.assert_array_less(np.abs(scale0 - 1.0), 5 * error0)
    # beta = 1: the conjugate posterior mean of z is x / (1 + sigma^2).
    z1, error1 = _weighted_mean_and_error(
        weighted["z"].sel(beta=1.0).values, weights.sel(beta=1.0).values
    )
    np.testing.assert_array_less(np.abs(z1 - x / (1 + SIGMA**2)), 5 * error1 + 0.02)
    # the equal-weight draws agree with the weighted means within their error
    draws = result["posterior"]["z"].sel(beta=1.0).mean(("chain", "draw")).values
    np.testing.assert_array_less(np.abs(draws - z1), 5 * error1)


def test_posterior_betas_outside_schedule():
    with pytest.raises(ValueError, match=r"posterior_betas \[2.0\] lie outside"):
        rdppl.rd_curve(
            normal_normal,
            np.zeros(2),
            rng_key=jax.random.key(0),
            schedule=rdppl.linear_schedule(5, beta_max=1.0),
            posterior_betas=[2.0],
        )


def test_round_trip(result, tmp_path):
    rdppl.to_netcdf(result, tmp_path / "posterior.nc")
    again = rdppl.from_netcdf(tmp_path / "posterior.nc")
    np.testing.assert_array_equal(again["posterior"]["z"], result["posterior"]["z"])
