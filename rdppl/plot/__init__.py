"""Figures of rdppl's results (matplotlib, the ``plot`` extra); layer 2.

:mod:`~rdppl.plot.figures` draws the curves and diagnostics, :mod:`~rdppl.plot.axes`
chooses and labels the axes, :mod:`~rdppl.plot.bdmc` draws BDMC gaps. They read
result trees only (:mod:`rdppl.results`).
"""

from rdppl.plot.figures import (
    CURVE_GROUPS,
    plot_bdmc_gap,
    plot_diagnostics,
    plot_rd_curve,
    tidy_log_axis,
)

__all__ = [
    "CURVE_GROUPS",
    "plot_bdmc_gap",
    "plot_diagnostics",
    "plot_rd_curve",
    "tidy_log_axis",
]
