"""Downstream score against pretraining step and held-out MLM accuracy (``downstream.png``).

Drawn with seaborn on the house style's axes, from ``analysis["downstream"]``
(:func:`zhbert.analysis.downstream.downstream_analysis`): one column per task, the score against
the pretraining step on top and against the held-out MLM accuracy below. seaborn is imported on
the first draw (it imports pyplot; this package stays pyplot-free at import time), pandas too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from zhbert.plots.common import drawing, get, note, step_axis
from zhbert.plots.style import (
    COLORS,
    CYCLE,
    DEFAULT_DPI,
    FONT_SIZES,
    LABELS,
    new_figure,
    save_figure,
    text,
)

PRETRAINED, RANDOM = CYCLE[0], COLORS["smooth"]


def task_label(task: str, cjk: bool) -> str:
    """The task's label from the style table (``task_<name>``), else its name."""
    return text(f"task_{task}", cjk) if f"task_{task}" in LABELS else task


def _stats_line(corr: Mapping | None) -> str:
    """``r 0.85 [0.60, 0.95] · ρ 0.84 [0.22, 0.94]`` (n/a without a correlation)."""
    from zhbert.analysis.downstream_report import with_ci

    p, s = get(corr, "pearson"), get(corr, "spearman")
    return (f"r {with_ci(p and p['r'], p and p['ci95'])} · "
            f"ρ {with_ci(s and s['rho'], s and s['ci95'])}")


def _random_line(ax, rows, cjk: bool) -> None:
    """The random-init seeds' mean as a dotted reference line."""
    random = rows[rows["step"] == 0]
    if not random.empty:
        ax.axhline(random["score"].mean(), color=COLORS["baseline"], linestyle=":",
                   linewidth=1.0, label=text("random_init_mean", cjk))


def _percent(axis) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(1.0))


def _vs_step(ax, t: Mapping, rows, cjk: bool) -> None:
    import seaborn as sns

    sns.lineplot(data=rows, x="step", y="score", errorbar="sd", marker="o", color=PRETRAINED,
                 ax=ax, label=text("mean_sd", cjk))
    sns.scatterplot(data=rows[rows["step"] > 0], x="step", y="score", color=PRETRAINED,
                    alpha=0.5, s=14, ax=ax, label=text("seeds", cjk))
    sns.scatterplot(data=rows[rows["step"] == 0], x="step", y="score", color=RANDOM,
                    marker="X", s=40, ax=ax, label=text("random_init", cjk))
    _random_line(ax, rows, cjk)
    sat = t["saturation"]
    if not sat["still_rising"]:
        ax.axvline(sat["step"], color=COLORS["best"], linestyle="--", linewidth=1.0,
                   label=text("stops_paying", cjk))
        ax.annotate(f"{sat['step']:,}", (sat["step"], 0.02), xycoords=("data", "axes fraction"),
                    xytext=(3, 0), textcoords="offset points", color=COLORS["best"],
                    fontsize=FONT_SIZES["small"])
    else:
        ax.text(0.98, 0.04, text("still_rising", cjk), transform=ax.transAxes, ha="right",
                va="bottom", color=COLORS["best"], fontsize=FONT_SIZES["small"])
    positive = rows.loc[rows["step"] > 0, "step"]
    if not positive.empty and positive.max() / positive.min() > 30:
        ax.set_xscale("symlog", linthresh=float(positive.min()), linscale=0.5)
    step_axis(ax)
    ax.set_xlabel(text("pretrain_step", cjk))


def _vs_mlm(ax, t: Mapping, rows, cjk: bool) -> None:
    import seaborn as sns

    known = rows.dropna(subset=["mlm_acc"])
    if known.empty:
        note(ax, text("no_heldout_mlm", cjk))
        return
    if known["mlm_acc"].nunique() >= 2:
        sns.regplot(data=known, x="mlm_acc", y="score", ci=None, scatter=False, truncate=True,
                    color=COLORS["linear"], line_kws={"linestyle": "--", "linewidth": 1.0},
                    label=text("linear_fit", cjk), ax=ax)
    sns.lineplot(data=known, x="mlm_acc", y="score", errorbar="sd", err_style="bars",
                 marker="o", color=PRETRAINED, err_kws={"capsize": 3}, ax=ax,
                 label=text("mean_sd", cjk))
    sns.scatterplot(data=known, x="mlm_acc", y="score", color=PRETRAINED, alpha=0.5, s=14,
                    ax=ax, label=text("seeds", cjk))
    random = known[known["step"] == 0]
    if not random.empty:
        sns.scatterplot(data=random, x="mlm_acc", y="score", color=RANDOM, marker="X", s=40,
                        ax=ax, label=text("random_init", cjk))
    _random_line(ax, rows, cjk)
    _percent(ax.xaxis)
    ax.set_xlabel(text("heldout_mlm_acc", cjk))
    ax.set_title(_stats_line(t["vs_mlm_acc"]), fontsize=FONT_SIZES["small"])


def _legend(fig, axes) -> None:
    """One legend below the panels, each label once (the panels' own legends removed)."""
    entries: dict[str, object] = {}
    for ax in axes.flat:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            entries.setdefault(label, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    fig.legend(list(entries.values()), list(entries), loc="outside lower center",
               ncol=min(len(entries), 4))


def downstream(history, analysis: Mapping | None, path: str | os.PathLike,
               *, dpi: int = DEFAULT_DPI) -> Path:
    """One column per task: the test score against pretraining step (the seeds' mean with an
    SD band, each seed a point, random init as crosses and a dotted line, the step where more
    pretraining stops paying dashed) and against held-out MLM accuracy (checkpoint means with SD
    bars, the seeds, a straight-line fit), with Pearson r and Spearman rho and their intervals."""
    import pandas as pd

    tasks = get(analysis, "downstream", "tasks", default={}) or {}
    with drawing() as cjk:
        n = max(len(tasks), 1)
        fig = new_figure((min(0.6 + 3.7 * n, 16.0), 7.2))
        if not tasks:
            note(fig.add_subplot(1, 1, 1), text("no_downstream", cjk))
            return save_figure(fig, path, dpi)
        axes = fig.subplots(2, n, squeeze=False)
        for col, (task, t) in enumerate(tasks.items()):
            rows = pd.DataFrame(t["rows"]).astype({"mlm_acc": float})
            top, bottom = axes[0, col], axes[1, col]
            bottom.sharey(top)
            _vs_step(top, t, rows, cjk)
            _vs_mlm(bottom, t, rows, cjk)
            top.set_title(f"{task_label(task, cjk)}\n{_stats_line(t['vs_step'])}")
            metric = f" ({t['metric']})" if t.get("metric") else ""
            top.set_ylabel(f"{text('test_score', cjk)}{metric}")
            bottom.set_ylabel(top.get_ylabel())
            _percent(top.yaxis)
        _legend(fig, axes)
        fig.suptitle(text("downstream", cjk))
        return save_figure(fig, path, dpi)
