"""The forecast backtest: forecasts made from early cuts of the history against what happened."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from zhbert.plots.common import (
    drawing,
    error_bars,
    fmt_value,
    get,
    metric_label,
    note,
    series_for,
    step_axis,
)
from zhbert.plots.style import COLORS, DEFAULT_DPI, new_figure, save_figure, text


def _rows(analysis: Mapping | None) -> list[Mapping]:
    return [r for r in get(analysis, "backtest", "rows", default=[]) or []
            if r.get("covered") is not None]


def backtest(history, analysis: Mapping | None, path: str | os.PathLike,
             *, dpi: int = DEFAULT_DPI) -> Path:
    """Left: the series with the cut steps marked. Right: the forecast of the last step from
    each cut with its 95% interval (filled when it covers the actual value, hollow when it
    misses), the actual value as a line with its standard-error band."""
    bt = get(analysis, "backtest", default=None)
    with drawing() as cjk:
        fig = new_figure((11, 4.8))
        ax_s, ax_f = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        if not bt:
            note(ax_s, text("no_backtest", cjk))
            note(ax_f, text("no_backtest", cjk))
            fig.suptitle(text("backtest", cjk))
            return save_figure(fig, path, dpi)
        series = series_for(history, analysis)
        colour = COLORS["eval" if series.kind == "eval" else "train"]
        ax_s.plot(series.steps, series.acc, color=colour, linewidth=1,
                  marker="o" if series.n <= 60 else None, markersize=3)
        for row in bt["rows"]:
            if row.get("cut_step") is not None:
                ax_s.axvline(row["cut_step"], color=COLORS["tail"], linestyle="--", linewidth=0.8)
        ax_s.set_xlabel(text("step", cjk))
        ax_s.set_ylabel(metric_label(series, cjk))
        step_axis(ax_s)
        actual = bt["actual"]
        ax_f.axhline(actual["value"], color=COLORS["smooth"], linewidth=1.5,
                     label=f"{text('actual', cjk)} {fmt_value(series, actual['value'])}")
        ax_f.axhspan(actual["value"] - actual["stderr"], actual["value"] + actual["stderr"],
                     color=COLORS["tail"], alpha=0.3, linewidth=0)
        for row in _rows(analysis):
            lo, hi = row["ci95"]
            ok = row["covered"]
            ax_f.errorbar([row["cut"]], [row["forecast"]],
                          yerr=error_bars(row["forecast"], lo, hi), capsize=4,
                          marker="o", markersize=7, color=COLORS["best" if ok else "change"],
                          markerfacecolor=COLORS["best"] if ok else "white")
        ax_f.errorbar([], [], yerr=[], marker="o", color=COLORS["best"], label=text("forecast", cjk))
        ax_f.errorbar([], [], yerr=[], marker="o", color=COLORS["change"], markerfacecolor="white",
                      label=text("missed", cjk))
        ax_f.set_xlabel(text("cut", cjk))
        ax_f.set_ylabel(metric_label(series, cjk))
        cov, mae = bt.get("coverage"), bt.get("mean_abs_error")
        if cov is None:
            summary = "no cut could be forecast"
        else:
            error = f"{100 * mae:.2f} points" if series.higher_is_better else f"{mae:.4g}"
            summary = f"coverage {cov:.0%}, MAE {error}"
        ax_f.set_title(f"{text('target', cjk)} {bt['target_step']:,.0f}: {summary}")
        ax_f.legend(loc="lower right")
        fig.suptitle(text("backtest", cjk))
        return save_figure(fig, path, dpi)
