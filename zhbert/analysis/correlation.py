"""Correlation of accuracy with training step: Pearson (with a Fisher-z interval), Spearman, Kendall."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def fisher_ci(r: float, n: float, level: float = 0.95) -> list[float]:
    """Fisher-z confidence interval of a Pearson ``r`` from ``n`` (possibly effective) points.

    ``z = atanh(r)`` is close to normal with standard error ``1/sqrt(n-3)``.
    """
    if n <= 3 or not math.isfinite(r):
        return [math.nan, math.nan]
    r = float(np.clip(r, -0.999999999, 0.999999999))
    z = math.atanh(r)
    half = stats.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    return [math.tanh(z - half), math.tanh(z + half)]


def pearson_p_value(r: float, n: float) -> float:
    """Two-sided p-value of ``r`` under H0: rho = 0 with ``n`` (possibly effective) points."""
    if n <= 2 or abs(r) >= 1:
        return 0.0 if abs(r) >= 1 else math.nan
    t = r * math.sqrt((n - 2) / (1 - r * r))
    return float(2 * stats.t.sf(abs(t), n - 2))


def pearson(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> dict:
    """Pearson ``r``, its p-value and the Fisher-z interval."""
    res = stats.pearsonr(x, y)
    r = float(res.statistic)
    return {"r": r, "p_value": float(res.pvalue), "ci95": fisher_ci(r, len(x), level)}


def spearman(x: np.ndarray, y: np.ndarray) -> dict:
    """Spearman rank correlation (monotone association, insensitive to curvature)."""
    res = stats.spearmanr(x, y)
    return {"rho": float(res.statistic), "p_value": float(res.pvalue)}


def kendall(x: np.ndarray, y: np.ndarray) -> dict:
    """Kendall tau-b (O(n log n) in scipy, so usable on long series)."""
    res = stats.kendalltau(x, y)
    return {"tau": float(res.statistic), "p_value": float(res.pvalue)}


def correlations(steps: np.ndarray, acc: np.ndarray) -> dict:
    """All three correlations plus the original's ``pearson_correlation`` and ``r_squared``."""
    p = pearson(steps, acc)
    return {"pearson_correlation": p["r"], "r_squared": p["r"] ** 2, "pearson": p,
            "spearman": spearman(steps, acc), "kendall": kendall(steps, acc)}


def describe(acc: np.ndarray) -> dict:
    """``mlm_stats`` as in the original: mean, max, min and the population std (ddof=0)."""
    return {"mean": float(np.mean(acc)), "max": float(np.max(acc)), "min": float(np.min(acc)),
            "std": float(np.std(acc))}


def loss_stats(loss: np.ndarray | None) -> dict | None:
    """``loss_stats`` as in the original (first, last, first-last) plus the decrease in percent."""
    if loss is None or len(loss) == 0:
        return None
    initial, final = float(loss[0]), float(loss[-1])
    pct = 100.0 * (initial - final) / initial if initial != 0 else math.nan
    return {"initial": initial, "final": final, "decrease": initial - final, "decrease_pct": pct}


def weighted_spearman(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Spearman rho of each sample that repeats point ``i`` ``weights[b, i]`` times, one per row
    ``b`` of ``weights`` (NaN where the sample's ``x`` or ``y`` is constant).

    The copies of a point are ties, so its average rank in sample ``b`` is the weight of the
    points below it plus half the weight of its ties plus one half; rho is the weighted Pearson r
    of those ranks. All bootstrap resamples at once, with no ranking per resample.

    >>> w = np.array([[1, 1, 1, 1], [1, 1, 2, 0], [0, 0, 2, 0]])  # x = 1, 2, 3, 3 in row 1
    >>> weighted_spearman(np.array([1., 2, 3, 4]), np.array([1., 3, 2, 4]), w).round(4).tolist()
    [0.8, 0.3333, nan]
    """
    w = np.atleast_2d(np.asarray(weights, dtype=float))

    def ranks(v: np.ndarray) -> np.ndarray:
        below = (v[None, :] < v[:, None]).astype(float)  # [i, j]: point j lies below point i
        same = (v[None, :] == v[:, None]).astype(float)
        return w @ below.T + (w @ same.T + 1) / 2

    total = w.sum(axis=1, keepdims=True)
    rx, ry = ranks(x), ranks(y)
    dx = rx - (w * rx).sum(axis=1, keepdims=True) / total
    dy = ry - (w * ry).sum(axis=1, keepdims=True) / total
    present = w > 0
    spread = [np.where(present, v, -np.inf).max(1) > np.where(present, v, np.inf).min(1)
              for v in (x, y)]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (w * dx * dy).sum(1) / np.sqrt((w * dx * dx).sum(1) * (w * dy * dy).sum(1))
    return np.where(spread[0] & spread[1], rho, np.nan)


def spearman_bootstrap(x, y, groups=None, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> dict:
    """Spearman rho of ``y`` on ``x`` with a percentile bootstrap interval.

    With ``groups`` (one label per point) the bootstrap draws whole groups with replacement and
    keeps all their points (a cluster bootstrap): the fine-tunes of one checkpoint share its step
    and MLM accuracy, so the checkpoint, not the fine-tune, is the unit that varies along a run.
    Without ``groups`` it draws points. A resample whose ``x`` or ``y`` is constant has no rho and
    is left out (``n_valid`` counts the rest); with fewer than 3 units there is no interval.
    Deterministic for a ``seed``.

    >>> b = spearman_bootstrap([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5], n_boot=200, seed=1)
    >>> round(b["rho"], 4), b["ci95"][0] <= b["rho"] <= b["ci95"][1], b["unit"]
    (0.8857, True, 'point')
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rho = float(weighted_spearman(x, y, np.ones((1, x.size)))[0])
    labels = np.arange(x.size) if groups is None else np.asarray(groups)
    units, index = np.unique(labels, return_inverse=True)
    picks = np.random.default_rng(seed).integers(0, units.size, size=(n_boot, units.size))
    counts = (picks[:, :, None] == np.arange(units.size)).sum(axis=1)  # draws of each unit
    draws = weighted_spearman(x, y, counts[:, index])
    draws = draws[np.isfinite(draws)]
    tail = 100 * (1 - level) / 2
    ci = ([float(v) for v in np.percentile(draws, [tail, 100 - tail])]
          if draws.size >= 2 and units.size >= 3 and math.isfinite(rho) else [math.nan, math.nan])
    return {"rho": rho, "ci95": ci, "n_boot": int(n_boot), "n_valid": int(draws.size),
            "unit": "point" if groups is None else "group", "n_units": int(units.size),
            "seed": int(seed)}
