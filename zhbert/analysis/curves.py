"""Curve families for accuracy (and loss) against training step, robust fitting and scoring.

Every family is evaluated on a scaled step ``ts = t / t_scale`` (``t_scale`` is stored in the
params, so ``evaluate_family(name, params, t)`` takes raw steps). A family is one entry of
``FAMILIES`` and brings everything the fits need (:class:`Family`): its curve, its start values
and bounds, and, for a forecast candidate, its refit parts (``zhbert.analysis.refit.Refit``).
Starting values come from variable projection: for a grid of the non-linear parameters the model
is linear in the rest, which is solved in closed form for the whole grid at once; the best grid
point is then polished by ``scipy.optimize.curve_fit`` within bounds. A fit that fails is marked
``converged: false``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from zhbert.analysis.refit import Refit, intercept_ok, log_grid, no_grid

#: above this many points the fits run on equal-count bin means (scores still use every point)
FIT_MAX_POINTS = 2000
TAIL_FRACTION = 0.2
#: refit grids: points for a power law's exponent, for Weibull's scale and shape, and the
#: log-span of the shape's grid (the others span ``zhbert.analysis.refit.SPAN``)
GRID_C = 31
GRID_LAM, GRID_K = 15, 11
SPAN_K = 0.8


@dataclass(frozen=True)
class Family:
    """A named model ``y = func(t / t_scale, *params)`` and what fitting it needs.

    * ``asymptote_param``: the parameter that is the curve's asymptote (None for families that
      grow without bound);
    * ``start(ts, y)``: starting values and bounds ``(p0, (lo, hi))`` for a fit to (ts, y); None
      makes a fit without explicit ``p0`` and ``bounds`` raise NotImplementedError;
    * ``refit``: the parts for refitting many resamples at once (``zhbert.analysis.refit``);
    * ``accuracy``: fitted to an accuracy curve by default (:func:`accuracy_families`);
    * ``forecast``: a forecast candidate (``zhbert.analysis.forecast``, in lr area and in
      steps); needs ``start`` and ``refit``.
    """

    name: str
    func: Callable
    params: tuple[str, ...]
    asymptote_param: str | None = None
    start: Callable | None = None
    refit: Refit | None = None
    accuracy: bool = False
    forecast: bool = False


def _linear_grid(y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least squares ``y = alpha + beta * g_j`` for every row ``g_j`` of ``g``: (alpha, beta, rss)."""
    gm = g.mean(axis=1, keepdims=True)
    gc = g - gm
    yc = y - y.mean()
    var = np.einsum("ij,ij->i", gc, gc)
    cov = gc @ yc
    with np.errstate(all="ignore"):
        beta = np.where(var > 0, cov / var, 0.0)
        rss = float(yc @ yc) - beta * cov
    alpha = y.mean() - beta * gm[:, 0]
    return alpha, beta, np.where(np.isfinite(rss), rss, np.inf)


def accuracy_cap(y: np.ndarray) -> float:
    """Upper bound of an asymptote fitted to ``y``: 1 for an accuracy (it cannot saturate above
    1), unbounded for anything else."""
    return 1.0 if y.max() <= 1.0 else np.inf


# -- linear, log_linear: a + b x ------------------------------------------------------------------

def _linear(ts, a, b):
    return a + b * ts


def _log_linear(ts, a, b):
    return a + b * np.log(ts)


def _line_start(x: np.ndarray, y: np.ndarray):
    """Least-squares line ``y = a + b x`` as start values; unbounded."""
    b, a = np.polyfit(x, y, 1)
    return [a, b], ([-np.inf, -np.inf], [np.inf, np.inf])


def _log_linear_start(ts: np.ndarray, y: np.ndarray):
    """:func:`_line_start` in ``ln ts``."""
    return _line_start(np.log(ts), y)


def _log_linear_basis(x: np.ndarray, grid: list) -> np.ndarray:
    """Basis (1, ln x) for the one (empty) grid point."""
    return np.stack([np.ones_like(x), np.log(x)])[None]


# -- power_law a - b ts^-c, loss_power_law E + A ts^-alpha ----------------------------------------

def _power_law(ts, a, b, c):
    return a - b * ts ** (-c)


def _loss_power_law(ts, E, A, alpha):  # noqa: N803 - names follow the scaling-law literature
    return E + A * ts ** (-alpha)


def _exponent_start(ts: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """The best exponent c on a log grid and the least-squares ``y = alpha + beta ts^-c`` there:
    ``(alpha, beta, c)``."""
    cs = np.geomspace(0.01, 3.0, 48)
    alpha, beta, rss = _linear_grid(y, ts[None, :] ** (-cs[:, None]))
    j = int(np.argmin(rss))
    return alpha[j], beta[j], cs[j]


def _power_law_start(ts: np.ndarray, y: np.ndarray):
    """Start values and bounds of ``power_law``: b >= 0, the asymptote within :func:`accuracy_cap`."""
    a_hi = accuracy_cap(y)
    alpha, beta, c = _exponent_start(ts, y)
    return [alpha, -beta, c], ([-np.inf, 0.0, 1e-4], [a_hi, np.inf, 10.0])


def _loss_power_law_start(ts: np.ndarray, y: np.ndarray):
    """Start values and bounds of ``loss_power_law``: E, A >= 0."""
    alpha, beta, c = _exponent_start(ts, y)
    return [alpha, beta, c], ([0.0, 0.0, 1e-4], [np.inf, np.inf, 10.0])


def power_law_grid(popt: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Refit grid of a power law's exponent (parameter 2): ``GRID_C`` log-spaced values."""
    return [np.unique(log_grid(popt[2], lo[2], hi[2], GRID_C))]


def power_law_basis(x: np.ndarray, grid: list[np.ndarray]) -> np.ndarray:
    """Basis (1, x^-c) at every exponent c of the grid."""
    one = np.ones_like(x)
    return np.stack([np.broadcast_to(one, (len(grid[0]), len(x))),
                     x[None, :] ** (-grid[0][:, None])], axis=1)


def power_law_valid(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The asymptote within its bounds and b >= 0 (the basis is +x^-c, its coefficient -b)."""
    return intercept_ok(coef, lo, hi) & (coef[:, 1] <= 0)


# -- weibull a - (a - d) exp(-(ts/lam)^k) ---------------------------------------------------------

def _weibull(ts, a, d, lam, k):
    return a - (a - d) * np.exp(-((ts / lam) ** k))


def _weibull_start(ts: np.ndarray, y: np.ndarray):
    """Start values on a (lam, k) grid; bounds keep an accuracy's d in [0, 1] and lam near the
    observed range (else a power-law-shaped curve drives it to a degenerate corner: slow and
    meaningless)."""
    a_hi = accuracy_cap(y)
    lams = np.geomspace(ts.min(), ts.max() * 3, 24)
    ks = np.array([0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0])
    lam_g, k_g = (m.ravel() for m in np.meshgrid(lams, ks))
    e = np.exp(-((ts[None, :] / lam_g[:, None]) ** k_g[:, None]))
    alpha, beta, rss = _linear_grid(y, e)
    j = int(np.argmin(rss))
    d_lo, d_hi = (0.0, 1.0) if a_hi == 1.0 and y.min() >= 0 else (-np.inf, np.inf)
    lo = [-np.inf, d_lo, ts.min() * 0.1, 0.05]
    p0 = [alpha[j], alpha[j] + beta[j], lam_g[j], k_g[j]]
    return p0, (lo, [a_hi, d_hi, ts.max() * 100, 10.0])


def _weibull_grid(popt: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Refit grid of (lam, k): ``GRID_LAM`` x ``GRID_K`` log-spaced values."""
    lam = log_grid(popt[2], lo[2], hi[2], GRID_LAM)
    k = log_grid(popt[3], lo[3], hi[3], GRID_K, SPAN_K)
    lam_g, k_g = (m.ravel() for m in np.meshgrid(lam, k))
    return [lam_g, k_g]


def _weibull_basis(x: np.ndarray, grid: list[np.ndarray]) -> np.ndarray:
    """Basis (1, exp(-(x/lam)^k)) at every grid point; the coefficients are (a, d - a)."""
    e = np.exp(-((x[None, :] / grid[0][:, None]) ** grid[1][:, None]))
    return np.stack([np.broadcast_to(np.ones_like(x), e.shape), e], axis=1)


def _weibull_valid(coef: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The asymptote a and the start value d = a + (d - a) within their bounds."""
    d = coef[:, 0] + coef[:, 1]
    return intercept_ok(coef, lo, hi) & (d >= lo[1]) & (d <= hi[1])


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("linear", _linear, ("a", "b"), start=_line_start, accuracy=True),
    Family("log_linear", _log_linear, ("a", "b"), start=_log_linear_start,
           refit=Refit(no_grid, _log_linear_basis, intercept_ok), accuracy=True, forecast=True),
    Family("power_law", _power_law, ("a", "b", "c"), "a", start=_power_law_start,
           refit=Refit(power_law_grid, power_law_basis, power_law_valid), accuracy=True,
           forecast=True),
    Family("weibull", _weibull, ("a", "d", "lam", "k"), "a", start=_weibull_start,
           refit=Refit(_weibull_grid, _weibull_basis, _weibull_valid), accuracy=True,
           forecast=True),
    Family("loss_power_law", _loss_power_law, ("E", "A", "alpha"), "E",
           start=_loss_power_law_start),
)}


def accuracy_families() -> tuple[str, ...]:
    """Names of the families fitted to an accuracy curve by default, in registry order.

    >>> accuracy_families()
    ('linear', 'log_linear', 'power_law', 'weibull')
    """
    return tuple(name for name, fam in FAMILIES.items() if fam.accuracy)


def evaluate_family(name: str, params: dict, t: np.ndarray) -> np.ndarray:
    """Evaluate family ``name`` with fitted ``params`` (as in the JSON) at raw steps ``t``."""
    fam = FAMILIES[name]
    ts = np.asarray(t, dtype=np.float64) / float(params.get("t_scale", 1.0))
    with np.errstate(all="ignore"):
        return fam.func(ts, *(float(params[p]) for p in fam.params))


def choose_t_scale(steps: np.ndarray) -> float:
    """1000 (params read per 1K steps) for runs of at least 1K steps, else 1."""
    return 1000.0 if float(np.max(steps)) >= 1000 else 1.0


def start_and_bounds(fam: Family, x: np.ndarray, y: np.ndarray):
    """``fam.start(x, y)``: starting values and bounds; NotImplementedError without a ``start``."""
    if fam.start is None:  # a family added to FAMILIES must bring its own start values
        raise NotImplementedError(f"curve family {fam.name!r} has no start values and bounds "
                                  "(zhbert.analysis.curves.Family.start)")
    return fam.start(x, y)


def clip_into(p0, bounds) -> np.ndarray:
    """Move a starting point strictly inside the bounds (curve_fit refuses points outside)."""
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    p = np.asarray(p0, dtype=np.float64)
    span = np.where(np.isfinite(hi - lo), (hi - lo) * 1e-6, 1e-9)
    return np.clip(p, lo + span, hi - span)


def fit_params(name: str | Family, ts: np.ndarray, y: np.ndarray, p0=None,
               bounds=None) -> np.ndarray | None:
    """Fit family ``name`` (a name in FAMILIES, or a Family) to (ts, y); None when the optimiser
    fails or returns non-finite values. Without ``p0`` and ``bounds`` they come from the family's
    ``start`` (NotImplementedError for a family without one)."""
    fam = FAMILIES[name] if isinstance(name, str) else name
    if p0 is None or bounds is None:
        try:
            p0, bounds = start_and_bounds(fam, ts, y)
        except (ValueError, np.linalg.LinAlgError, FloatingPointError):
            return None
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, _ = curve_fit(fam.func, ts, y, p0=clip_into(p0, bounds), bounds=bounds,
                                method="trf", maxfev=2000)
    except (RuntimeError, ValueError, np.linalg.LinAlgError):
        return None
    pred = fam.func(ts, *popt)
    return popt if np.all(np.isfinite(popt)) and np.all(np.isfinite(pred)) else None


def bin_series(steps: np.ndarray, y: np.ndarray, max_points: int = FIT_MAX_POINTS):
    """Equal-count bin means when longer than ``max_points`` (keeps fits fast on long series)."""
    n = len(y)
    if n <= max_points:
        return steps, y
    edges = np.linspace(0, n, max_points + 1).round().astype(np.int64)
    counts = np.diff(edges)
    return (np.add.reduceat(steps, edges[:-1]) / counts, np.add.reduceat(y, edges[:-1]) / counts)


def gaussian_ic(rss: float, n: int, k: int) -> tuple[float, float]:
    """AIC and BIC under a Gaussian likelihood with the variance as one more parameter."""
    if rss <= 0 or n <= 0:
        return -math.inf, -math.inf
    ll = -0.5 * n * (math.log(2 * math.pi * rss / n) + 1)
    return 2 * (k + 1) - 2 * ll, (k + 1) * math.log(n) - 2 * ll


def params_at_bound(names, popt, bounds) -> list[str]:
    """Names of the parameters that ended on (within 1e-4 relative of) a bound."""
    lo, hi = bounds
    return [p for p, v, a, b in zip(names, popt, lo, hi, strict=True)
            if np.isclose(v, a, rtol=1e-4) or np.isclose(v, b, rtol=1e-4)]


def _params_dict(fam: Family, popt: np.ndarray, t_scale: float) -> dict:
    d = {p: float(v) for p, v in zip(fam.params, popt, strict=True)}
    d["t_scale"] = t_scale
    return d


def fit_family(name: str, steps: np.ndarray, y: np.ndarray, t_scale: float | None = None) -> dict:
    """Fit one family; return params, rmse, aic, bic, tail_rmse, asymptote and converged."""
    fam = FAMILIES[name]
    steps, y = np.asarray(steps, float), np.asarray(y, float)
    keep = steps > 0  # log and power families are undefined at step 0
    steps, y = steps[keep], y[keep]
    t_scale = t_scale or choose_t_scale(steps)
    out = {"params": None, "rmse": None, "aic": None, "bic": None, "tail_rmse": None,
           "asymptote": None, "converged": False, "n_params": len(fam.params),
           "n_fit_points": 0, "at_bound": []}
    if len(y) < len(fam.params) + 2:
        return out
    bs, by = bin_series(steps, y)
    ts = bs / t_scale
    p0, bounds = start_and_bounds(fam, ts, by)
    popt = fit_params(name, ts, by, p0, bounds)
    if popt is None:
        return out
    resid = y - fam.func(steps / t_scale, *popt)
    rss = float(resid @ resid)
    aic, bic = gaussian_ic(rss, len(y), len(fam.params))
    params = _params_dict(fam, popt, t_scale)
    out.update(params=params, rmse=math.sqrt(rss / len(y)), aic=aic, bic=bic, converged=True,
               n_fit_points=int(len(by)), tail_rmse=tail_rmse(name, steps, y, t_scale),
               at_bound=params_at_bound(fam.params, popt, bounds))
    # an asymptote pinned at its bound (e.g. accuracy 1) is the bound, not an estimate
    if fam.asymptote_param and fam.asymptote_param not in out["at_bound"]:
        out["asymptote"] = params[fam.asymptote_param]
    return out


def tail_rmse(name: str, steps: np.ndarray, y: np.ndarray, t_scale: float) -> float | None:
    """Fit on all but the last ``TAIL_FRACTION`` of the points, return the RMSE on that tail
    (an extrapolation score)."""
    cut = int(round(len(y) * (1 - TAIL_FRACTION)))
    if cut < len(FAMILIES[name].params) + 2 or cut >= len(y):
        return None
    bs, by = bin_series(steps[:cut], y[:cut])
    popt = fit_params(name, bs / t_scale, by)
    if popt is None:
        return None
    err = y[cut:] - FAMILIES[name].func(steps[cut:] / t_scale, *popt)
    return float(math.sqrt(np.mean(err**2)))


def fit_all(steps: np.ndarray, y: np.ndarray, families=None) -> dict:
    """``curve_fits``: every family in ``families`` (default :func:`accuracy_families`) fitted
    to (steps, y)."""
    families = accuracy_families() if families is None else families
    t_scale = choose_t_scale(steps)
    return {name: fit_family(name, steps, y, t_scale) for name in families}


#: families whose tail RMSE is within this relative margin of the best count as tied
TIE_MARGIN = 0.02


def choose_best(fits: dict) -> dict | None:
    """Lowest tail RMSE among converged fits with no parameter at a bound; near-ties (within
    ``TIE_MARGIN``) go to the lowest BIC. A fit at a bound is never chosen (its estimate is the bound's)."""
    free = {k: v for k, v in fits.items() if v["converged"] and not v["at_bound"]}
    ok = {k: v for k, v in free.items() if v["tail_rmse"] is not None}
    if not ok:
        ok = free
        if not ok:
            return None
        name = min(ok, key=lambda k: ok[k]["bic"])
        crit = "lowest BIC (no family could be scored on the held-back tail)"
    else:
        best = min(v["tail_rmse"] for v in ok.values())
        tied = [k for k, v in ok.items() if v["tail_rmse"] <= best * (1 + TIE_MARGIN)]
        name = min(tied, key=lambda k: ok[k]["bic"])
        crit = (f"lowest tail RMSE (fit on first {1 - TAIL_FRACTION:.0%}, scored on last "
                f"{TAIL_FRACTION:.0%}) among converged families; within {TIE_MARGIN:.0%} -> lowest BIC")
    return {"family": name, "asymptote": fits[name]["asymptote"], "criterion": crit,
            "params": fits[name]["params"]}
