"""kenomill's figures: every function returns a :class:`matplotlib.figure.Figure` (Agg
backend, no display needed); :func:`save_figure` writes one as PNG, whole or not at all.

The report, the command line and the notebooks call the same functions:

* periods (:mod:`kenomill.plots.periods`): :func:`reported_quarters`, :func:`balance_discrepancies`,
  :func:`reconciliation_tests`;
* calibration (:mod:`kenomill.plots.calibration`): :func:`reported_vs_fitted`,
  :func:`recovery_curves`, :func:`profile_plot`, :func:`predictive_comparison`,
  :func:`model_comparison`, :func:`leave_one_out`;
* what-if (:mod:`kenomill.plots.whatif`): :func:`whatif_surface` (the one surface),
  :func:`whatif_tradeoff`, :func:`whatif_nsr`;
* value (:mod:`kenomill.plots.value`): :func:`whatif_margin` (NSR and margin against
  throughput at several availabilities), :func:`tornado` (which inputs move NSR most);
* Monte Carlo (:mod:`kenomill.plots.scenarios`): :func:`fan_chart` (the one fan chart),
  :func:`histograms` (the one histogram figure).
"""

from __future__ import annotations

from kenomill.plots._common import save_figure
from kenomill.plots.calibration import (
    leave_one_out,
    model_comparison,
    predictive_comparison,
    profile_plot,
    recovery_curves,
    reported_vs_fitted,
    save_calibration_plots,
)
from kenomill.plots.periods import balance_discrepancies, reconciliation_tests, reported_quarters
from kenomill.plots.scenarios import FAN_VARIABLES, fan_chart, histograms
from kenomill.plots.value import tornado, whatif_margin
from kenomill.plots.whatif import whatif_nsr, whatif_surface, whatif_tradeoff

__all__ = [
    "FAN_VARIABLES",
    "balance_discrepancies",
    "fan_chart",
    "histograms",
    "leave_one_out",
    "model_comparison",
    "predictive_comparison",
    "profile_plot",
    "reconciliation_tests",
    "recovery_curves",
    "reported_quarters",
    "reported_vs_fitted",
    "save_calibration_plots",
    "save_figure",
    "tornado",
    "whatif_margin",
    "whatif_nsr",
    "whatif_surface",
    "whatif_tradeoff",
]
