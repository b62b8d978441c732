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
