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
    # two chains of 128 draws, each resampled from its own 128 AIS chains
    assert posterior.sizes["chain"] == 2 and posterior.sizes["draw"] == 128
    assert posterior.attrs["ais_chains_per_chain"] == 128
    assert posterior.attrs["sample_dims"] == ["chain", "draw"]
    assert set(posterior.data_vars) == {"scale", "z", "doubled"}
    np.testing.assert_array_equal(posterior["beta"].values, [0.0, 0.49, 1.0])
    z = weighted["z"].values
    log_weight = weighted["log_weight"].values
    for chain in range(2):
        block = slice(128 * chain, 128 * (chain + 1))
        # the block's own normalised weights
        block_weight = np.exp(
            log_weight[..., block] - log_weight[..., block].max(-1)[..., None]
        )
        block_weight /= block_weight.sum(-1)[..., None]
        draws = posterior["z"].values[chain]  # (draw, example, beta)
        for example in range(3):
            for b in range(3):
                values = z[example, b, block]
                # every draw is one of the block's AIS chains
                assert np.all(np.isin(draws[:, example, b], values))
                # systematic resampling: chain i is drawn floor or ceil(D w_i) times
                counts = np.array(
                    [np.sum(draws[:, example, b] == value) for value in values]
                )
                expected = 128 * block_weight[example, b]
                assert np.all(np.abs(counts - expected) < 1 + 1e-6)
        # beta = 0: equal weights, so every AIS chain of the block is drawn once
        np.testing.assert_array_equal(
            np.sort(draws[:, :, 0], axis=0), np.sort(z[:, 0, block].T, axis=0)
        )


def test_blocks_that_do_not_divide_and_blocks_without_weight():
    from rdppl.results import posterior_groups

    rng = np.random.default_rng(0)
    values = {"z": rng.normal(size=(2, 1, 5))}
    log_weight = rng.normal(size=(2, 1, 5))
    log_weight[1, 0, 3:] = -np.inf  # example 1: the second block has no weight
    groups = posterior_groups(
        values, log_weight, np.array([1.0]), rng_key=jax.random.key(0)
    )
    draws = groups["posterior"]["z"]
    # 5 AIS chains: blocks of 3 and 2, each resampled to 3 draws
    assert draws.sizes["chain"] == 2 and draws.sizes["draw"] == 3
    assert groups["posterior"].attrs["ais_chains_per_chain"] == 3
    assert np.all(np.isin(draws.values[0, :, 0, 0], values["z"][0, 0, :3]))
    assert np.all(np.isin(draws.values[1, :, 0, 0], values["z"][0, 0, 3:]))
    assert np.all(np.isnan(draws.values[1, :, 1, 0]))
    assert np.all(np.isin(draws.values[0, :, 1, 0], values["z"][1, 0, :3]))
    # one AIS chain: one chain; 9 AIS chains in 4 blocks: 3 blocks of 3
    one = posterior_groups(
        {"z": values["z"][..., :1]},
        log_weight[..., :1],
        np.array([1.0]),
        rng_key=jax.random.key(0),
    )["posterior"]
    assert (one.sizes["chain"], one.sizes["draw"]) == (1, 1)
    nine = posterior_groups(
        {"z": rng.normal(size=(1, 1, 9))},
        np.zeros((1, 1, 9)),
        np.array([1.0]),
        rng_key=jax.random.key(0),
        posterior_chains=4,
    )["posterior"]
    assert (nine.sizes["chain"], nine.sizes["draw"]) == (3, 3)


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


def test_posterior_at_selects_one_example_and_the_nearest_beta(result):
    one = rdppl.posterior_at(result, example=1, beta=0.5)  # nearest: 0.49
    assert set(one.children) == {
        "posterior",
        "weighted_posterior",
        "observed_data",
        "rate_distortion",
        "sample_stats",
    }
    assert one["posterior"]["z"].dims == ("chain", "draw")
    assert float(one["posterior"]["beta"]) == 0.49
    assert int(one["posterior"]["example"]) == 1
    assert one["posterior"].attrs["sample_dims"] == ["chain", "draw"]
    np.testing.assert_array_equal(
        one["posterior"]["z"], result["posterior"]["z"].sel(example=1, beta=0.49)
    )
    assert one["weighted_posterior"]["weight"].dims == ("ais_chain",)
    assert float(one["observed_data"]["x"]) == -0.0  # example 1 is x = 0
    assert one["rate_distortion"]["rate"].shape == ()
    assert float(one["rate_distortion"]["beta"]) == 0.49
    assert one.attrs == result.attrs


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"example": 3, "beta": 1.0}, r"examples \(0 to 2\), got 3"),
        ({"example": -1, "beta": 1.0}, r"examples \(0 to 2\), got -1"),
        ({"example": 1.0, "beta": 1.0}, r"example must be an integer .* got 1.0"),
        ({"example": True, "beta": 1.0}, r"example must be an integer .* got True"),
        ({"example": 0, "beta": 1.5}, r"\[0.0, 0.49, 1.0\] .*, got 1.5"),
        ({"example": 0, "beta": -0.1}, r"beta must lie within .* got -0.1"),
        ({"example": 0, "beta": float("nan")}, r"beta must lie within .* got nan"),
        ({"example": 0, "beta": "one"}, r"beta must lie within .* got 'one'"),
    ],
)
def test_posterior_at_names_the_bad_argument(result, arguments, message):
    with pytest.raises(ValueError, match=message):
        rdppl.posterior_at(result, **arguments)


def test_posterior_at_needs_a_posterior(result):
    without = result.copy()
    for group in ("posterior", "weighted_posterior"):
        del without[group]
    with pytest.raises(ValueError, match=r"no posterior group.*posterior_betas"):
        rdppl.posterior_at(without, example=0, beta=1.0)
    with pytest.raises(TypeError, match="expected an xarray.DataTree, got Dataset"):
        rdppl.posterior_at(result["posterior"].to_dataset(), example=0, beta=1.0)
