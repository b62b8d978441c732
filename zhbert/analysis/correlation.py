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


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho as the Pearson r of the average ranks (scipy's definition, less overhead)."""
    return float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])


def spearman_bootstrap(x, y, groups=None, n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> dict:
    """Spearman rho of ``y`` on ``x`` with a percentile bootstrap interval.

    With ``groups`` (one label per point) the bootstrap draws whole groups with replacement and
    keeps all their points (a cluster bootstrap): the fine-tunes of one checkpoint share its step
    and MLM accuracy, so the checkpoint, not the fine-tune, is the unit that varies along a run.
    Without ``groups`` it draws points. A resample whose ``x`` or ``y`` is constant has no rho and
    is left out (``n_valid`` counts the rest). Deterministic for a ``seed``.

    >>> b = spearman_bootstrap([1, 2, 3, 4, 5, 6], [1, 3, 2, 4, 6, 5], n_boot=200, seed=1)
    >>> round(b["rho"], 4), b["ci95"][0] <= b["rho"] <= b["ci95"][1], b["unit"]
    (0.8857, True, 'point')
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rho = _rank_corr(x, y) if np.ptp(x) > 0 and np.ptp(y) > 0 else math.nan
    labels = np.arange(x.size) if groups is None else np.asarray(groups)
    units, index = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(index == u) for u in range(units.size)]
    rng = np.random.default_rng(seed)
    draws = []
    for picks in rng.integers(0, units.size, size=(n_boot, units.size)):
        rows = np.concatenate([members[u] for u in picks])
        if np.ptp(x[rows]) > 0 and np.ptp(y[rows]) > 0:
            draws.append(_rank_corr(x[rows], y[rows]))
    tail = 100 * (1 - level) / 2
    ci = ([float(v) for v in np.percentile(draws, [tail, 100 - tail])]
          if len(draws) >= 2 and math.isfinite(rho) else [math.nan, math.nan])
    return {"rho": rho, "ci95": ci, "n_boot": int(n_boot), "n_valid": len(draws),
            "unit": "point" if groups is None else "group", "n_units": int(units.size),
            "seed": int(seed)}
