"""Figures: axes that show every point (symlog, no "L") and bands without holes."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from test_plot import (  # noqa: E402 - hand-made result trees
    BETAS,
    curve_tree,
    rd_bands,
    sorted_means,
)

from rdppl import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_band_of_a_curve_that_turns_back_has_no_holes():
    # noisy estimates make the mean distortion turn back as beta grows; a single
    # fill_between polygon then crosses itself and leaves unfilled holes
    tree = curve_tree(num_examples=5, shuffle=False)
    distortion = tree["rate_distortion"]["distortion"]
    turned = distortion.values.copy()
    turned[:, [2, 3]] = turned[:, [3, 2]]  # a turn back and forth
    tree["rate_distortion"]["distortion"] = distortion.copy(data=turned)
    ax = plot.plot_rd_curve(tree)
    (line,) = ax.get_lines()
    assert np.any(np.diff(line.get_xdata()) > 0)  # drawn in beta order, turning
    (band,) = rd_bands(ax)
    quads = band.get_path().vertices.reshape(-1, 5, 2)[:, :4]
    assert len(quads) == BETAS.size - 1  # one quadrilateral per segment
    x, y = quads[..., 0], quads[..., 1]
    area = 0.5 * np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, 1)
    assert np.all(area > 0)  # all wound one way: the non-zero rule fills the union
    np.testing.assert_allclose(np.sort(np.unique(x)), np.sort(line.get_xdata()))


def shifted_tree(offset=0.0, *, huge_at_zero=None):
    """``curve_tree`` with its distortion shifted (negative NLLs) or huge at 0."""
    tree = curve_tree(num_examples=5)
    distortion = tree["rate_distortion"]["distortion"] + offset
    if huge_at_zero is not None:
        distortion = distortion.where(distortion["beta"] > 0, huge_at_zero)
    tree["rate_distortion"]["distortion"] = distortion
    return tree


def test_log_distortion_keeps_zero_and_negative_distortions():
    tree = shifted_tree(-15.0)  # means from about -13 to 9
    means = sorted_means(tree, "distortion")
    assert np.any(means < 0) and np.any(means > 0)
    ax = plot.plot_rd_curve(tree, log_distortion=True)
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), means)  # every point
    np.testing.assert_allclose(line.get_ydata(), sorted_means(tree, "rate"))
    assert ax.get_xscale() == "symlog"
    assert "symlog, linear within ±" in ax.get_xlabel()
    ax.figure.canvas.draw()
    low, high = ax.get_xlim()
    assert low < means.min() and high > means.max()
    # positive distortions keep a plain log axis
    ax = plot.plot_rd_curve(curve_tree(), log_distortion=True, ax=plt.figure().gca())
    assert ax.get_xscale() == "log"
    assert "symlog" not in ax.get_xlabel()


def test_default_axis_unfolds_the_l_of_a_huge_distortion_near_beta_zero():
    tree = shifted_tree(-15.0, huge_at_zero=9500.0)
    ax = plot.plot_rd_curve(tree)
    (line,) = ax.get_lines()
    assert ax.get_xscale() == "symlog"  # the distortions are not all positive
    np.testing.assert_allclose(line.get_xdata(), sorted_means(tree, "distortion"))
    assert line.get_xdata().max() == 9500.0
    # the negative distortions lie in the linear part, with ticks of their own,
    # not bent around an arbitrary zero; decades beyond it
    assert line.get_xdata().min() > -20
    assert ax.get_xlabel().endswith("; symlog, linear within ±20)")
    ax.figure.canvas.draw()
    ticks = ax.xaxis.get_majorticklocs()
    low, high = ax.get_xlim()
    ticks = ticks[(ticks >= low) & (ticks <= high)]
    assert np.sum((ticks >= -20) & (ticks <= 20)) >= 3
    assert {100.0, 1000.0} <= set(ticks)
    labels = [t.get_text() for t in ax.xaxis.get_ticklabels() if t.get_text()]
    assert "1000" in labels and "0" in labels
    tree = shifted_tree(5.0, huge_at_zero=9500.0)
    ax = plot.plot_rd_curve(tree, ax=plt.figure().gca())
    assert ax.get_xscale() == "log"
    # a linear axis, when asked for
    ax = plot.plot_rd_curve(tree, log_distortion=False, ax=plt.figure().gca())
    assert ax.get_xscale() == "linear"


def test_symlog_puts_negative_distortions_in_its_linear_part():
    from rdppl.plot.axes import axis_scale

    # Gaussian NLLs below zero are data: linear down to them
    assert axis_scale(np.array([-13.0, 5.0, 9500.0])) == (
        "symlog",
        {"linthresh": 20.0, "linscale": 1.0},
    )
    assert axis_scale(np.array([-0.3, 5.0]))[1]["linthresh"] == 0.5
    # a rate below zero only by noise stays near the zero
    scale, options = axis_scale(np.array([-0.006, 12.0]), linear_negatives=False)
    assert scale == "symlog" and options["linthresh"] == 0.01
    assert axis_scale(np.array([0.5, 9500.0])) == ("log", {})
