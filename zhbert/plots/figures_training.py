"""Figures about the raw training record: training curves, loss analysis, phases."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from zhbert import history_schema as H
from zhbert.plots.common import (
    baseline_lines,
    drawing,
    ema,
    error_bars,
    eval_col,
    evaluate,
    get,
    metric_label,
    note,
    plain_log_ticks,
    series_for,
    step_axis,
    train_col,
    train_steps,
)
from zhbert.plots.style import (
    COLORS,
    DEFAULT_DPI,
    FONT_SIZES,
    LABELS,
    new_figure,
    save_figure,
    text,
)


def _raw_and_smooth(ax, steps, values, color, label, cjk) -> None:
    """Noisy per-batch values as a faint line, their EMA on top."""
    ax.plot(steps, values, color=color, alpha=0.35, linewidth=0.7, label=label)
    if len(values) >= 5:
        ax.plot(steps, ema(steps, values), color=color, linewidth=1.5, label=f"{text('ema', cjk)}")


def _eval_overlay(ax, history, name, cjk) -> None:
    """Held-out points of eval column ``name`` (with standard error bars for the accuracy)."""
    steps, values = eval_col(history, H.EVAL_STEPS), eval_col(history, name)
    if steps is None or values is None:
        return
    err = eval_col(history, H.EVAL_STDERR) if name == H.EVAL_MLM_ACC else None
    ax.errorbar(steps, values, yerr=err, color=COLORS["eval"], marker="o", markersize=3,
                linewidth=1.2, capsize=2, label=text("eval", cjk))


def _forecast_overlay(ax, history, cjk) -> None:
    """The live forecasts of the held-out accuracy at the planned last step, each drawn at the
    step it was made with its 95% interval: how the prediction moved as the run went on."""
    steps, value = eval_col(history, H.EVAL_STEPS), eval_col(history, H.EVAL_FORECAST_ACC)
    low, high = eval_col(history, H.EVAL_FORECAST_LOW), eval_col(history, H.EVAL_FORECAST_HIGH)
    target = eval_col(history, H.EVAL_FORECAST_STEP)
    if steps is None or value is None or low is None or high is None:
        return
    made = np.isfinite(value) & np.isfinite(low) & np.isfinite(high)
    if not made.any():
        return
    last = target[made][-1] if target is not None and np.isfinite(target[made][-1]) else None
    label = text("live_forecast", cjk) + (f" ({last:,.0f})" if last is not None else "")
    v = value[made]
    ax.errorbar(steps[made], v, yerr=error_bars(v, low[made], high[made]),
                color=COLORS["forecast"], marker="s", markersize=3, linestyle="--", linewidth=1.0,
                capsize=2, label=label)


def _metric_panel(ax, series, cjk) -> None:
    """The series chosen by metric (another tool's log, or ``--metric``), titled by its name."""
    if series.kind == "eval":
        ax.plot(series.steps, series.acc, color=COLORS["eval"], marker="o", markersize=3,
                linewidth=1.2, label=text("eval", cjk))
    else:
        _raw_and_smooth(ax, series.steps, series.acc, COLORS["train"], text("train", cjk), cjk)
    ax.set_title(metric_label(series, cjk))
    ax.legend(loc="lower right" if series.higher_is_better else "upper right")


def _second_panel(ax, history, steps, cjk) -> None:
    """NSP accuracy when recorded, else held-out loss, else throughput."""
    nsp = train_col(history, H.NSP_ACC)
    if nsp is not None:
        _raw_and_smooth(ax, steps, nsp, COLORS["nsp"], text("train", cjk), cjk)
        ax.set_title(text("nsp_acc", cjk))
        ax.legend(loc="lower right")
        return
    e_steps, e_loss = eval_col(history, H.EVAL_STEPS), eval_col(history, H.EVAL_LOSS)
    if e_steps is not None and e_loss is not None:
        ax.plot(e_steps, e_loss, color=COLORS["eval"], marker="o", markersize=3)
        ax.set_title(text("eval_loss", cjk))
        return
    tps = train_col(history, H.TOKENS_PER_S)
    if tps is not None:
        _raw_and_smooth(ax, steps, tps, COLORS["aux"], text("train", cjk), cjk)
        ax.set_title(text("tokens_per_s", cjk))
        return
    ax.set_title(text("nsp_acc", cjk))
    note(ax, text("no_data", cjk))


def training_curves(history, analysis: Mapping | None, path: str | os.PathLike,
                    *, dpi: int = DEFAULT_DPI) -> Path:
    """2×2: MLM accuracy (train, held-out, the live forecasts made during the run, and the
    count-table baselines), NSP accuracy (or held-out loss / throughput), loss, learning rate (log
    scale)."""
    steps = train_steps(history)
    with drawing() as cjk:
        fig = new_figure((11, 7.5))
        axes = fig.subplots(2, 2, sharex=True)
        ax = axes[0, 0]
        if history.metric_series is not None:
            _metric_panel(ax, history.metric_series, cjk)
        else:
            acc = train_col(history, H.MLM_ACC)
            if acc is not None:
                _raw_and_smooth(ax, steps, acc, COLORS["train"], text("train", cjk), cjk)
            _eval_overlay(ax, history, H.EVAL_MLM_ACC, cjk)
            _forecast_overlay(ax, history, cjk)
            ax.set_title(text("mlm_acc", cjk))
            ax.legend(loc="lower right")
            baseline_lines(ax, history, analysis, cjk)
        _second_panel(axes[0, 1], history, steps, cjk)
        ax = axes[1, 0]
        loss = train_col(history, H.LOSS)
        if loss is not None:
            _raw_and_smooth(ax, steps, loss, COLORS["train"], text("train", cjk), cjk)
            _eval_overlay(ax, history, H.EVAL_LOSS, cjk)
            ax.legend(loc="upper right")
        else:
            note(ax, text("no_data", cjk))
        ax.set_title(text("loss", cjk))
        ax = axes[1, 1]
        lr = train_col(history, H.LR)
        positive = lr is not None and (lr > 0).any()
        if positive:
            ax.plot(steps[lr > 0], lr[lr > 0], color=COLORS["lr"])
            ax.set_yscale("log")
        else:
            note(ax, text("no_data", cjk))
        ax.set_title(text("lr", cjk))
        for ax in axes[1]:
            ax.set_xlabel(text("step", cjk))
            step_axis(ax)
        fig.suptitle(text("training_curves", cjk))
        return save_figure(fig, path, dpi)


def _quarter_reductions(history, analysis) -> list[tuple[str, float]]:
    """Loss drop (start minus end, on the EMA so noise does not dominate) in each quarter.

    Quarter boundaries come from ``analysis["phases"]["quarters"]``; the arithmetic on the loss
    column is a display aid, not a statistic of the analysis.
    """
    steps, loss = train_steps(history), train_col(history, H.LOSS)
    quarters = get(analysis, "phases", "quarters", default=[]) or []
    if loss is None or not quarters:
        return []
    smooth = ema(steps, loss)
    out = []
    for i, q in enumerate(quarters, start=1):
        lo, hi = q.get("start_step"), q.get("end_step")
        inside = (steps >= lo) & (steps <= hi) if lo is not None and hi is not None else None
        if inside is None or inside.sum() < 1:
            continue
        idx = np.flatnonzero(inside)
        out.append((f"Q{i}", float(smooth[idx[0]] - smooth[idx[-1]])))
    return out


def _loss_lines(ax, steps, loss, fitted, cjk, loglog: bool) -> None:
    keep = (steps > 0) & (loss > 0) if loglog else np.ones_like(steps, dtype=bool)
    ax.plot(steps[keep], loss[keep], color=COLORS["train"], alpha=0.35, linewidth=0.7,
            label=text("loss", cjk))
    if keep.sum() >= 5:
        ax.plot(steps[keep], ema(steps[keep], loss[keep]), color=COLORS["smooth"],
                label=text("ema", cjk))
    if fitted is not None:
        ax.plot(steps[keep], fitted[keep], color=COLORS["best"], linestyle="--", linewidth=1.8,
                label=text("loss_fit", cjk))
    if loglog:
        ax.set_xscale("log")
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    else:
        step_axis(ax)
    ax.set_xlabel(text("step", cjk))
    ax.legend(loc="upper right")


def loss_analysis(history, analysis: Mapping | None, path: str | os.PathLike,
                  *, dpi: int = DEFAULT_DPI) -> Path:
    """Loss vs step (linear and log–log) with EMA and the fitted loss curve; loss drop per
    quarter."""
    steps, loss = train_steps(history), train_col(history, H.LOSS)
    fit = get(analysis, "loss_fit", default=None)
    fitted = evaluate(get(fit, "family"), get(fit, "params"), steps) if loss is not None else None
    with drawing() as cjk:
        fig = new_figure((11, 7.5))
        grid = fig.add_gridspec(2, 2)
        ax_lin, ax_log = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
        ax_bar = fig.add_subplot(grid[1, :])
        if loss is None:
            for ax in (ax_lin, ax_log, ax_bar):
                note(ax, text("no_data", cjk))
        else:
            _loss_lines(ax_lin, steps, loss, fitted, cjk, loglog=False)
            _loss_lines(ax_log, steps, loss, fitted, cjk, loglog=True)
            reductions = _quarter_reductions(history, analysis)
            if reductions:
                names, drops = zip(*reductions, strict=True)
                total = sum(drops)
                bars = ax_bar.bar(names, drops, color=COLORS["train"], width=0.6)
                labels = [f"{d:.3g} ({100 * d / total:.0f}%)" if total > 0 else f"{d:.3g}"
                          for d in drops]
                ax_bar.bar_label(bars, labels=labels, padding=2, fontsize=8)
                ax_bar.set_ylabel(text("reduction", cjk))
                ax_bar.set_xlabel(text("phase", cjk))
                ax_bar.margins(y=0.15)
            else:
                note(ax_bar, text("no_data", cjk))
        ax_lin.set_title(text("loss", cjk))
        ax_log.set_title(text("loglog", cjk))
        ax_bar.set_title(text("loss_per_phase", cjk))
        fig.suptitle(text("loss_analysis", cjk))
        return save_figure(fig, path, dpi)


def phases(history, analysis: Mapping | None, path: str | os.PathLike,
           *, dpi: int = DEFAULT_DPI) -> Path:
    """Accuracy curve with detected change points and quarters; learning rate on a twin axis."""
    series = series_for(history, analysis)
    with drawing() as cjk:
        fig = new_figure((11, 5.5))
        ax = fig.add_subplot()
        marker = "o" if series.kind == "eval" or len(series.steps) < 50 else None
        ax.plot(series.steps, series.acc, color=COLORS["train"], marker=marker, markersize=3,
                linewidth=1.0, alpha=0.8, label=metric_label(series, cjk))
        for i, q in enumerate(get(analysis, "phases", "quarters", default=[]) or []):
            if i % 2 and q.get("start_step") is not None:  # shade every other quarter
                ax.axvspan(q["start_step"], q["end_step"], color=COLORS["tail"], alpha=0.1)
        for j, cp in enumerate(get(analysis, "phases", "change_points", default=[]) or []):
            if cp.get("step") is not None:
                ax.axvline(cp["step"], color=COLORS["change"], linestyle="--", linewidth=1.2,
                           label=text("change_point", cjk) if j == 0 else None)
        ax.set_xlabel(text("step", cjk))
        ax.set_ylabel(metric_label(series, cjk))
        step_axis(ax)
        baseline_lines(ax, history, analysis, cjk)
        lr = train_col(history, H.LR)
        if lr is not None:
            ax2 = ax.twinx()
            ax2.plot(train_steps(history), lr, color=COLORS["lr"], linewidth=1.2,
                     label=text("lr", cjk))
            ax2.set_ylabel(text("lr", cjk), color=COLORS["lr"])
            ax2.tick_params(axis="y", colors=COLORS["lr"])
            ax2.grid(False)
            ax2.spines["right"].set_visible(True)
            ax2.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            _lr_events(ax2, analysis, history, cjk)
            handles = ax.get_legend_handles_labels()
            extra = ax2.get_legend_handles_labels()
            _outside_legend(ax, handles[0] + extra[0], handles[1] + extra[1])
        else:
            _outside_legend(ax, *ax.get_legend_handles_labels())
        ax.set_title(text("phases", cjk))
        return save_figure(fig, path, dpi)


def _outside_legend(ax, handles, labels) -> None:
    """Legend below the axes: the curve, the change points and the lr line fill the plot area."""
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=4)


def _lr_events(ax2, analysis, history, cjk: bool) -> None:
    """Annotate schedule events (end of warm-up, lr near zero) on the learning-rate axis."""
    steps, lr = train_steps(history), train_col(history, H.LR)
    mid = 0.5 * (steps.min() + steps.max())
    for ev in get(analysis, "phases", "lr_events", default=[]) or []:
        if ev.get("step") is None:
            continue
        y = float(np.interp(ev["step"], steps, lr))
        name = str(ev.get("event", ""))
        label = text(name, cjk) if name in LABELS else name.replace("_", " ")
        right_half = ev["step"] > mid  # keep the text inside the axes
        ax2.plot([ev["step"]], [y], marker="v", color=COLORS["lr"], markersize=6)
        ax2.annotate(label, (ev["step"], y), textcoords="offset points",
                     xytext=(-6 if right_half else 6, 8), ha="right" if right_half else "left",
                     fontsize=FONT_SIZES["small"], color=COLORS["lr"])
