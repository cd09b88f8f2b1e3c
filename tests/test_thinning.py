"""A run kept at a few curve points: exact estimates there, sums in between."""

import jax
import numpy as np
import pytest

import rdppl
from rdppl.sampler import thinning
from rdppl.sampler.records import Tuning


@pytest.mark.parametrize(
    ("num_steps", "num_points", "expected"),
    [
        (10, None, list(range(11))),
        (10, 11, list(range(11))),
        (10, 50, list(range(11))),
        (10, 2, [0, 10]),
        (10, 3, [0, 5, 10]),
        (7, 4, [0, 2, 5, 7]),
    ],
)
def test_curve_points_keep_the_ends_and_spread_evenly(num_steps, num_points, expected):
    kept = thinning.curve_points(num_steps, num_points)
    np.testing.assert_array_equal(kept, expected)


def test_tuning_blocks_map_steps_to_rows_and_reverse():
    tuning = Tuning(
        np.array([[1.0], [2.0], [3.0]]),
        np.ones((3, 1, 1)),
        None,
        np.array([0, 4, 6]),
    )
    np.testing.assert_array_equal(tuning.rows(np.arange(8)), [0, 0, 0, 0, 1, 1, 2, 2])
    backwards = tuning.reversed(8)
    # reverse step i replays forward transition 7 - i
    np.testing.assert_array_equal(
        backwards.step_size[backwards.rows(np.arange(8)), 0],
        tuning.step_size[tuning.rows(7 - np.arange(8)), 0],
    )
    with pytest.raises(ValueError, match="num_steps"):
        tuning.reversed()


FIELDS_AT_POINTS = ("log_z", "distortion", "importance_ess", "pareto_khat")


def _run(linear_gaussian, num_curve_points, **options):
    model, _, _, _, data = linear_gaussian
    return rdppl.rd_curve(
        model,
        data,
        rng_key=jax.random.key(3),
        schedule=rdppl.geometric_schedule(40, beta_max=1.0),
        num_chains=6,
        chunk_size=16,  # blocks of 8 transitions straddle the segments
        num_curve_points=num_curve_points,
        **options,
    )


def test_frozen_run_kept_at_a_few_points_is_the_full_run_there(linear_gaussian):
    """Without a preliminary run both runs take identical steps: the thinned one
    holds the full one's estimates at its points and the block means between."""
    kernel = rdppl.HMC(num_leapfrog=2, step_size=0.3, adapt_step_size=False)
    full = _run(linear_gaussian, None, kernel=kernel)
    thin = _run(linear_gaussian, 6, kernel=kernel)
    kept = thinning.curve_points(40, 6)
    np.testing.assert_array_equal(
        thin["rate_distortion"]["beta"].values,
        full["rate_distortion"]["beta"].values[kept],
    )
    for group, name in [("rate_distortion", "log_z"), ("rate_distortion", "rate")]:
        np.testing.assert_array_equal(
            thin[group][name].values, full[group][name].values[..., kept]
        )
    for name in ("distortion", "importance_ess", "pareto_khat"):
        group = "rate_distortion" if name == "distortion" else "sample_stats"
        np.testing.assert_array_equal(
            thin[group][name].values, full[group][name].values[..., kept]
        )
    stats_full, stats_thin = full["sample_stats"], thin["sample_stats"]
    for block, (start, stop) in enumerate(zip(kept[:-1], kept[1:], strict=True)):
        np.testing.assert_allclose(
            stats_thin["acceptance_rate"].values[:, block + 1],
            stats_full["acceptance_rate"].values[:, start + 1 : stop + 1].mean(1),
            rtol=1e-6,
        )
        np.testing.assert_array_equal(
            stats_thin["num_divergent"].values[:, block + 1],
            stats_full["num_divergent"].values[:, start + 1 : stop + 1].sum(1),
        )
    assert (
        thin.attrs["num_gradient_evaluations"] == full.attrs["num_gradient_evaluations"]
    )


def test_as_many_points_as_temperatures_changes_nothing(linear_gaussian):
    full = _run(linear_gaussian, None)
    same = _run(linear_gaussian, 41)
    np.testing.assert_array_equal(
        same["rate_distortion"]["log_z"].values, full["rate_distortion"]["log_z"].values
    )
    np.testing.assert_array_equal(
        same["sample_stats"]["step_size"].values,
        full["sample_stats"]["step_size"].values,
    )


def test_reported_run_replays_one_setting_per_block(linear_gaussian):
    thin = _run(linear_gaussian, 5)
    step_size = thin["sample_stats"]["step_size"].values
    assert step_size.shape[-1] == 5 and np.all(np.isnan(step_size[:, 0]))
    assert np.all(np.isfinite(step_size[:, 1:])) and np.all(step_size[:, 1:] > 0)
    resampled = thin["sample_stats"]["resampled"].values
    assert resampled.shape[-1] == 5 and not resampled[:, 0].any()
    np.testing.assert_array_equal(
        thin["sample_stats"]["num_transitions"].values, [0, 10, 10, 10, 10]
    )


def test_bdmc_with_curve_points_keeps_its_bounds(linear_gaussian):
    model, _, _, _, data = linear_gaussian
    tree = rdppl.bdmc(
        model,
        data,
        rng_key=jax.random.key(0),
        betas=[1.0],
        schedule=rdppl.geometric_schedule(60, beta_max=1.0),
        num_examples=3,
        num_chains=4,
        num_curve_points=4,
    )
    gap = tree["bdmc"]["gap"].values
    assert np.all(np.isfinite(gap)) and gap.mean() < 1.0


def test_collect_keeps_only_the_blocks_arrays():
    """The recorder holds one row per block whatever the number of transitions."""
    recorder = thinning.Recorder(thinning.curve_points(1000, 3), 2, (1,))
    info = rdppl.sampler.ais.AISInfo(*[np.ones((250, 2), np.float32)] * 12)
    info = info._replace(
        num_nonfinite=np.zeros((250, 2), np.int32),
        num_divergent=np.ones((250, 2), np.int32),
        num_gradient_evaluations=np.full((250, 2), 3, np.int32),
    )
    decisions = np.random.default_rng(0).random((1000, 2)) < 0.01
    for start in range(0, 1000, 250):
        info = info._replace(resampled=decisions[start : start + 250])
        recorder.add(start, info, [np.ones((250, 2)), np.ones((250, 2, 1))])
    sizes = {name: value.shape for name, value in recorder.arrays.items()}
    assert sizes["used/0"] == (2, 2) and sizes["point/log_z"] == (2, 2)
    assert sizes["resampled"] == (125, 2)  # one bit per transition
    np.testing.assert_array_equal(recorder.decisions().to_bools(), decisions)
    np.testing.assert_array_equal(
        recorder.resampled_in_block(),
        np.logical_or.reduceat(decisions, recorder.starts, axis=0),
    )
    np.testing.assert_array_equal(recorder.transition("num_divergent"), 500)
    np.testing.assert_array_equal(recorder.transition("num_gradient_evaluations"), 1500)


@pytest.mark.parametrize("bad", [1, 0, -3, 2.5, True, "10"])
def test_a_bad_number_of_curve_points_is_named(linear_gaussian, bad):
    model, _, _, _, data = linear_gaussian
    with pytest.raises((ValueError, TypeError), match="num_curve_points"):
        rdppl.rd_curve(
            model,
            data,
            rng_key=jax.random.key(0),
            schedule=rdppl.geometric_schedule(10),
            num_curve_points=bad,
        )


def test_a_thinned_result_is_saved_read_summarised_and_plotted(
    linear_gaussian, tmp_path
):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    thin = _run(linear_gaussian, 5)
    path = tmp_path / "thin.nc"
    rdppl.results.to_netcdf(thin, path)
    read = rdppl.results.from_netcdf(path)
    np.testing.assert_array_equal(
        read["sample_stats"]["num_transitions"].values, [0, 10, 10, 10, 10]
    )
    summary = str(rdppl.summary(read))
    assert "40 temperatures" in summary and "rate_distortion" in summary
    figure = rdppl.plot.plot_diagnostics(read)
    assert figure is not None
    matplotlib.pyplot.close("all")
