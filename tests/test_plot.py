"""Figures: the plotted data, read back from the matplotlib objects."""

import numpy as np
import pytest
import xarray as xr

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.patches import PathPatch  # noqa: E402

from rdppl import plot  # noqa: E402

BETAS = np.array([0.0, 0.1, 0.3, 1.0, 3.0, 10.0])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def curve_tree(seed=0, *, name="rd_curve", num_examples=4, shuffle=True, bdmc=False):
    """A hand-made result: a decreasing RD curve per example, betas out of order."""
    rng = np.random.default_rng(seed)
    scale = 1.0 + 0.3 * rng.random((num_examples, 1))
    distortion = scale * 20.0 / (1.0 + BETAS) + 0.1 * rng.normal(
        size=(num_examples, BETAS.size)
    )
    rate = scale * np.log1p(BETAS) + 0.1 * rng.random((num_examples, BETAS.size))
    order = rng.permutation(BETAS.size) if shuffle else np.arange(BETAS.size)
    dims = ("example", "beta")
    coords = {"example": np.arange(num_examples), "beta": BETAS[order]}
    curve = xr.Dataset(
        {
            "rate": (dims, rate[:, order]),
            "distortion": (dims, distortion[:, order]),
            "log_z": (dims, (-BETAS * distortion - rate)[:, order]),
        },
        coords=coords,
    )
    groups = {"rate_distortion": curve}
    if bdmc:
        betas = np.array([1.0, 3.0])
        lower = -rng.random((num_examples, 2)) - 5.0
        gap = 1.0 + rng.random((num_examples, 2))
        groups["bdmc"] = xr.Dataset(
            {
                "lower": (dims, lower),
                "upper": (dims, lower + gap),
                "gap": (dims, gap),
                "distortion": (dims, 5.0 + rng.random((num_examples, 2))),
            },
            coords={"example": np.arange(num_examples), "beta": betas},
        )
    return xr.DataTree.from_dict(groups, name=name)


def sorted_means(tree, variable):
    dataset = tree["rate_distortion"].to_dataset().sortby("beta")
    return dataset[variable].mean("example").values


def test_curve_is_the_mean_over_examples_in_beta_order():
    tree = curve_tree()
    assert np.any(np.diff(tree["rate_distortion"]["beta"].values) < 0)  # shuffled
    ax = plot.plot_rd_curve(tree)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), sorted_means(tree, "distortion"))
    np.testing.assert_allclose(line.get_ydata(), sorted_means(tree, "rate"))
    # drawn in beta order: the mean distortion falls and the rate rises throughout
    assert np.all(np.diff(line.get_xdata()) < 0)
    assert np.all(np.diff(line.get_ydata()) > 0)
    assert line.get_label() == "rd_curve"
    assert ax.get_xscale() == "linear"  # no "L" to unfold
    assert ax.get_xlabel() == "distortion (per example)"  # units unknown
    assert ax.get_ylabel() == "rate (nats per example)"
    tree["rate_distortion"]["distortion"].attrs["units"] = "nats"
    ax = plot.plot_rd_curve(tree, ax=plt.figure().gca())
    assert ax.get_xlabel() == "distortion (nats per example)"


def test_band_spans_two_standard_errors_of_the_rate():
    tree = curve_tree(num_examples=5)
    ax = plot.plot_rd_curve(tree)
    (band,) = rd_bands(ax)
    vertices = band.get_path().vertices
    rate = tree["rate_distortion"]["rate"].sortby("beta")
    mean = rate.mean("example").values
    error = rate.std("example", ddof=1).values / np.sqrt(5)
    distortion = sorted_means(tree, "distortion")
    for x, low, high in zip(
        distortion, mean - 2 * error, mean + 2 * error, strict=True
    ):
        at = vertices[np.isclose(vertices[:, 0], x)]
        np.testing.assert_allclose([at[:, 1].min(), at[:, 1].max()], [low, high])
    # a different width, and none
    ax = plot.plot_rd_curve(tree, band=1.0, ax=plt.figure().gca())
    (narrow,) = rd_bands(ax)
    assert np.ptp(narrow.get_path().vertices[:, 1]) < np.ptp(vertices[:, 1])
    ax = plot.plot_rd_curve(tree, band=None, ax=plt.figure().gca())
    assert not rd_bands(ax)
    # a single example has no band
    ax = plot.plot_rd_curve(curve_tree(num_examples=1), ax=plt.figure().gca())
    assert not rd_bands(ax)


def rd_bands(ax):
    """The standard-error bands of an RD figure (one patch per curve)."""
    return [p for p in ax.patches if isinstance(p, PathPatch)]


def legend_labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_several_results_each_with_its_own_label():
    first, second = curve_tree(0), curve_tree(1)
    ax = plot.plot_rd_curve(first, second)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["rd_curve [1]", "rd_curve [2]"]
    # one legend entry stands for the bands
    assert legend_labels(ax) == [
        labels[0],
        "band: mean rate ± 2 s.e. over examples",
        labels[1],
    ]
    colours = [line.get_color() for line in ax.get_lines()]
    assert colours[0] != colours[1]
    # bands take their curve's colour
    bands = rd_bands(ax)
    for band, colour in zip(bands, colours, strict=True):
        np.testing.assert_allclose(
            band.get_facecolor()[:3], matplotlib.colors.to_rgb(colour)
        )

    ax = plot.plot_rd_curve({"HMC": first, "NUTS": second}, ax=plt.figure().gca())
    assert [line.get_label() for line in ax.get_lines()] == ["HMC", "NUTS"]
    ax = plot.plot_rd_curve(first, label="mine", ax=plt.figure().gca())
    assert [line.get_label() for line in ax.get_lines()] == ["mine"]
    ax = plot.plot_rd_curve(
        first, curve_tree(2, name="other"), first, ax=plt.figure().gca()
    )
    assert [line.get_label() for line in ax.get_lines()] == [
        "rd_curve [1]",
        "other",
        "rd_curve [2]",
    ]


def negative_gap_tree():
    """A result whose BDMC gaps are all below zero, as a good certificate's are."""
    tree = curve_tree(bdmc=True)
    bounds = tree["bdmc"].to_dataset()
    rng = np.random.default_rng(7)
    gap = -0.05 - 0.02 * rng.random(bounds["gap"].shape)
    bounds["upper"] = bounds["lower"] + gap
    bounds["gap"] = bounds["upper"] - bounds["lower"]
    tree["bdmc"] = xr.DataTree(bounds)
    return tree


def test_negative_bdmc_gaps_are_drawn_as_they_are_in_a_panel_of_their_own():
    tree = negative_gap_tree()
    ax = plot.plot_rd_curve(tree)  # raised "'yerr' must not contain negative values"
    main, panel = ax.figure.get_axes()
    assert main is ax
    assert not ax.containers  # nothing at the simulated data's distortion
    (container,) = [c for c in panel.containers if isinstance(c, ErrorbarContainer)]
    assert container.get_label() == "rd_curve: BDMC gap ± 2 s.e."
    line, _, (bars,) = container.lines
    gap = tree["bdmc"]["gap"]
    np.testing.assert_array_equal(line.get_xdata(), [1.0, 3.0])  # beta*
    np.testing.assert_allclose(line.get_ydata(), gap.mean("example").values)
    assert np.all(line.get_ydata() < 0)
    error = gap.std("example", ddof=1).values / np.sqrt(gap.sizes["example"])
    segments = np.array(bars.get_segments())
    np.testing.assert_allclose(segments[:, 0, 1], gap.mean("example") - 2 * error)
    np.testing.assert_allclose(segments[:, 1, 1], gap.mean("example") + 2 * error)
    assert panel.get_ylim()[1] > 0 > panel.get_ylim()[0]  # the zero line in view
    assert "gap" in panel.get_ylabel() and "per" in panel.get_ylabel()
    assert "beta*" in panel.get_xlabel()
    # the curve's own points at each beta* are marked, and the legend says so
    curve = tree["rate_distortion"].to_dataset().mean("example")
    marks = [ln for ln in ax.get_lines() if "BDMC beta*" in ln.get_label()]
    (mark,) = marks
    np.testing.assert_allclose(
        mark.get_xdata(), curve["distortion"].sel(beta=[1.0, 3.0]).values
    )
    np.testing.assert_allclose(
        mark.get_ydata(), curve["rate"].sel(beta=[1.0, 3.0]).values
    )
    assert mark.get_label() in legend_labels(ax)
    # and left out on request
    ax = plot.plot_rd_curve(tree, bdmc=False, ax=plt.figure().gca())
    assert len(ax.figure.get_axes()) == 1
    assert not [ln for ln in ax.get_lines() if "BDMC" in ln.get_label()]


def test_axes_say_per_example_and_the_band_has_a_legend_entry():
    tree = curve_tree()
    tree.attrs["distortion"] = "nll"
    ax = plot.plot_rd_curve(tree)
    assert ax.get_xlabel() == "distortion (nats per example)"
    assert ax.get_ylabel() == "rate (nats per example)"
    assert "band: mean rate ± 2 s.e. over examples" in legend_labels(ax)
    ax = plot.plot_rd_curve(tree, band=1.0, ax=plt.figure().gca())
    assert "band: mean rate ± 1 s.e. over examples" in legend_labels(ax)
    ax = plot.plot_rd_curve(tree, band=None, ax=plt.figure().gca())
    assert not [t for t in legend_labels(ax) if "band" in t]


def test_log_axes_label_only_major_ticks_plainly():
    ax = plot.plot_rd_curve(curve_tree(), log_distortion=True)
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "linear"
    assert isinstance(ax.xaxis.get_minor_formatter(), ticker.NullFormatter)
    ax.figure.canvas.draw()
    # 1, 2, 5 x 10^k over the curve's decade and a half, written plainly
    low, high = ax.get_xlim()
    shown = [
        (tick, label.get_text())
        for tick, label in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True)
        if low <= tick <= high
    ]
    ticks = [tick for tick, _ in shown]
    labels = [label for _, label in shown]
    assert labels == [f"{t:g}" for t in ticks]
    assert 2 <= len(labels) <= 6
    mantissas = {round(t / 10 ** np.floor(np.log10(t)), 6) for t in ticks}
    assert mantissas <= {1.0, 2.0, 5.0}

    tree = curve_tree()
    rate = tree["rate_distortion"]["rate"]
    tree["rate_distortion"]["rate"] = rate.where(rate["beta"] > 0, 0.0)
    ax = plot.plot_rd_curve(tree, log_rate=True, ax=plt.figure().gca())
    # the rate at beta = 0 is 0: a symlog axis shows it, and says so
    assert ax.get_yscale() == "symlog"
    assert "symlog" in ax.get_ylabel()
    rate = sorted_means(tree, "rate")
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), rate)
    # the band does not reach decades below a rate of zero
    (band,) = rd_bands(ax)
    assert band.get_path().vertices[:, 1].min() == 0.0
    tree["rate_distortion"]["rate"] = rate + 1.0
    ax = plot.plot_rd_curve(tree, log_rate=True, ax=plt.figure().gca())
    assert ax.get_yscale() == "log"


def test_plot_rd_curve_errors():
    with pytest.raises(ValueError, match="at least one"):
        plot.plot_rd_curve()
    with pytest.raises(ValueError, match="one entry per tree"):
        plot.plot_rd_curve(curve_tree(), labels=["a", "b"])
    with pytest.raises(ValueError, match="no curve groups"):
        plot.plot_rd_curve(xr.DataTree(name="empty"))
    with pytest.raises(TypeError, match="DataTree"):
        plot.plot_rd_curve(xr.Dataset())
    tree = curve_tree()
    tree["rate_distortion"] = xr.DataTree(
        tree["rate_distortion"].to_dataset().drop_vars("distortion")
    )
    # a KeyError before
    with pytest.raises(ValueError, match="'rate_distortion' has no variable 'dist"):
        plot.plot_rd_curve(tree)


def stats_tree(*, ess_name="importance_ess", khat=True):
    rng = np.random.default_rng(3)
    shape = (3, BETAS.size)
    dims = ("example", "beta")
    variables = {
        ess_name: (dims, 1.0 + 7.0 * rng.random(shape)),
        "acceptance_rate": (dims, rng.random(shape)),
        "step_size": (dims, 0.01 + rng.random(shape)),
    }
    if khat:
        variables["pareto_khat"] = (dims, rng.random(shape))
    stats = xr.Dataset(
        variables,
        coords={"example": np.arange(3), "beta": BETAS},
        attrs={"target_acceptance": 0.65},
    )
    tree = curve_tree(shuffle=False)
    tree["sample_stats"] = xr.DataTree(stats)
    tree.attrs["num_chains"] = 8
    return tree


def test_diagnostics_panels_against_beta():
    tree = stats_tree()
    figure = plot.plot_diagnostics(tree)
    axes = figure.get_axes()
    titles = [ax.get_title() for ax in axes]
    assert titles == ["importance ESS", "Pareto k-hat", "acceptance rate", "step size"]
    stats = tree["sample_stats"].to_dataset().sel(beta=BETAS[1:])
    for ax, variable in zip(
        axes,
        ["importance_ess", "pareto_khat", "acceptance_rate", "step_size"],
        strict=True,
    ):
        assert ax.get_xscale() == "log"
        median, *references = ax.get_lines()
        np.testing.assert_array_equal(median.get_xdata(), BETAS[1:])  # no beta = 0
        np.testing.assert_allclose(
            median.get_ydata(), stats[variable].median("example").values
        )
        (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
        band_y = band.get_paths()[0].vertices[:, 1]
        np.testing.assert_allclose(band_y.min(), stats[variable].min())
        np.testing.assert_allclose(band_y.max(), stats[variable].max())
        levels = [line.get_ydata()[0] for line in references]
        expected = {
            "importance_ess": [8.0],
            "pareto_khat": [0.7],
            "acceptance_rate": [0.65],
            "step_size": [],
        }[variable]
        np.testing.assert_allclose(levels, expected)
    assert axes[3].get_yscale() == "log"


def test_diagnostics_read_older_names_and_skip_missing_ones():
    figure = plot.plot_diagnostics(
        stats_tree(ess_name="effective_sample_size", khat=False)
    )
    assert [ax.get_title() for ax in figure.get_axes()] == [
        "importance ESS",
        "acceptance rate",
        "step size",
    ]
    with pytest.raises(ValueError, match="sample_stats"):
        plot.plot_diagnostics(curve_tree())
    # a variable with no finite value (k-hat from too few chains) gets no panel
    tree = stats_tree()
    tree["sample_stats"]["pareto_khat"] = tree["sample_stats"]["pareto_khat"] * np.nan
    titles = [ax.get_title() for ax in plot.plot_diagnostics(tree).get_axes()]
    assert "Pareto k-hat" not in titles
    assert len(titles) == 3


def gap_tree(gaps):
    gaps = np.asarray(gaps, np.float64)
    dataset = xr.Dataset(
        {"gap": (("example", "beta"), gaps)},
        coords={"example": np.arange(gaps.shape[0]), "beta": [1.0, 10.0]},
    )
    return xr.DataTree.from_dict({"bdmc": dataset}, name="bdmc")


def test_bdmc_gap_against_temperatures_log_log_with_error_bars():
    rng = np.random.default_rng(4)
    temperatures = [1000, 100, 300]  # out of order on purpose
    trees = [gap_tree(100.0 / k + 0.01 * rng.random((6, 2))) for k in temperatures]
    ax = plot.plot_bdmc_gap(temperatures, trees)
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "log"
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [c.get_label() for c in containers] == ["beta* = 1", "beta* = 10"]
    order = np.argsort(temperatures)
    for column, container in enumerate(containers):
        line, _, (bars,) = container.lines
        np.testing.assert_array_equal(line.get_xdata(), np.sort(temperatures))
        gaps = np.stack([trees[i]["bdmc"]["gap"].values[:, column] for i in order])
        mean = gaps.mean(axis=1)
        error = gaps.std(axis=1, ddof=1) / np.sqrt(6)
        np.testing.assert_allclose(line.get_ydata(), mean)
        segments = np.array(bars.get_segments())
        np.testing.assert_allclose(segments[:, 0, 1], mean - 2 * error)
        np.testing.assert_allclose(segments[:, 1, 1], mean + 2 * error)
    # the numbers of temperatures are the x ticks
    np.testing.assert_array_equal(ax.get_xticks(), [100, 300, 1000])

    ax = plot.plot_bdmc_gap(
        temperatures, trees, yscale="symlog", error_bars=None, ax=plt.figure().gca()
    )
    assert ax.get_yscale() == "symlog"
    assert all(not c.has_yerr for c in ax.containers)


def test_bdmc_gap_reads_the_number_of_temperatures_and_checks_its_input():
    trees = [gap_tree(np.ones((2, 2))), gap_tree(np.ones((2, 2)))]
    for tree, k in zip(trees, [10, 20], strict=True):
        tree.attrs["num_temperatures"] = k
    ax = plot.plot_bdmc_gap(None, trees)
    np.testing.assert_array_equal(ax.containers[0].lines[0].get_xdata(), [10, 20])
    with pytest.raises(ValueError, match="one BDMC result per"):
        plot.plot_bdmc_gap([10], trees)
    with pytest.raises(ValueError, match="no 'bdmc' group"):
        plot.plot_bdmc_gap([10], [curve_tree()])
    with pytest.raises(ValueError, match="num_temperatures"):
        plot.plot_bdmc_gap(None, [gap_tree(np.ones((2, 2)))])
