"""Figures for training histories and their analysis (matplotlib, pyplot-free, deterministic).

Each figure function takes ``(history, analysis, path, *, dpi=150)`` and returns the written path;
:func:`render_all` draws the full set (less the figures the analysis has nothing for,
:func:`skipped_figures`). Importing this package has no side effects: the CJK font is
found and registered on the first draw (see :mod:`zhbert.plots.fonts`).
"""

from zhbert.plots.figures_backtest import backtest
from zhbert.plots.figures_compare import comparison
from zhbert.plots.figures_downstream import downstream
from zhbert.plots.figures_fits import correlation_analysis, learning_curve_fit
from zhbert.plots.figures_training import loss_analysis, phases, training_curves
from zhbert.plots.render import COMPARISON_NAME, FIGURES, NEEDS, render_all, skipped_figures

__all__ = [
    "COMPARISON_NAME",
    "FIGURES",
    "NEEDS",
    "backtest",
    "comparison",
    "correlation_analysis",
    "downstream",
    "learning_curve_fit",
    "loss_analysis",
    "phases",
    "render_all",
    "skipped_figures",
    "training_curves",
]
