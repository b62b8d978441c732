"""Scores of interval forecasts: the interval score, width and coverage (Gneiting & Raftery 2007).

The interval score of a central ``(1 - alpha)`` interval ``[l, u]`` for an outcome ``y`` is
``(u - l) + (2 / alpha) (l - y) [y < l] + (2 / alpha) (y - u) [y > u]``: its width, plus a
penalty for a miss that grows with the miss. It is proper (an honest forecaster minimises it
in expectation by quoting the true quantiles) and lower is better, so an interval that is narrow
but misses and one that covers but is needlessly wide both score badly.
"""

from __future__ import annotations

import math

import numpy as np


def interval_score(lower: float, upper: float, y: float, level: float = 0.95) -> float:
    """The interval score of ``[lower, upper]`` at nominal ``level`` for the outcome ``y``.

    >>> interval_score(1.0, 3.0, 2.0)  # covered: the width
    2.0
    >>> round(interval_score(1.0, 3.0, 3.5), 6)  # missed by 0.5: width + 2 / 0.05 * 0.5
    22.0
    >>> round(interval_score(1.0, 3.0, 0.0, level=0.5), 6)  # missed by 1 at 50 %: 2 + 4
    6.0
    """
    alpha = 1.0 - level
    return float((upper - lower) + (2.0 / alpha) * max(lower - y, 0.0)
                 + (2.0 / alpha) * max(y - upper, 0.0))


def interval_summary(rows: list[dict], level: float = 0.95, scale: float = 1.0) -> dict:
    """Coverage, mean width, mean interval score and mean absolute point error of forecast
    rows ``{"lower", "upper", "value", "actual"}`` (rows with a None are not forecasts).

    ``scale`` multiplies widths, scores and errors (100 for points or per cent).

    >>> s = interval_summary([{"lower": 0, "upper": 2, "value": 1, "actual": 1.5},
    ...                       {"lower": 0, "upper": 1, "value": 0.5, "actual": 2}])
    >>> s["coverage"], s["mean_width"], round(s["mean_interval_score"], 6), s["mean_abs_error"]
    (0.5, 1.5, 21.5, 1.0)
    """
    done = [r for r in rows if None not in (r.get("lower"), r.get("upper"), r.get("value"),
                                            r.get("actual"))]
    if not done:
        return {"n": 0, "covered": 0, "coverage": None, "mean_width": None,
                "mean_interval_score": None, "mean_abs_error": None}
    covered = [r["lower"] <= r["actual"] <= r["upper"] for r in done]
    return {"n": len(done), "covered": int(sum(covered)), "coverage": float(np.mean(covered)),
            "mean_width": scale * float(np.mean([r["upper"] - r["lower"] for r in done])),
            "mean_interval_score": scale * float(np.mean(
                [interval_score(r["lower"], r["upper"], r["actual"], level) for r in done])),
            "mean_abs_error": scale * float(np.mean([abs(r["value"] - r["actual"])
                                                     for r in done]))}


def binomial_band(n: int, p: float = 0.95, mass: float = 0.95) -> tuple[int, int]:
    """The central ``mass`` range of covered counts out of ``n`` forecasts at coverage ``p``
    (the smallest and largest count with at most ``(1 - mass) / 2`` probability beyond).

    >>> binomial_band(27)
    (23, 27)
    """
    tail = (1.0 - mass) / 2.0
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    cdf = np.cumsum(pmf)
    lo = int(np.searchsorted(cdf, tail, side="right"))
    hi = int(np.searchsorted(cdf, 1.0 - tail - 1e-12, side="left"))
    return lo, min(hi, n)


def hindsight_band(errors, k: int) -> float:
    """The width of the narrowest range holding ``k`` of ``errors`` (``actual - forecast``).

    Chosen knowing every actual, it is the least width a band of one constant width around the
    forecasts can have and still cover ``k`` of them: a floor for any interval of the form
    forecast + constant offsets, however its offsets were set.

    >>> hindsight_band([-1.0, 0.5, 0.0, 4.0], 3)  # -1, 0, 0.5
    1.5
    >>> hindsight_band([2.0, 2.0], 1), hindsight_band([5.0], 0)  # covering none takes no width
    (0.0, 0.0)
    """
    e = np.sort(np.asarray(errors, dtype=np.float64))
    if not 0 <= k <= len(e):
        raise ValueError(f"k must be between 0 and {len(e)} (got {k})")
    if k == 0:
        return 0.0
    return float(np.min(e[k - 1:] - e[:len(e) - k + 1]))
