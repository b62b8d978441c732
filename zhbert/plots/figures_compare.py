"""Comparison of several runs on shared axes (``comparison_50k_100k.png``).

Everything numeric comes from ``analysis["comparison"]`` (``zhbert.analysis.analyze`` with
``compare=``): per-run summaries (``runs``) and, for each run against the reference, accuracies
at matched steps (``matched``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from zhbert.plots.common import (
    baseline_lines,
    drawing,
    ema,
    fmt_num,
    get,
    metric_label,
    note,
    step_axis,
    table_or_note,
)
from zhbert.plots.style import CYCLE, DEFAULT_DPI, new_figure, save_figure, text

#: summary fields shown in the table (path is left out: too long for a cell)
TABLE_FIELDS = ("series_kind", "n", "last_step", "final_acc", "max_acc", "pearson_r", "best_fit",
                "asymptote")


def _run_kinds(comp: Mapping | None, n_runs: int) -> list[str]:
    """Series kind the analysis used for each run ("auto" when the analysis does not say)."""
    runs = get(comp, "runs", default=[]) or []
    kinds = [r.get("series_kind") if isinstance(r, Mapping) else None for r in runs]
    kinds += [None] * (n_runs - len(kinds))
    return [k if k in ("eval", "train") else "auto" for k in kinds[:n_runs]]


def _table(comp: Mapping | None) -> tuple[list[str], list[list[str]]]:
    """Columns = runs, rows = summary metrics, then mean/final difference vs the reference."""
    runs = [r for r in get(comp, "runs", default=[]) or [] if isinstance(r, Mapping)]
    if not runs:
        return [], []
    header = [str(r.get("label", f"run {i + 1}")) for i, r in enumerate(runs)]

    def cell(value) -> str:
        return value if isinstance(value, str) else fmt_num(value, 4)

    lower = all(r.get("max_acc") is None and "best" in r for r in runs)  # a loss: its minimum
    fields = [("best" if lower and k == "max_acc" else k) for k in TABLE_FIELDS]
    rows = [[key] + [cell(r.get(key)) for r in runs] for key in fields
            if any(key in r for r in runs)]
    pairs = {p.get("b"): p for p in get(comp, "matched", default=[]) or []
             if isinstance(p, Mapping)}
    for key in ("mean_diff", "final_diff"):
        rows.append([f"{key} vs {header[0]}", "—"]
                    + [cell(get(pairs, h, key)) for h in header[1:]])
    return header, rows


def _curves(ax, runs, kinds, comp, cjk) -> None:
    from zhbert.analysis import select_series

    for i, ((label, hist), kind) in enumerate(zip(runs, kinds, strict=True)):
        series = select_series(hist, kind)
        colour = CYCLE[i % len(CYCLE)]
        if len(series.steps) > 100:
            ax.plot(series.steps, series.acc, color=colour, alpha=0.2, linewidth=0.6)
            ax.plot(series.steps, ema(series.steps, series.acc), color=colour, linewidth=1.8,
                    label=f"{label} ({series.kind}, EMA)")
        else:
            ax.plot(series.steps, series.acc, color=colour, marker="o", markersize=3,
                    label=f"{label} ({series.kind})")
    for j, pair in enumerate(get(comp, "matched", default=[]) or []):
        steps = pair.get("steps") or []
        if not steps:
            continue
        ax.plot(steps, pair["a_acc"], "s", color=CYCLE[0], markersize=4, markerfacecolor="none")
        ax.plot(steps, pair["b_acc"], "s", color=CYCLE[(j + 1) % len(CYCLE)], markersize=4,
                markerfacecolor="none", label=text("matched", cjk) if j == 0 else None)
    ax.set_xlabel(text("step", cjk))
    ax.set_ylabel(metric_label(select_series(runs[0][1], kinds[0]), cjk))
    step_axis(ax)
    ax.legend(loc="lower right")
    ax.set_title(text("comparison", cjk))


def _diffs(ax, comp, cjk) -> None:
    pairs = [p for p in get(comp, "matched", default=[]) or [] if p.get("steps")]
    if not pairs:
        note(ax, text("no_data", cjk))
    for j, pair in enumerate(pairs):
        ax.plot(pair["steps"], pair["diff_b_minus_a"], marker="s", markersize=4,
                color=CYCLE[(j + 1) % len(CYCLE)], label=f"{pair.get('b')} − {pair.get('a')}")
    if pairs:
        ax.axhline(0, color="#000000", linewidth=0.8)
        ax.set_xlabel(text("step", cjk))
        step_axis(ax)
        ax.legend(loc="best")
    ax.set_title(text("diff_vs_ref", cjk))


def comparison(runs: Sequence[tuple[str, object]], analysis: Mapping | None,
               path: str | os.PathLike, *, dpi: int = DEFAULT_DPI) -> Path:
    """The runs' accuracy curves on shared axes with the matched steps marked, their differences
    from the reference run, and a table of per-run metrics (all from ``analysis["comparison"]``).
    ``runs`` is ``[(label, History), ...]`` with the reference (analysed) run first."""
    comp = get(analysis, "comparison", default=None)
    kinds = _run_kinds(comp, len(runs))
    header, rows = _table(comp)
    with drawing() as cjk:
        fig = new_figure((11, 5.2 + 0.24 * max(len(rows), 3)))
        gs = fig.add_gridspec(2, 3, height_ratios=[4.2, 0.3 + 0.24 * max(len(rows), 3)])
        ax = fig.add_subplot(gs[0, :2])
        _curves(ax, runs, kinds, comp, cjk)
        baseline_lines(ax, runs[0][1], analysis, cjk)  # the reference run's held-out set
        _diffs(fig.add_subplot(gs[0, 2]), comp, cjk)
        tab = fig.add_subplot(gs[1, :])
        tab.axis("off")
        table_or_note(tab, rows, ["metric"] + header, text("no_data", cjk))
        return save_figure(fig, path, dpi)
