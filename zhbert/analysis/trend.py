"""Trend tests and the residual diagnostics that say whether i.i.d. p-values can be trusted.

Consecutive points of a training curve are not independent (the model at step t+1 is the model at
step t plus one update; batch noise is often autocorrelated), so the textbook Pearson p-value
overstates certainty. We report the plain Mann-Kendall test, the Hamed-Rao modification (which
inflates the variance for autocorrelation), Durbin-Watson, Ljung-Box and the lag-1 autocorrelation
of the straight-line residuals, and recompute the Pearson interval with an effective sample size.
"""

from __future__ import annotations

import math

import numpy as np
import pymannkendall as mk
from scipy import stats
from statsmodels.stats.stattools import durbin_watson
from statsmodels.tsa.stattools import acf

from zhbert.analysis.correlation import fisher_ci, pearson_p_value


def noise_sd(acc: np.ndarray) -> float:
    """Noise level from first differences: sd(diff)/sqrt(2) (a smooth trend barely contributes)."""
    return float(np.std(np.diff(acc)) / math.sqrt(2)) if len(acc) > 2 else math.nan


def second_diff_noise_sd(values: np.ndarray) -> float | None:
    """Point-to-point noise from second differences: sd(diff2)/sqrt(6), which a linear trend
    cancels exactly (first differences keep a steep curve's slope changes); None below 4 points.

    >>> second_diff_noise_sd(np.arange(10.0)), second_diff_noise_sd([1, 2])  # a line: no noise
    (0.0, None)
    """
    values = np.asarray(values, np.float64)
    if values.size < 4:
        return None
    return float(np.std(np.diff(values, 2)) / math.sqrt(6))


#: the measurement noise at the end of a curve is read off this last fraction of its points
TAIL_FRACTION = 0.5
TAIL_MIN_POINTS = 5


def tail_noise_sd(values: np.ndarray) -> float:
    """The noise of one point near the end of a curve: :func:`second_diff_noise_sd` of its last
    :data:`TAIL_FRACTION` (at least :data:`TAIL_MIN_POINTS` points), where the curve bends least;
    :func:`noise_sd` of the whole series when that has fewer than 4 points.

    A noise-free curve that fell steeply at first has no noise here, while its first differences
    mistake the early fall for noise:

    >>> y = 3 + 5 / np.arange(1.0, 21)
    >>> round(tail_noise_sd(y), 4), round(noise_sd(y), 2)
    (0.0006, 0.4)
    """
    values = np.asarray(values, np.float64)
    k = min(values.size, max(TAIL_MIN_POINTS, int(values.size * TAIL_FRACTION)))
    sd = second_diff_noise_sd(values[-k:])
    return sd if sd is not None else noise_sd(values)


#: pymannkendall's S statistic and Sen slope are O(n^2) in time (Sen's also in memory),
#: so longer series are thinned to this many evenly spaced points before the MK tests.
MK_MAX_POINTS = 2000


def thin_indices(n: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices (first and last included) keeping at most ``max_points``."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def lag1_autocorr(x: np.ndarray) -> float:
    """Sample lag-1 autocorrelation (mean removed, biased denominator, as in an ACF)."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    denom = float(np.dot(x, x))
    return float(np.dot(x[:-1], x[1:]) / denom) if denom > 0 else 0.0


def _mk_dict(res, method: str, n_used: int, n: int, step_per_index: float) -> dict:
    return {"method": method, "trend": res.trend, "p_value": float(res.p), "z": float(res.z),
            "tau": float(res.Tau), "s": float(res.s), "var_s": float(res.var_s),
            "sen_slope_per_1k": float(res.slope) / step_per_index * 1000.0,
            "n_used": int(n_used), "thinned": bool(n_used < n)}


def mann_kendall(steps: np.ndarray, acc: np.ndarray, max_points: int = MK_MAX_POINTS) -> dict:
    """Plain and Hamed-Rao modified Mann-Kendall tests (on a thinned series when long)."""
    idx = thin_indices(len(acc), max_points)
    x = np.asarray(acc)[idx]
    step_per_index = float(np.median(np.diff(np.asarray(steps)[idx]))) if len(idx) > 1 else 1.0
    plain = mk.original_test(x)
    modified = mk.hamed_rao_modification_test(x)
    return {"mann_kendall": _mk_dict(plain, "original", len(idx), len(acc), step_per_index),
            "modified_mann_kendall": _mk_dict(modified, "hamed_rao", len(idx), len(acc),
                                              step_per_index)}


def ljung_box_lags(n: int) -> int:
    """``min(10, n // 5)`` lags: the usual choice for non-seasonal series (at least 1)."""
    return max(1, min(10, n // 5))


def residual_diagnostics(steps: np.ndarray, acc: np.ndarray) -> dict:
    """Durbin-Watson, Ljung-Box p and lag-1 autocorrelation of the straight-line residuals."""
    slope, intercept = np.polyfit(steps, acc, 1)
    return diagnostics(acc - (slope * steps + intercept))


def diagnostics(resid: np.ndarray) -> dict:
    """Durbin-Watson, Ljung-Box p (``ljung_box_lags`` lags) and lag-1 autocorrelation."""
    lags = ljung_box_lags(len(resid))
    return {"durbin_watson": float(durbin_watson(resid)), "ljung_box_p": ljung_box_p(resid, lags),
            "ljung_box_lags": lags, "lag1_autocorr": lag1_autocorr(resid)}


def ljung_box_p(resid: np.ndarray, lags: int) -> float:
    """Ljung-Box p-value, ``Q = n(n+2) sum_k rho_k^2 / (n-k)`` against chi2(lags).

    Same statistic as statsmodels' ``acorr_ljungbox``, whose autocorrelations are computed by a
    direct O(n^2) correlation (40 s at 100K points); here by FFT.
    """
    n = len(resid)
    rho = acf(resid, nlags=lags, fft=True)[1:]
    q = n * (n + 2) * float(np.sum(rho**2 / (n - np.arange(1, lags + 1))))
    return float(stats.chi2.sf(q, lags))


def effective_n(n: int, rho1: float) -> float:
    """AR(1) effective sample size ``n (1 - rho1) / (1 + rho1)``, never above ``n`` nor below 3."""
    rho = min(max(rho1, 0.0), 0.999)
    return float(min(n, max(3.0, n * (1 - rho) / (1 + rho))))


def trend_analysis(steps: np.ndarray, acc: np.ndarray, r: float, p_value: float,
                   curve_resid: np.ndarray | None = None, curve: str | None = None) -> dict:
    """The ``trend`` block: MK tests, residual diagnostics, n_eff and a plain-language statement.

    ``n_eff`` uses the residuals of the best-fitting curve ``curve`` when given: a straight line
    misfits a saturating curve smoothly, so the lag-1 autocorrelation of its residuals is mostly
    lack of fit, not dependence between the measurements. The straight line's diagnostics stay
    in ``residuals`` (the original study's convention).
    """
    out = mann_kendall(steps, acc)
    diag = residual_diagnostics(steps, acc)
    used = diagnostics(curve_resid) if curve_resid is not None else diag
    n = len(acc)
    n_eff = effective_n(n, used["lag1_autocorr"])
    # Ljung-Box has little power on short series (20 eval points), so a lag-1 autocorrelation
    # that halves the effective sample size (rho1 > 1/3) counts as well.
    overstates = used["lag1_autocorr"] > 0 and (used["ljung_box_p"] < 0.05 or n_eff < n / 2)
    p_eff = pearson_p_value(r, n_eff)
    out.update({"residuals": diag, "curve_residuals": used if curve_resid is not None else None,
                "n_eff_source": (f"residuals of the best-fitting curve ({curve})"
                                 if curve_resid is not None else "residuals of the straight line"),
                "n_eff": n_eff, "pearson_ci95_neff": fisher_ci(r, n_eff),
                "pearson_p_value_neff": p_eff, "iid_overstates": bool(overstates)})
    out["statement"] = _statement(out, n, p_value)
    return out


def _fmt_p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}"


def _trend_sentence(plain: dict, mmk: dict) -> str:
    """What the Mann-Kendall tests say, and what the Hamed-Rao correction changed (often nothing:
    it only inflates the variance for significant autocorrelation among the detrended ranks)."""
    article = "an" if mmk["trend"][:1] in "aeiou" else "a"
    found = (f"{article} {mmk['trend']} trend" if mmk["trend"] != "no trend"
             else "no significant trend")
    if not plain["var_s"] > 0:  # every value tied (a constant series): S has no variance
        return "The series is constant, so the Mann-Kendall tests cannot find a trend."
    if math.isclose(mmk["var_s"], plain["var_s"], rel_tol=1e-9):
        return (f"The Mann-Kendall test finds {found} ({_fmt_p(mmk['p_value'])}); the Hamed-Rao "
                f"autocorrelation correction found no significant autocorrelation among the "
                f"ranks and left the variance unchanged, so the two tests agree.")
    return (f"The autocorrelation-corrected (Hamed-Rao) Mann-Kendall test finds {found} "
            f"({_fmt_p(mmk['p_value'])}); the correction scaled the variance of S by "
            f"{mmk['var_s'] / plain['var_s']:.2f} (plain test {_fmt_p(plain['p_value'])}).")


def _statement(t: dict, n: int, p_value: float) -> str:
    d = t["curve_residuals"] or t["residuals"]
    what = t["n_eff_source"]
    trend = _trend_sentence(t["mann_kendall"], t["modified_mann_kendall"])
    if not t["iid_overstates"]:
        return (f"The {what} look roughly independent (lag-1 "
                f"autocorrelation {d['lag1_autocorr']:.2f}, Ljung-Box {_fmt_p(d['ljung_box_p'])}), "
                f"so the i.i.d. Pearson p-value ({_fmt_p(p_value)}) is usable. " + trend)
    lo, hi = t["pearson_ci95_neff"]
    return (f"The {what} are autocorrelated (lag-1 {d['lag1_autocorr']:.2f}, "
            f"Durbin-Watson {d['durbin_watson']:.2f}, Ljung-Box {_fmt_p(d['ljung_box_p'])}): the "
            f"{n} points carry about as much information as {t['n_eff']:.0f} independent ones, so "
            f"the i.i.d. Pearson p-value ({_fmt_p(p_value)}) and interval overstate certainty; with "
            f"n_eff the 95% interval widens to [{lo:.3f}, {hi:.3f}] "
            f"({_fmt_p(t['pearson_p_value_neff'])}). " + trend)
