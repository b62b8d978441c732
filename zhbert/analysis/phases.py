"""Phases of a training curve: equal quarters, detected change points, lr-schedule events,
marginal gain from the best fit, and the measurement-noise level."""

from __future__ import annotations

import math

import numpy as np
import ruptures as rpt

from zhbert.analysis.curves import bin_series, evaluate_family
from zhbert.analysis.trend import noise_sd

#: change-point search runs on at most this many (bin-mean) points: Pelt is superlinear in n
CP_MAX_POINTS = 1000
MARGINAL_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


def quarters(steps: np.ndarray, acc: np.ndarray) -> list[dict]:
    """Four equal step ranges; ``gain`` is the least-squares slope within the quarter times its
    span (robust to single noisy points), ``gain_per_1k`` the slope per 1,000 steps."""
    edges = np.linspace(steps[0], steps[-1], 5)
    out = []
    for q in range(4):
        last = q == 3
        m = (steps >= edges[q]) & ((steps <= edges[q + 1]) if last else (steps < edges[q + 1]))
        s, a = steps[m], acc[m]
        slope = float(np.polyfit(s, a, 1)[0]) if len(s) >= 2 and np.ptp(s) > 0 else math.nan
        out.append({"start_step": float(edges[q]), "end_step": float(edges[q + 1]),
                    "n": int(m.sum()), "mean_acc": float(a.mean()) if len(a) else math.nan,
                    "gain": slope * float(edges[q + 1] - edges[q]), "gain_per_1k": slope * 1000})
    return out


def _segment_slope(s: np.ndarray, a: np.ndarray) -> float:
    return float(np.polyfit(s, a, 1)[0] * 1000) if len(s) >= 2 and np.ptp(s) > 0 else math.nan


def change_points(steps: np.ndarray, acc: np.ndarray) -> dict:
    """Breaks in a piecewise-linear model (ruptures Pelt, ``linear`` cost).

    The penalty is a BIC-type ``3 * sigma^2 * ln(n)`` (slope, intercept and break location per
    extra segment), with sigma from ``noise_sd`` of the analysed points, so a noisier curve needs
    a larger improvement before a break is declared.
    """
    bs, ba = bin_series(steps, acc, CP_MAX_POINTS)
    n = len(ba)
    min_size = max(5, n // 50)
    if n < 2 * min_size + 2:
        return {"method": "none (too few points)", "penalty": None, "points": []}
    sigma = max(noise_sd(ba), 1e-12)
    pen = 3 * sigma**2 * math.log(n)
    x = (bs - bs[0]) / max(np.ptp(bs), 1e-12)
    signal = np.column_stack([ba, x, np.ones(n)])
    bkps = rpt.Pelt(model="linear", min_size=min_size, jump=max(1, n // 200)).fit(signal).predict(pen=pen)
    bounds = [0, *bkps]
    pts = []
    for i, b in enumerate(bkps[:-1]):
        before = slice(bounds[i], b)
        after = slice(b, bounds[i + 2])
        pts.append({"step": float(bs[b]), "index": int(b),
                    "slope_before_per_1k": _segment_slope(bs[before], ba[before]),
                    "slope_after_per_1k": _segment_slope(bs[after], ba[after])})
    return {"method": "ruptures.Pelt(model='linear')", "penalty": pen, "n_used": n, "points": pts}


def lr_events(steps: np.ndarray, lr: np.ndarray | None, near_zero: float = 0.01) -> list[dict]:
    """End of warmup (the lr peak) and the first step after it where lr <= 1% of the peak."""
    if lr is None or len(lr) == 0 or not np.isfinite(lr).all() or np.max(lr) <= 0:
        return []
    i_peak = int(np.argmax(lr))
    events = [{"step": float(steps[i_peak]), "event": "lr_peak_end_of_warmup",
               "lr": float(lr[i_peak])}]
    low = np.nonzero(lr[i_peak:] <= near_zero * lr[i_peak])[0]
    if low.size:
        j = i_peak + int(low[0])
        events.append({"step": float(steps[j]), "event": "lr_near_zero", "lr": float(lr[j])})
    return events


def phases(steps: np.ndarray, acc: np.ndarray, lr_steps: np.ndarray | None = None,
           lr: np.ndarray | None = None) -> dict:
    """The ``phases`` block; each lr event names the nearest detected change point."""
    cps = change_points(steps, acc)
    events = lr_events(lr_steps, lr) if lr_steps is not None else []
    for ev in events:
        near = min((p["step"] for p in cps["points"]), key=lambda s: abs(s - ev["step"]), default=None)
        ev["nearest_change_point_step"] = near
    return {"quarters": quarters(steps, acc), "change_points": cps["points"],
            "change_point_method": {k: v for k, v in cps.items() if k != "points"},
            "lr_events": events}


def marginal_gain(best: dict | None, steps: np.ndarray,
                  fractions=MARGINAL_FRACTIONS) -> list[dict]:
    """Slope of the best fit (accuracy per 1,000 steps) at fractions of the last step; a
    fraction before the first observed step is taken there, once."""
    if best is None:
        return []
    last, first = float(steps[-1]), float(steps[steps > 0].min())
    out = []
    for f in fractions:
        s = max(first, f * last)
        if out and s == out[-1]["step"]:
            continue
        h = max(1e-3 * last, 1e-6)
        lo, hi = max(s - h, first * 0.5), s + h
        y = evaluate_family(best["family"], best["params"], np.array([lo, hi]))
        out.append({"fraction": f, "step": s, "gain_per_1k": float((y[1] - y[0]) / (hi - lo) * 1000)})
    return out


def noise_block(acc: np.ndarray, kind: str) -> dict:
    """The ``noise`` block, with a note on what the number includes."""
    note = ("measured on training batches: includes batch-to-batch sampling noise as well as "
            "model change, so it overstates the noise of a held-out measurement"
            if kind == "train" else
            "measured on the fixed held-out set: sampling noise of that set plus model change")
    return {"sd_first_diff_over_sqrt2": noise_sd(acc), "series_kind": kind, "note": note}
