"""Markdown tables and the text report of a ``downstream`` block (``downstream_analysis``).

Scores and accuracies are shown in percent; correlations with their 95 % interval.
"""

from __future__ import annotations

import math


def pct(value, digits: int = 2) -> str:
    """A fraction in percent, ``n/a`` for None or NaN.

    >>> pct(0.8312), pct(None)
    ('83.12', 'n/a')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def with_ci(value, ci) -> str:
    """``0.91 [0.62, 0.98]``; ``n/a`` when the value is missing.

    >>> with_ci(0.912, [0.62, 0.981]), with_ci(None, None)
    ('0.91 [0.62, 0.98]', 'n/a')
    """
    if value is None or not math.isfinite(value):
        return "n/a"
    lo, hi = ci if ci else (None, None)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{value:.2f} [n/a]"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def _yes_no(value) -> str:
    return "—" if value is None else ("yes" if value else "no")


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def steps_markdown(block: dict) -> str:
    """One row per task and checkpoint step: held-out MLM accuracy, the seeds' scores, and
    whether the worst seed beats the best random-init seed (— at step 0 itself)."""
    head = ["task", "step", "held-out MLM acc %", "seeds", "mean %", "SD (points)", "min %", "max %",
            "worst seed > best random"]
    lines = [_row(head), _row(["---"] * len(head))]
    for task, t in block["tasks"].items():
        for s in t["steps"]:
            mlm = pct(s["mlm_acc"]) + (" (interp.)" if s["mlm_how"] == "interpolated" else "")
            step = "0 (random init)" if s["step"] == 0 else f"{s['step']:,}"
            lines.append(_row([task, step, mlm, s["n"], pct(s["mean"]), pct(s["sd"]),
                               pct(s["min"]), pct(s["max"]), _yes_no(s["beats_random"])]))
    return "\n".join(lines) + "\n"


def _saturation_cell(sat: dict) -> str:
    if sat["still_rising"]:
        return f"not yet (best at the last step, {sat['best_step']:,})"
    return f"{sat['step']:,} (best {pct(sat['best_mean'])} at {sat['best_step']:,})"


def _corr_cells(c: dict) -> list[str]:
    p, s = c.get("pearson"), c.get("spearman")
    return [with_ci(p and p["r"], p and p["ci95"]), with_ci(s and s["rho"], s and s["ci95"])]


def summary_markdown(block: dict) -> str:
    """One row per task: Pearson r and Spearman rho (95 % intervals) of the score against
    pretraining step and against held-out MLM accuracy, where more pretraining stops paying,
    and whether every pretrained step's worst seed beats the best random-init seed."""
    head = ["task", "metric", "fine-tunes", "r vs step", "rho vs step", "r vs MLM acc",
            "rho vs MLM acc", "stops paying at step", "pretrained beats random"]
    lines = [_row(head), _row(["---"] * len(head))]
    for task, t in block["tasks"].items():
        lines.append(_row([task, t["metric"] or "score", t["n_rows"],
                           *_corr_cells(t["vs_step"]), *_corr_cells(t["vs_mlm_acc"]),
                           _saturation_cell(t["saturation"]),
                           _yes_no(t["beats_random"]["all"])]))
    return "\n".join(lines) + "\n"


def format_downstream(block: dict) -> str:
    """The report section: both tables, how the intervals were made, and the notes."""
    b = block["bootstrap"]
    lines = ["", "下游任务 | Downstream tasks", "-" * 60,
             f"record: {block.get('record') or 'n/a'}; held-out MLM accuracy: "
             + (f"the history's {block['mlm_source']}" if block.get("mlm_source") else "none"),
             "", summary_markdown(block),
             steps_markdown(block),
             f"Pearson: Fisher-z {b['level']:.0%} interval over the fine-tunes; Spearman: "
             f"percentile interval from {b['n_boot']} resamples of whole checkpoints "
             f"(seed {b['seed']}); stops paying: the first step whose mean is within the pooled "
             f"seed SD of the best step's mean"]
    for task, t in block["tasks"].items():
        cells = [f"{what} {with_ci(m and m['r'], m and m['ci95'])} ({c['n_checkpoints']} "
                 f"checkpoints)" for what, c in (("r vs step", t["vs_step"]),
                                                 ("r vs MLM acc", t["vs_mlm_acc"]))
                 for m in [c.get("pearson_means")]]
        lines.append(f"{task}, checkpoint means (Fisher interval over the checkpoints): "
                     f"{'; '.join(cells)}")
    lines += [f"note: {n}" for n in block["notes"]]
    return "\n".join(lines) + "\n"
