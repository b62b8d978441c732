"""Figures about the statistics of the accuracy curve: correlation analysis, learning-curve fits.

All numbers come from the analysis dict (``zhbert.analysis.analyze``); curves are evaluated with
``zhbert.analysis.evaluate_family``; the residual ACF uses statsmodels.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from zhbert.plots.common import (
    acc_label,
    baseline_lines,
    drawing,
    error_bars,
    evaluate,
    fmt_num,
    fmt_p,
    get,
    metric_label,
    note,
    series_for,
    step_axis,
    table_or_note,
)
from zhbert.plots.style import COLORS, CYCLE, DEFAULT_DPI, FONT_SIZES, new_figure, save_figure, text

TAIL_FRACTION = 0.2


def _scatter(ax, series, cjk) -> None:
    """Data points: small and translucent for dense training series, bigger for eval points."""
    dense = len(series.steps) > 200
    ax.scatter(series.steps, series.acc, s=4 if dense else 14, alpha=0.35 if dense else 0.8,
               color=COLORS["eval" if series.kind == "eval" else "train"], linewidths=0,
               label=acc_label(series.kind, cjk))


def _stats_text(analysis: Mapping | None) -> str:
    """Autocorrelation-aware figures first (effective n, its interval and p, the modified
    Mann-Kendall test), then the i.i.d. ones kept for comparison with the original study."""
    pe, sp, kd = (get(analysis, k, default={}) for k in ("pearson", "spearman", "kendall"))
    tr = get(analysis, "trend", default={}) or {}
    ci = get(pe, "ci95", default=None) or [None, None]
    ci_eff = get(tr, "pearson_ci95_neff", default=None) or [None, None]
    mmk = get(tr, "modified_mann_kendall", default={})
    res = get(tr, "curve_residuals", default=None) or get(tr, "residuals", default={})
    lines = [
        f"n = {fmt_num(get(analysis, 'series', 'n'))} "
        f"({get(analysis, 'series', 'kind', default='?')}), n_eff = {fmt_num(get(tr, 'n_eff'), 3)}",
        f"Pearson r = {fmt_num(get(pe, 'r'))}",
        f"95% CI (n_eff) = [{fmt_num(ci_eff[0], 3)}, {fmt_num(ci_eff[1], 3)}]",
        f"{fmt_p(get(tr, 'pearson_p_value_neff'))} (n_eff)",
        f"Mod. Mann-Kendall {fmt_p(get(mmk, 'p_value'))}",
        f"lag-1 autocorr (fit resid.) = {fmt_num(get(res, 'lag1_autocorr'), 3)}",
        f"Spearman ρ = {fmt_num(get(sp, 'rho'))}, Kendall τ = {fmt_num(get(kd, 'tau'))}",
        f"i.i.d.: R² = {fmt_num(get(analysis, 'r_squared'))}, "
        f"CI [{fmt_num(ci[0], 3)}, {fmt_num(ci[1], 3)}]",
        f"i.i.d.: {fmt_p(get(pe, 'p_value'))}",
    ]
    return "\n".join(lines)


def _acf_panel(ax, resid: np.ndarray, cjk: bool) -> None:
    """ACF bars of the residuals with the 95% Bartlett band around zero."""
    from statsmodels.tsa.stattools import acf

    resid = resid[np.isfinite(resid)]
    nlags = min(40, len(resid) // 2 - 1)
    if nlags < 1 or np.std(resid) == 0:
        note(ax, text("no_data", cjk))
        return
    try:
        values, conf = acf(resid, nlags=nlags, alpha=0.05, fft=True, result_object=False)
    except TypeError:  # statsmodels before result_object existed
        values, conf = acf(resid, nlags=nlags, alpha=0.05, fft=True)
    lags = np.arange(len(values))
    half = conf[:, 1] - values  # band half-width, centred on zero as in statsmodels' plot_acf
    ax.fill_between(lags[1:], -half[1:], half[1:], color=COLORS["tail"], alpha=0.25,
                    linewidth=0, label="95%")
    ax.bar(lags[1:], values[1:], width=0.6, color=COLORS["linear"])
    ax.axhline(0, color="#000000", linewidth=0.8)
    ax.set_xlabel(text("lag", cjk))
    ax.set_ylim(-1.05, 1.05)
    ax.legend(loc="upper right")


def correlation_analysis(history, analysis: Mapping | None, path: str | os.PathLike,
                         *, dpi: int = DEFAULT_DPI) -> Path:
    """Step vs accuracy with the straight-line and best learning-curve fits, a statistics box,
    residuals (of the straight line) vs step and their autocorrelation."""
    series = series_for(history, analysis)
    steps = np.asarray(series.steps, dtype=float)
    fits = get(analysis, "curve_fits", default={}) or {}
    best = get(analysis, "best_fit", "family")
    linear = evaluate("linear", get(fits, "linear", "params"), steps)
    best_y = evaluate(best, get(fits, best, "params"), steps) if best else None
    with drawing() as cjk:
        fig = new_figure((11, 8))
        grid = fig.add_gridspec(2, 3)
        ax = fig.add_subplot(grid[0, :2])
        _scatter(ax, series, cjk)
        if linear is not None:
            ax.plot(steps, linear, color=COLORS["linear"], linewidth=2,
                    label=text("linear_fit", cjk))
        if best_y is not None:
            ax.plot(steps, best_y, color=COLORS["best"], linewidth=2,
                    label=f"{text('best_fit', cjk)}: {best}")
        ax.set_title(text("correlation", cjk))
        ax.set_ylabel(metric_label(series, cjk))
        _legend(ax)
        step_axis(ax)
        baseline_lines(ax, history, analysis, cjk)
        box = fig.add_subplot(grid[0, 2])
        box.axis("off")
        box.set_title(text("statistics", cjk))
        box.text(0.02, 0.98, _stats_text(analysis), transform=box.transAxes, va="top", ha="left",
                 fontsize=FONT_SIZES["base"], linespacing=1.45,
                 bbox={"boxstyle": "round", "facecolor": "#F7F7F7", "edgecolor": "#BBBBBB"})
        statement = get(analysis, "trend", "statement")
        if isinstance(statement, str) and statement:
            # the analysis' own plain-language caveat (autocorrelation, effective n)
            box.text(0.02, 0.0, textwrap.fill(statement, 56), transform=box.transAxes,
                     va="bottom", ha="left", fontsize=FONT_SIZES["small"] - 1, color="#333333")
        ax_r = fig.add_subplot(grid[1, :2])
        ax_a = fig.add_subplot(grid[1, 2])
        if linear is None:
            note(ax_r, text("fit_failed", cjk))
            note(ax_a, text("fit_failed", cjk))
        else:
            resid = np.asarray(series.acc, dtype=float) - linear
            ax_r.scatter(steps, resid, s=4 if len(steps) > 200 else 12, color=COLORS["linear"],
                         alpha=0.6, linewidths=0)
            ax_r.axhline(0, color="#000000", linewidth=0.8)
            ax_r.set_xlabel(text("step", cjk))
            step_axis(ax_r)
            _acf_panel(ax_a, resid, cjk)
        ax_r.set_title(f"{text('residuals', cjk)} ({text('linear_fit', cjk)})")
        ax_a.set_title(text("acf", cjk))
        fig.suptitle(text("correlation_title", cjk))
        return save_figure(fig, path, dpi)


def _status(fit: Mapping) -> str:
    """"ok", "at bound: a, d" (flagged, never the best fit) or "failed"."""
    if not get(fit, "converged"):
        return "failed"
    bound = get(fit, "at_bound", default=[]) or []
    return f"at bound: {', '.join(bound)}" if bound else "ok"


def _family_rows(fits: Mapping) -> list[list[str]]:
    rows = []
    for name, fit in fits.items():
        rows.append([name, fmt_num(get(fit, "rmse"), 3), fmt_num(get(fit, "aic"), 5),
                     fmt_num(get(fit, "tail_rmse"), 3), fmt_num(get(fit, "asymptote"), 3),
                     _status(fit)])
    return rows


def _ylim(acc: np.ndarray, extrap: Mapping | None, accuracy: bool = True) -> tuple[float, float]:
    """y range of the data and the best fit's band: a family that diverges (e.g. log_linear near
    step 0, linear far out) is clipped instead of squashing the data; an ``accuracy`` range stays
    within [0, 1]."""
    band = get(extrap, "band", default={}) or {}
    vals = [np.asarray(acc, float)]
    for key in ("low", "high"):
        vals.append(np.asarray([v for v in band.get(key, []) if v is not None], float))
    ci = get(extrap, "ci95", default=None) or []
    vals.append(np.asarray([v for v in ci if v is not None], float))
    allv = np.concatenate(vals)
    allv = allv[np.isfinite(allv)]
    lo, hi = float(allv.min()), float(allv.max())
    if accuracy and np.min(acc) >= 0 and np.max(acc) <= 1:  # never outside [0, 1]
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    pad = 0.08 * (hi - lo) if hi > lo else 0.05
    return lo - pad, hi + pad


def _band(ax, extrap: Mapping | None, cjk: bool) -> None:
    band = get(extrap, "band", default=None)
    if band and band.get("steps"):
        ax.fill_between(band["steps"], band["low"], band["high"], color=COLORS["band"], alpha=0.2,
                        linewidth=0, label=text("band95", cjk))
    target, value = get(extrap, "target_step"), get(extrap, "value")
    if target is not None and value is not None:
        ci = get(extrap, "ci95", default=None)
        yerr = None
        if ci and None not in ci:
            yerr = error_bars(value, ci[0], ci[1])
        ax.errorbar([target], [value], yerr=yerr, color=COLORS["best"], marker="D", markersize=6,
                    capsize=4, label=f"{text('target', cjk)} {int(target):,}: {value:.3f}")


def _legend(ax, below: bool = False) -> None:
    """Legend (inside lower right, or below the axes when ``below``) with a visible scatter swatch
    (the tiny data dots would not be) without inflating the other markers."""
    from matplotlib.collections import PathCollection

    if below:
        leg = ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=4)
    else:
        leg = ax.legend(loc="lower right", ncols=2)
    for handle in leg.legend_handles:
        if isinstance(handle, PathCollection):
            handle.set_sizes([25])


def learning_curve_fit(history, analysis: Mapping | None, path: str | os.PathLike,
                       *, dpi: int = DEFAULT_DPI) -> Path:
    """Every fitted family on the data, the held-out tail shaded, the best fit extrapolated to the
    target step with its 95% band, and a table of fit criteria."""
    series = series_for(history, analysis)
    steps = np.asarray(series.steps, dtype=float)
    fits = get(analysis, "curve_fits", default={}) or {}
    best = get(analysis, "best_fit", "family")
    extrap = get(analysis, "extrapolation", default=None)
    end = max(float(steps.max()), float(get(extrap, "target_step", default=0) or 0))
    grid_t = np.linspace(float(steps.min()), end, 400)
    with drawing() as cjk:
        fig = new_figure((11, 7.5))
        gs = fig.add_gridspec(2, 1, height_ratios=[4, 0.5 + 0.22 * len(fits)])
        ax = fig.add_subplot(gs[0])
        _scatter(ax, series, cjk)
        cut = steps[int(np.floor(len(steps) * (1 - TAIL_FRACTION)))] if len(steps) > 1 else steps[0]
        ax.axvspan(cut, steps.max(), color=COLORS["tail"], alpha=0.15,
                   label=text("heldout_tail", cjk))
        data_colour = COLORS["eval" if series.kind == "eval" else "train"]
        colours = iter(c for c in CYCLE if c not in (COLORS["best"], data_colour))
        for name, fit in fits.items():
            y = evaluate(name, get(fit, "params"), grid_t)
            if y is None:
                continue
            if series.higher_is_better:  # no curve where no accuracy can be
                y = np.where((y >= 0) & (y <= 1), y, np.nan)
            is_best = name == best
            ax.plot(grid_t, y, color=COLORS["best"] if is_best else next(colours, "#444444"),
                    linewidth=2.4 if is_best else 1.3,
                    linestyle="-" if get(fit, "converged") else ":",
                    label=f"{name}{' (' + text('best_fit', cjk) + ')' if is_best else ''}")
        _band(ax, extrap, cjk)
        ax.set_ylim(*_ylim(series.acc, extrap, series.higher_is_better))
        ax.set_xlabel(text("step", cjk))
        ax.set_ylabel(metric_label(series, cjk))
        step_axis(ax)
        _legend(ax, below=True)
        baseline_lines(ax, history, analysis, cjk)
        ax.set_title(text("learning_curve", cjk))
        tab = fig.add_subplot(gs[1])
        tab.axis("off")
        rows = _family_rows(fits)
        table_or_note(tab, rows, ["family", "RMSE", "AIC", "tail RMSE", "asymptote", "fit"],
                      text("fit_failed", cjk), row_scale=1.3)
        return save_figure(fig, path, dpi)
