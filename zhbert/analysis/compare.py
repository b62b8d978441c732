"""Comparison of runs: per-run summaries and accuracy differences at matched steps."""

from __future__ import annotations

import math

import numpy as np

from zhbert.analysis.correlation import pearson
from zhbert.analysis.curves import choose_best, fit_all
from zhbert.analysis.history import Series
from zhbert.analysis.lower import LOWER_FAMILIES
from zhbert.errors import UserError

#: number of evenly spaced matched steps listed per pair (the mean uses every common step)
MATCHED_POINTS = 11


def summarize(label: str, path: str, series: Series) -> dict:
    """Final and max accuracy (``best``: the best value in the metric's direction; ``max_acc``
    None for a lower-is-better metric), Pearson r, best-fit family and its asymptote for one run."""
    fits = fit_all(series.steps, series.acc, None if series.higher_is_better else LOWER_FAMILIES)
    best = choose_best(fits)
    return {"label": label, "path": path, "series_kind": series.kind, "n": series.n,
            "metric": series.metric, "last_step": float(series.steps[-1]),
            "final_acc": float(series.acc[-1]),
            "max_acc": float(series.acc.max()) if series.higher_is_better else None,
            "best": float(series.acc[series.best_index]),
            "pearson_r": pearson(series.steps, series.acc)["r"],
            "best_fit": best["family"] if best else None,
            "asymptote": best["asymptote"] if best else None}


def matched(label_a: str, a: Series, label_b: str, b: Series) -> dict:
    """Accuracy of both runs, linearly interpolated at common steps within the overlap.

    The mean difference uses the steps of the sparser run inside the overlap (so no run is
    interpolated more finely than it was measured); ``steps`` lists 11 evenly spaced points.
    """
    lo = max(a.steps[0], b.steps[0])
    hi = min(a.steps[-1], b.steps[-1])
    base = {"a": label_a, "b": label_b, "overlap": None, "steps": [], "a_acc": [], "b_acc": [],
            "diff_b_minus_a": [], "mean_diff": None, "final_diff": None, "n_common": 0}
    if hi <= lo:
        return base
    sparse = a if a.n <= b.n else b
    common = sparse.steps[(sparse.steps >= lo) & (sparse.steps <= hi)]
    diff_all = np.interp(common, b.steps, b.acc) - np.interp(common, a.steps, a.acc)
    grid = np.linspace(lo, hi, MATCHED_POINTS)
    ya, yb = np.interp(grid, a.steps, a.acc), np.interp(grid, b.steps, b.acc)
    base.update(overlap=[float(lo), float(hi)], steps=grid.tolist(), a_acc=ya.tolist(),
                b_acc=yb.tolist(), diff_b_minus_a=(yb - ya).tolist(), n_common=int(common.size),
                mean_diff=float(diff_all.mean()) if common.size else math.nan,
                final_diff=float(yb[-1] - ya[-1]))
    return base


def comparison(runs: list[tuple[str, str, Series]]) -> dict:
    """``comparison`` block: the first run is the reference for every matched pair."""
    mixed = {s.higher_is_better for _, _, s in runs}
    if len(mixed) > 1:
        names = ", ".join(f"{label} ({s.metric})" for label, _, s in runs)
        raise UserError(f"cannot compare runs whose metrics go opposite ways: {names}; pick the "
                        f"same kind of metric for every run with --metric")
    summaries = [summarize(label, path, s) for label, path, s in runs]
    ref_label, _, ref = runs[0]
    pairs = [matched(ref_label, ref, label, s) for label, _, s in runs[1:]]
    return {"reference": ref_label, "runs": summaries, "matched": pairs}
