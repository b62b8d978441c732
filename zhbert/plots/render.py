"""Draw the whole figure set for one analysed history (used by visualize_results.py)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from zhbert.plots.figures_backtest import backtest
from zhbert.plots.figures_compare import comparison
from zhbert.plots.figures_downstream import downstream
from zhbert.plots.figures_fits import correlation_analysis, learning_curve_fit
from zhbert.plots.figures_training import loss_analysis, phases, training_curves
from zhbert.plots.style import DEFAULT_DPI, FORMATS

#: figure base name -> drawing function taking (history, analysis, path, *, dpi)
FIGURES = {
    "training_curves": training_curves,
    "correlation_analysis": correlation_analysis,
    "loss_analysis": loss_analysis,
    "learning_curve_fit": learning_curve_fit,
    "phases": phases,
    "backtest": backtest,
    "downstream": downstream,
}
#: figures drawn only when the analysis holds what they show: name -> (analysis key, reason)
NEEDS = {"backtest": ("backtest", "the analysis has no backtest"),
         "downstream": ("downstream", "no downstream scores file was given")}
#: name kept from the original study for continuity; drawn only when other runs are given
COMPARISON_NAME = "comparison_50k_100k"


def skipped_figures(analysis: Mapping | None) -> dict[str, str]:
    """The FIGURES that ``analysis`` has nothing for (:data:`NEEDS`), each with the reason;
    :func:`render_all` leaves them out rather than writing a placeholder."""
    return {name: reason for name, (key, reason) in NEEDS.items()
            if not (analysis or {}).get(key)}


def render_all(history, analysis: Mapping, out_dir: str | os.PathLike, *, fmt: str = "png",
               dpi: int = DEFAULT_DPI,
               compare: Sequence[tuple[str, object]] | None = None,
               label: str = "main") -> list[Path]:
    """Write every figure into ``out_dir`` as ``<name>.<fmt>``; returns the written paths.

    A figure the analysis has nothing for (:func:`skipped_figures`, e.g. ``backtest`` without
    a backtest) is not written. ``compare`` holds ``(label, History)`` of other runs; the
    comparison figure is drawn only when it is non-empty, with this run (``label``) first.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}")
    out = Path(out_dir)
    skipped = skipped_figures(analysis)
    paths = [fn(history, analysis, out / f"{name}.{fmt}", dpi=dpi)
             for name, fn in FIGURES.items() if name not in skipped]
    if compare:
        runs = [(label, history), *compare]
        paths.append(comparison(runs, analysis, out / f"{COMPARISON_NAME}.{fmt}", dpi=dpi))
    return paths
