"""Resampling (AIS as a sequential Monte Carlo sampler, docs/math.md §3.7).

The estimate of ``E[Zhat] = Z`` with resampling is checked with every other option
in ``test_numerics.py::test_every_option_keeps_the_estimate_unbiased``; here: the
resampling step keeps ``log Z``, draws ancestors in proportion to the weights, is
decided by the preliminary run and replayed, moves onto a tuned schedule, and is
validated.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_linear_gaussian, simulate_linear_gaussian

import rdppl
from rdppl import estimators
from rdppl.sampler import ais
from rdppl.sampler.protocol import _move_resampling
from rdppl.sampler.runner import Tuning


def linear_problem(num_examples):
    model, W, b = make_linear_gaussian(3, 6, 0.5, seed=3)
    return model, simulate_linear_gaussian(W, b, 0.5, num_examples, seed=4)


def test_resampling_keeps_log_z_and_draws_in_proportion_to_the_weights():
    """Each half of the chains is resampled from its own weights (R-hat's blocks)."""
    weight = np.array([0.1, 0.6, 0.0, 0.3])
    log_weight = jnp.log(jnp.asarray(weight)) - 2.0
    keys = jax.random.split(jax.random.key(0), 4000)
    index, new_log_weight, resampled = jax.vmap(
        lambda k: ais._resampling(k, log_weight, jnp.asarray(0.9))
    )(keys)
    assert bool(jnp.all(resampled))
    assert ais.resampling_blocks(4) == (2, 2)
    # every chain gets its block's log mean weight: log mean exp is unchanged
    halves = np.log([weight[:2].mean(), weight[2:].mean()]) - 2.0
    np.testing.assert_allclose(
        new_log_weight, np.broadcast_to(np.repeat(halves, 2), (4000, 4)), rtol=1e-6
    )
    np.testing.assert_allclose(
        jax.vmap(estimators.log_mean_exp)(new_log_weight),
        float(estimators.log_mean_exp(log_weight)),
        rtol=1e-6,
    )
    index = np.asarray(index)
    assert np.all(index[:, :2] < 2) and np.all(index[:, 2:] >= 2)  # within halves
    counts = np.asarray(
        jax.vmap(lambda i: jnp.bincount(i, length=4))(index), np.float64
    )
    # systematic resampling: each count is floor or ceil of (block size) * w
    expected = 2 * np.concatenate([weight[:2] / 0.7, weight[2:] / 0.3])
    assert np.all(counts >= np.floor(expected - 1e-9))
    assert np.all(counts <= np.ceil(expected + 1e-9))
    mean = counts.mean(0)
    error = counts.std(0, ddof=1) / np.sqrt(len(counts)) + 1e-12
    assert np.all(np.abs(mean - expected) <= 5 * error + 1e-9), (mean, expected)


def test_odd_numbers_of_chains_resample_in_unequal_halves():
    log_weight = jnp.log(jnp.asarray([0.2, 0.3, 0.5, 0.1, 0.9]))
    index, new_log_weight, _ = ais._resampling(
        jax.random.key(1), log_weight, jnp.asarray(jnp.inf)
    )
    index = np.asarray(index)
    assert np.all(index[:3] < 3) and np.all((index[3:] >= 3) & (index[3:] < 5))
    np.testing.assert_allclose(
        np.exp(np.asarray(new_log_weight)),
        [1 / 3, 1 / 3, 1 / 3, 0.5, 0.5],
        rtol=1e-5,
    )


def test_no_resampling_above_the_threshold_or_when_all_chains_are_dead():
    equal = jnp.zeros(4)
    index, log_weight, resampled = ais._resampling(
        jax.random.key(1), equal, jnp.asarray(1.0)
    )
    assert not bool(resampled)
    np.testing.assert_array_equal(index, np.arange(4))
    dead = jnp.full(4, -jnp.inf)
    index, log_weight, resampled = ais._resampling(
        jax.random.key(1), dead, jnp.asarray(jnp.inf)
    )
    assert not bool(resampled)
    assert bool(jnp.all(jnp.isneginf(log_weight)))


def test_resampling_is_decided_by_the_preliminary_run_and_replayed():
    model, data = linear_problem(3)
    kwargs = dict(
        rng_key=jax.random.key(2),
        schedule=rdppl.linear_schedule(30, beta_max=20.0),
        num_chains=8,
        kernel=rdppl.HMC(num_leapfrog=3),
        # 4 preliminary chains: with 2, an ESS below half of them cannot happen
        preliminary_chains=4,
    )
    plain = rdppl.rd_curve(model, data, resample_threshold=0, **kwargs)
    resampled = rdppl.rd_curve(model, data, resample_threshold=0.5, **kwargs)
    flags = resampled["sample_stats"]["resampled"].values
    assert flags.dtype == bool and flags.shape == (3, 31)
    assert flags.any() and not flags[:, 0].any()
    assert not plain["sample_stats"]["resampled"].values.any()
    assert resampled.attrs["resample_threshold"] == 0.5
    # resampled at beta_j (after its weight increment): equal weights within each
    # half of the chains (resampled apart), so at least a half's full ESS
    ess = resampled["sample_stats"]["importance_ess"].values[flags]
    assert np.all((ess >= 4.0 * (1 - 1e-4)) & (ess <= 8.0 * (1 + 1e-4)))
    # the same key and settings give the same run
    again = rdppl.rd_curve(model, data, resample_threshold=0.5, **kwargs)
    np.testing.assert_array_equal(
        again["rate_distortion"]["log_z"].values,
        resampled["rate_distortion"]["log_z"].values,
    )


def test_resampling_decisions_move_onto_a_new_schedule():
    betas = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    resample = np.array([[0], [1], [0], [1], [0]], bool)  # at beta 2 and 4
    moved = _move_resampling(resample, betas, np.array([0.0, 2.5, 3.0, 5.0]))
    # new transitions (0, 2.5], (2.5, 3], (3, 5]
    np.testing.assert_array_equal(moved.to_bools()[:, 0], [True, False, True])
    assert _move_resampling(None, betas, betas) is None
    tuning = Tuning(np.ones((5, 1)), np.ones((5, 1, 1)), resample)
    assert tuning.reversed().resample is None
    np.testing.assert_array_equal(
        tuning.resample_thresholds()[:, 0], [0, np.inf, 0, np.inf, 0]
    )


@pytest.mark.parametrize(
    "value, error, match",
    [
        (-0.1, ValueError, r"resample_threshold .* \(0, 1\], got -0.1"),
        (1.5, ValueError, r"resample_threshold .* got 1.5"),
        (float("nan"), ValueError, "resample_threshold"),
        ("0.5", TypeError, "resample_threshold must be None, 0 or a number"),
        (True, TypeError, "resample_threshold must be None, 0 or a number"),
    ],
)
def test_bad_resample_threshold_is_named(value, error, match):
    model, data = linear_problem(2)
    with pytest.raises(error, match=match):
        rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(0),
            schedule=rdppl.linear_schedule(3, beta_max=1.0),
            resample_threshold=value,
        )


def test_resampling_needs_the_preliminary_run():
    model, data = linear_problem(2)
    with pytest.raises(ValueError, match="resample_threshold needs the preliminary"):
        rdppl.log_likelihood(
            model,
            data,
            rng_key=jax.random.key(0),
            kernel=rdppl.HMC(adapt_step_size=False),
            resample_threshold=0.5,
        )
