"""Inverse-temperature schedules: shapes, endpoints, formulas and validation."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import expit

import rdppl
from rdppl.numerics.schedules import (
    geometric_schedule,
    linear_schedule,
    sigmoid_schedule,
    validate_schedule,
)

counts = st.integers(min_value=1, max_value=500)
beta_maxes = st.floats(min_value=1e-3, max_value=1e4)


@given(num=st.integers(1, 50), beta_max=beta_maxes)
def test_every_built_schedule_is_valid(num, beta_max):
    """What the builders return passes the validation every entry point applies."""
    for schedule in (
        rdppl.linear_schedule(num, beta_max=beta_max),
        rdppl.sigmoid_schedule(num, beta_max=beta_max),
        rdppl.geometric_schedule(num, beta_max=beta_max, beta_min=beta_max / 1e3),
    ):
        validated = validate_schedule(schedule)
        assert validated[0] == 0.0 and validated[-1] == pytest.approx(beta_max)
        assert len(validated) == num + 1


@given(num=counts, beta_max=beta_maxes)
def test_linear_schedule(num, beta_max):
    betas = linear_schedule(num, beta_max=beta_max)
    assert betas.shape == (num + 1,)
    assert betas.dtype == np.float64
    assert betas[0] == 0.0
    assert betas[-1] == beta_max
    np.testing.assert_allclose(np.diff(betas), beta_max / num, rtol=1e-9)
    np.testing.assert_array_equal(validate_schedule(betas), betas)


@given(
    num=counts,
    beta_max=beta_maxes,
    fraction=st.floats(min_value=1e-8, max_value=0.5),
)
def test_geometric_schedule(num, beta_max, fraction):
    beta_min = fraction * beta_max
    betas = geometric_schedule(num, beta_max=beta_max, beta_min=beta_min)
    assert betas.shape == (num + 1,)
    assert betas[0] == 0.0
    np.testing.assert_allclose(betas[-1], beta_max, rtol=1e-12)
    if num == 1:
        np.testing.assert_array_equal(betas, [0.0, beta_max])
    else:
        np.testing.assert_allclose(betas[1], beta_min, rtol=1e-12)
        # geometric: constant ratio between successive non-zero temperatures
        ratios = betas[2:] / betas[1:-1]
        np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)
    np.testing.assert_array_equal(validate_schedule(betas), betas)


@given(
    num=counts,
    beta_max=beta_maxes,
    radius=st.floats(min_value=0.1, max_value=12.0),
)
def test_sigmoid_schedule_formula(num, beta_max, radius):
    betas = sigmoid_schedule(num, beta_max=beta_max, radius=radius)
    # docs/math.md §3.1, computed independently with scipy's logistic function
    s = expit(np.linspace(-radius, radius, num + 1))
    expected = beta_max * (s - s[0]) / (s[-1] - s[0])
    assert betas.shape == (num + 1,)
    assert betas[0] == 0.0
    assert betas[-1] == beta_max
    np.testing.assert_allclose(betas, expected, rtol=1e-10, atol=1e-12 * beta_max)
    assert np.all(np.diff(betas) > 0)
    # sigmoid(t) + sigmoid(-t) = 1 makes the schedule symmetric about beta_max / 2
    np.testing.assert_allclose(
        betas + betas[::-1], beta_max, rtol=1e-9, atol=1e-12 * beta_max
    )
    np.testing.assert_array_equal(validate_schedule(betas), betas)


def test_sigmoid_schedule_defaults_and_crowding():
    betas = sigmoid_schedule(100)
    assert betas[-1] == 1.0
    s = expit(np.linspace(-4.0, 4.0, 101))  # default radius 4 (Wu et al.)
    np.testing.assert_allclose(betas, (s - s[0]) / (s[-1] - s[0]), rtol=1e-12)
    steps = np.diff(betas)
    # temperatures crowd near both ends: end steps are smaller than middle steps
    assert steps[0] < steps[50] and steps[-1] < steps[50]


def test_validate_schedule_accepts_any_increasing_array():
    spliced = np.concatenate(
        [linear_schedule(4, beta_max=1.0), 1.0 + np.geomspace(0.1, 100.0, 5)]
    )
    out = validate_schedule(spliced)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, spliced)
    np.testing.assert_array_equal(validate_schedule([0, 1, 3]), [0.0, 1.0, 3.0])


@pytest.mark.parametrize(
    ("schedule", "pattern"),
    [
        ([0.1, 0.5, 1.0], "must start at 0, got schedule[0] = 0.1"),
        ([-1.0, 0.0, 1.0], "must start at 0, got schedule[0] = -1.0"),
        (
            [0.0, 0.5, 0.5, 1.0],
            "strictly increasing, but schedule[2] = 0.5 <= schedule[1] = 0.5",
        ),
        (
            [0.0, 2.0, 1.0],
            "strictly increasing, but schedule[2] = 1.0 <= schedule[1] = 2.0",
        ),
        ([0.0, np.nan, 1.0], "schedule[1] = nan is not finite"),
        ([0.0, 1.0, np.inf], "schedule[2] = inf is not finite"),
        ([[0.0, 1.0]], "1-D array of at least 2 inverse temperatures, got shape (1, 2"),
        ([0.0], "got shape (1,)"),
        ([], "got shape (0,)"),
        (0.0, "got shape ()"),
    ],
)
def test_validate_schedule_rejects(schedule, pattern):
    with pytest.raises(ValueError, match=re.escape(pattern)):
        validate_schedule(schedule)


def test_validate_schedule_uses_argument_name():
    with pytest.raises(ValueError, match=re.escape("betas[0] = 0.5")):
        validate_schedule([0.5, 1.0], name="betas")


@pytest.mark.parametrize(
    "factory", [linear_schedule, geometric_schedule, sigmoid_schedule]
)
@pytest.mark.parametrize("num", [0, -3, 2.5])
def test_schedules_reject_bad_count(factory, num):
    with pytest.raises(ValueError, match=re.escape(f"got {num!r}")):
        factory(num)


@pytest.mark.parametrize(
    "factory", [linear_schedule, geometric_schedule, sigmoid_schedule]
)
@pytest.mark.parametrize("beta_max", [0.0, -1.0, np.inf, np.nan])
def test_schedules_reject_bad_beta_max(factory, beta_max):
    with pytest.raises(ValueError, match=f"beta_max .* got {beta_max!r}"):
        factory(10, beta_max=beta_max)


@pytest.mark.parametrize("beta_min", [0.0, -0.1, 1.0, 2.0])
def test_geometric_schedule_rejects_bad_beta_min(beta_min):
    with pytest.raises(ValueError, match=re.escape(f"got {beta_min!r}")):
        geometric_schedule(10, beta_max=1.0, beta_min=beta_min)


@pytest.mark.parametrize("radius", [0.0, -4.0, np.inf])
def test_sigmoid_schedule_rejects_bad_radius(radius):
    with pytest.raises(ValueError, match=f"radius .* got {radius!r}"):
        sigmoid_schedule(10, radius=radius)


def _pilot_tree(betas, variance):
    """A stand-in for an rd_curve result: only what the schedule reads."""
    import xarray as xr

    stats = xr.Dataset(
        {"distortion_variance": (("example", "beta"), np.atleast_2d(variance))},
        coords={"beta": betas},
    )
    return xr.DataTree.from_dict({"/sample_stats": stats})


def test_thermodynamic_schedule_from_a_pilot_matches_the_exact_one():
    """A pilot AIS run's variances give the schedule the exact ``Var[d]`` gives."""
    import jax
    from test_rd_curve import LINEAR, linear_problem

    from rdppl.numerics.analytic import linear_gaussian_rd

    W, b, x = linear_problem(2, 4, 0.5, seed=21)
    pilot_betas = rdppl.geometric_schedule(200, beta_max=50.0, beta_min=1e-2)
    pilot = rdppl.rd_curve(
        LINEAR,
        x,
        rng_key=jax.random.key(21),
        schedule=pilot_betas,
        num_chains=16,
        kernel=rdppl.HMC(num_leapfrog=10),
        model_args=(W, b, np.asarray(0.5)),
    )
    tuned = rdppl.thermodynamic_schedule(40, pilot)
    # exact Var_beta[d] = -dD/dbeta, by central differences of the closed form
    fine = np.concatenate([[0.0], np.geomspace(1e-4, 50.0, 4000)])
    distortion = linear_gaussian_rd(W, b, 0.5, x, fine).distortion
    variance = -np.gradient(distortion, fine, axis=1)
    exact = rdppl.thermodynamic_schedule(40, _pilot_tree(fine, variance))
    assert tuned[0] == 0.0 and tuned[-1] == 50.0 and len(tuned) == 41

    def step_lengths(schedule):
        """Exact thermodynamic length of each step of a schedule."""
        speed = np.sqrt(np.maximum(variance, 0.0)).mean(0)
        length = np.concatenate(
            [[0.0], np.cumsum(0.5 * (speed[1:] + speed[:-1]) * np.diff(fine))]
        )
        return np.diff(np.interp(schedule, fine, length))

    # the exact variances give equal steps (up to the quadrature)...
    exact_steps = step_lengths(exact)
    assert exact_steps.max() / exact_steps.min() < 1.05
    # ...and the pilot's nearly so, where generic schedules are far from it
    # (measured: 1.6 from the pilot; 5.9 geometric, 128 linear, 387 sigmoid)
    tuned_steps = step_lengths(tuned)
    assert tuned_steps.max() / tuned_steps.min() < 2.5
    for generic in (
        rdppl.linear_schedule(40, beta_max=50.0),
        rdppl.geometric_schedule(40, beta_max=50.0, beta_min=1e-2),
        rdppl.sigmoid_schedule(40, beta_max=50.0),
    ):
        steps = step_lengths(generic)
        assert steps.max() / steps.min() > 5.0


@given(num=st.integers(1, 50))
def test_thermodynamic_schedule_of_a_constant_speed_is_linear(num):
    betas = np.linspace(0.0, 3.0, 11)
    schedule = rdppl.thermodynamic_schedule(num, _pilot_tree(betas, np.full(11, 4.0)))
    np.testing.assert_allclose(schedule, np.linspace(0.0, 3.0, num + 1), atol=1e-12)


@pytest.mark.parametrize(
    "variance, pattern",
    [
        (np.zeros(11), "zero at every beta"),
        (np.r_[np.ones(10), np.nan], r"not finite at example 0, beta = 3.0"),
    ],
)
def test_thermodynamic_schedule_rejects_a_useless_pilot(variance, pattern):
    with pytest.raises(ValueError, match=pattern):
        rdppl.thermodynamic_schedule(5, _pilot_tree(np.linspace(0, 3, 11), variance))
    with pytest.raises(ValueError, match="pilot must be an rd_curve result"):
        rdppl.thermodynamic_schedule(5, {"sample_stats": {}})
