"""Forecast an accuracy curve at a later step, with an interval that includes model uncertainty.

Time axes: the learning-rate area ``x = S1(step) / S1(last observed step)`` when the planned
schedule is known (``zhbert.analysis.schedule``), and the step ``step / last step``. Candidate
families (``zhbert.analysis.forecast_families``):

* every ``zhbert.analysis.curves.FAMILIES`` entry marked ``forecast`` (``log_linear`` a + b ln x,
  ``power_law`` a - b x^-c, ``weibull`` a - (a-d) exp(-(x/lam)^k)), fitted in both units
  (``*_steps`` in steps) with the start values and refit parts its ``Family`` carries;
* ``DESIGN_FAMILIES``, on the whole design: ``power_law_anneal`` a - b x^-c + C z, with
  ``z = S2 / S1(last)`` the annealing area (under a decaying lr the accuracy keeps rising while
  S1 barely moves; Tissue et al. 2024). Used only when C is identifiable (at least twice its
  standard error) and the data's annealing area is at least 1/``ANNEAL_REACH`` of the target's.

Under a decaying schedule the lr-area fits miss the annealing gain and the step fits climb too
long; the truth has lain between them in every calibration run (docs/ANALYSIS.md), so both
enter. A fit with a parameter at its bound, or unidentifiable, is flagged and gets no weight.

Weights: each family is refitted on the first 80% of the points and scored on the last 20%;
``w ∝ (MSE_min / MSE)^(n/2)`` (the Gaussian likelihood ratio with the variance profiled out) with
``n`` the tail's AR(1) effective size, capped at ``WEIGHT_MAX_N`` = 1 observation: the tail test
extrapolates 25% while the forecast goes much further, and n_eff-scaled weights put all the
weight on one family and under-covered in calibration. Interval: the weighted curve's residuals
are block-bootstrapped, EVERY family is refitted on every resample (``refit.grid_refit``), and
the pooled predictions (family f's weighted w_f) are widened by an extrapolation allowance (the
weighted families' bias on the held-back tail, beyond noise, grown with the square root of the
log-distance in lr area past the data) and, for a forecast of one measured point, its
measurement noise; the 2.5-97.5% weighted percentiles are the 95% interval. Every family is
non-decreasing, so the value and the refits ahead of the data are first raised to the curve's
level at the cut (the mean of its last ``LEVEL_POINTS`` points): a fit that ends below it
misfits the curve, and that is not an uncertainty about the future.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from zhbert.analysis.bootstrap import block_length, circular_block_indices
from zhbert.analysis.curves import bin_series, fit_params, params_at_bound, start_and_bounds
from zhbert.analysis.forecast_families import Candidate, forecast_families
from zhbert.analysis.readiness import (
    ACCELERATING,
    ACCELERATING_NOTE,
    MIN_POINTS,
    accelerating,
    too_early,
)
from zhbert.analysis.refit import grid_refit
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.trend import effective_n, lag1_autocorr, noise_sd

#: fits and refits run on at most this many bin means (scores use them too)
FORECAST_MAX_POINTS = 200
#: bootstrap replicates: the analysis default, and the small default for live use in training
DEFAULT_N_BOOT = 400
LIVE_N_BOOT = 100
TAIL_FRACTION = 0.2
LEVEL = 0.95
#: the tail log-likelihood ratio counts at most this many effective observations: the tail test
#: extrapolates 25% past its fit while a forecast goes much further, so its evidence is tempered
#: (measured in docs/ANALYSIS.md, "Calibration": n_eff-scaled weights under-cover)
WEIGHT_MAX_N = 1.0
#: the extrapolation allowance grows as (distance / tail distance) ** DRIFT_GROWTH
DRIFT_GROWTH = 0.5
BAND_POINTS = 60


def fit_one(cand: Candidate, X: np.ndarray, y: np.ndarray) -> dict:
    """Fit one forecast family: ``{converged, popt, bounds, at_bound, identifiable,
    unidentified, rss}``."""
    fam = cand.family
    out = {"converged": False, "popt": None, "bounds": None, "at_bound": [],
           "identifiable": True, "unidentified": None, "rss": None}
    if len(y) < len(fam.params) + 2:
        return out
    try:
        p0, bounds = start_and_bounds(fam, X, y)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return out
    popt = fit_params(fam, X, y, p0, bounds)
    if popt is None:
        return out
    resid = y - fam.func(X, *popt)
    out.update(converged=True, popt=popt, bounds=bounds, rss=float(resid @ resid),
               at_bound=params_at_bound(fam.params, popt, bounds))
    if cand.unidentified is not None:
        why = cand.unidentified(fam, X, y, popt)
        out.update(identifiable=why is None, unidentified=why)
    return out


def _tail_errors(cand: Candidate, X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Refit on all but the last ``TAIL_FRACTION`` of the points; the errors ``y - fit`` on that
    tail (None: no fit)."""
    cut = int(round(len(y) * (1 - TAIL_FRACTION)))
    if cut >= len(y):
        return None
    fit = fit_one(cand, X[:, :cut], y[:cut])
    if not fit["converged"]:
        return None
    return y[cut:] - cand.family.func(X[:, cut:], *fit["popt"])


def tail_drift(err: np.ndarray, x: np.ndarray, noise_sd: float, rho: float,
               ) -> tuple[float, float]:
    """How far the weighted extrapolation drifted off the held-back tail: ``(bias, distance)``.

    ``err`` are the weighted families' errors on the tail (the last ``len(err)`` points of
    ``x``, the lr-area axis); ``bias`` is their mean less what noise alone gives a mean of that
    many AR(1) points (counted beyond two standard errors), ``distance`` the tail's mean
    log-distance in lr area from the cut.
    """
    cut = len(x) - len(err)
    dist = float(np.mean(np.log(x[cut:] / x[cut - 1])))
    noise2 = 4 * noise_sd**2 / effective_n(len(err), rho)
    return math.sqrt(max(0.0, float(np.mean(err)) ** 2 - noise2)), dist


def allowance(drift: tuple[float, float], reach: np.ndarray) -> np.ndarray:
    """Standard deviation of the extrapolation allowance at log-distances ``reach`` in lr area:
    the tail's bias grown as ``(reach / distance) ** DRIFT_GROWTH``."""
    bias, dist = drift
    if bias <= 0 or dist <= 0:
        return np.zeros_like(reach)
    return bias * (np.maximum(reach, 0.0) / dist) ** DRIFT_GROWTH


def tail_weights(mse: dict[str, float], n_eff: float) -> dict[str, float]:
    """``w_i ∝ (MSE_min / MSE_i)^(n_eff / 2)``; families without a score get none."""
    scored = {k: v for k, v in mse.items() if v is not None and math.isfinite(v)}
    if not scored:
        return {}
    lo = max(min(scored.values()), 1e-300)
    raw = {k: math.exp(-0.5 * n_eff * math.log(max(v, 1e-300) / lo)) for k, v in scored.items()}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    """Quantiles of a weighted sample along axis 0 (``values`` (m, k), ``weights`` (m,))."""
    order = np.argsort(values, axis=0)
    v = np.take_along_axis(values, order, axis=0)
    w = weights[order]
    cdf = (np.cumsum(w, axis=0) - 0.5 * w) / np.sum(w, axis=0)
    return np.array([[np.interp(q, cdf[:, j], v[:, j]) for j in range(v.shape[1])] for q in qs])


def design(steps: np.ndarray, schedule: Schedule | None, last: float) -> np.ndarray:
    """``(3, n)`` design: ``S1 / S1(last)``, ``S2 / S1(last)``, ``steps / last``.

    Without a schedule the first row is the step too and the second is zero.
    """
    steps = np.asarray(steps, dtype=np.float64)
    if schedule is None:
        return np.vstack([steps / last, np.zeros_like(steps), steps / last])
    s1, s2 = schedule.areas(steps)
    ref = float(schedule.areas([last])[0][0]) or 1.0
    return np.vstack([s1 / ref, s2 / ref, steps / last])


def _fit_block(X: np.ndarray, y: np.ndarray, cands: dict[str, Candidate],
               ) -> tuple[dict, dict, tuple]:
    """Every candidate fitted and tail-scored; returns ``(fits, weights, tail drift)``."""
    fits = {name: fit_one(c, X, y) for name, c in cands.items()}
    usable = [k for k, f in fits.items()
              if f["converged"] and not f["at_bound"] and f["identifiable"]]
    errors = {k: _tail_errors(cands[k], X, y) for k in usable}
    mse = {k: float(np.mean(e**2)) if e is not None else None for k, e in errors.items()}
    weights, drift = {}, (0.0, 0.0)
    if usable:
        best = min(usable, key=lambda k: fits[k]["rss"])
        resid = y - cands[best].family.func(X, *fits[best]["popt"])
        rho = lag1_autocorr(resid)
        n_tail = len(y) - int(round(len(y) * (1 - TAIL_FRACTION)))
        weights = tail_weights(mse, min(effective_n(n_tail, rho), WEIGHT_MAX_N))
        if weights:
            err = sum(w * errors[k] for k, w in weights.items())
            drift = tail_drift(err, X[0], float(np.std(resid)), rho)
        else:  # too few points to score a tail: equal weights among usable fits
            weights = {k: 1.0 / len(usable) for k in usable}
    for k, f in fits.items():
        f["tail_mse"] = mse.get(k)
    return fits, weights, drift


def value_range(y: np.ndarray) -> tuple[float, float]:
    """[0, 1] for accuracies (fractions), unbounded otherwise: forecasts are clipped into it."""
    return (0.0, 1.0) if np.min(y) >= 0 and np.max(y) <= 1 else (-np.inf, np.inf)


def _bootstrap(X: np.ndarray, y: np.ndarray, fits: dict, weights: dict, drift: tuple,
               at: np.ndarray, n_boot: int, rng: np.random.Generator,
               cands: dict[str, Candidate]) -> tuple[np.ndarray, np.ndarray, int]:
    """Pooled predictions ``(m, len(at))`` and their weights; every family refitted per resample
    (``zhbert.analysis.refit.grid_refit`` with the family's refit parts)."""
    names = list(weights)
    base = sum(weights[k] * cands[k].family.func(X, *fits[k]["popt"]) for k in names)
    resid = y - base
    resid = resid - resid.mean()
    block = block_length(resid)
    Y = base[None, :] + resid[circular_block_indices(len(resid), block, n_boot, rng)]  # noqa: N806
    lo, hi = value_range(y)
    preds, wts = [], []
    for k in names:
        p = grid_refit(cands[k].family.refit, X, Y, fits[k]["popt"], fits[k]["bounds"], at)
        p = p[np.isfinite(p).all(axis=1)]
        # extrapolation allowance, growing with the log-distance in lr area past the data
        sd = allowance(drift, np.log(np.maximum(at[0], 1.0)))
        p = np.clip(p + rng.normal(size=(len(p), 1)) * sd[None, :], lo, hi)
        if len(p):
            preds.append(p)
            wts.append(np.full(len(p), weights[k] / len(p)))
    if not preds:
        return np.empty((0, at.shape[1])), np.empty(0), block
    return np.concatenate(preds), np.concatenate(wts), block


def _excluded(f: dict) -> str | None:
    """Why a fit gets no weight (None: it may get some)."""
    if not f["converged"]:
        return "did not converge"
    if f["at_bound"]:
        return f"parameter(s) at a bound: {', '.join(f['at_bound'])}"
    return f["unidentified"]


def _family_report(fits: dict, weights: dict, X_at: np.ndarray, y: np.ndarray,
                   cands: dict[str, Candidate]) -> dict:
    """JSON block per family: weight, value at the target, flags, and why it got no weight."""
    out = {}
    for k, f in fits.items():
        fam = cands[k].family
        value = (float(np.clip(fam.func(X_at[:, :1], *f["popt"])[0], *value_range(y)))
                 if f["converged"] else None)
        why = _excluded(f)
        params = dict(zip(fam.params, map(float, f["popt"]), strict=True)) if f["converged"] else None
        asym = params.get(fam.asymptote_param) if params and fam.asymptote_param and not why else None
        out[k] = {"weight": weights.get(k, 0.0), "value": value, "params": params,
                  "asymptote": asym, "at_bound": f["at_bound"], "identifiable": f["identifiable"],
                  "tail_mse": f.get("tail_mse"), "excluded": why}
    return out


def resolve_target(steps: np.ndarray, schedule: Schedule | None,
                   target_step: float | None) -> tuple[float, str]:
    """The target step and where it came from; refuses targets past an unextended plan."""
    last = float(np.max(steps))
    if target_step is None:
        if schedule is not None and schedule.end is not None:
            return float(schedule.end), "planned last step of the schedule"
        return 2.0 * last, "2x the last step (no planned schedule end known)"
    target = float(target_step)
    if schedule is not None and target > last:  # up to the data's last step it is no guess
        schedule.check_target(target)
    return target, "given"


def _positive_steps(steps, acc) -> tuple[np.ndarray, np.ndarray]:
    """The series as float arrays, without its points at step 0 or before."""
    steps = np.asarray(steps, dtype=np.float64)
    acc = np.asarray(acc, dtype=np.float64)
    keep = steps > 0
    return steps[keep], acc[keep]


def _empty_result(n_points: int, target: float, source: str, schedule: Schedule | None, *,
                  n_boot: int, seed: int, measurement_sd: float | None) -> dict:
    """The result's every key, as for a series that cannot be forecast (``ok`` False)."""
    return {"ok": False, "reason": None, "target_step": target, "target_source": source,
            "value": None, "ci95": [None, None], "n_points": int(n_points),
            "interval_for": "one measured point" if measurement_sd else "curve",
            "measurement_sd": measurement_sd,
            "time_axis": "lr_area" if schedule is not None else "steps",
            "schedule": schedule.to_dict() if schedule is not None else None,
            "weights_method": "tail-predictive likelihood weights (refit on first 80%, scored on "
                              "last 20%, tempered to 1 effective observation); mixture of every "
                              "family's bootstrap refits + extrapolation allowance",
            "families": {}, "n_boot": int(n_boot), "n_refits": 0, "block_length": None,
            "accelerating": None, "note": None,
            "seed": int(seed), "band": None}


def _candidates(families, X: np.ndarray, X_at: np.ndarray, scheduled: bool,
                ) -> dict[str, Candidate]:
    """The candidates named in ``families`` (None: all of :func:`forecast_families`) that apply:
    a schedule is known if they need one, and the data support them."""
    cands = forecast_families()
    return {name: cands[name] for name in (cands if families is None else families)
            if (scheduled or not cands[name].needs_schedule)
            and (cands[name].supported is None or cands[name].supported(X, X_at))}


def _weighted_value(fits: dict, weights: dict, cands: dict[str, Candidate], X_at: np.ndarray,
                    y: np.ndarray) -> np.ndarray:
    """The weighted families' value at every column of ``X_at``, each clipped into
    :func:`value_range` of ``y``."""
    lo, hi = value_range(y)
    return sum(w * np.clip(cands[k].family.func(X_at, *fits[k]["popt"]), lo, hi)
               for k, w in weights.items())


#: an interval needs at least this many refits
MIN_REFITS = 10


#: the curve's level at the cut: the mean of this many last (bin-mean) points
LEVEL_POINTS = 3


def _at_least_level(value: np.ndarray, preds: np.ndarray, y: np.ndarray,
                    ahead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mixture's value and the refits' predictions at the columns ``ahead`` of the data,
    raised to the curve's level at the cut (the mean of its last :data:`LEVEL_POINTS` points,
    less twice that mean's noise: the first differences' sd / sqrt 2, over sqrt 3):
    every family is non-decreasing, so one that ends below where the curve already is misfits
    it (a log-linear fit under an accelerating curve), and its deficit is not an uncertainty
    about the future. Measurement noise is added afterwards.

    >>> v, p = _at_least_level(np.array([0.1, 0.3]), np.array([[0.05, 0.3]]),
    ...                        np.array([0.2, 0.2, 0.2, 0.2]), np.array([True, False]))
    >>> v.round(2).tolist(), p.round(2).tolist()  # the column behind the data is left alone
    ([0.2, 0.3], [[0.2, 0.3]])
    """
    tail = y[-LEVEL_POINTS:]
    noise = noise_sd(y) if len(y) > 2 else 0.0
    level = float(np.mean(tail)) - 2.0 * noise / math.sqrt(len(tail))  # its own noise allowed
    floor = np.where(ahead, level, -np.inf)
    return np.maximum(value, floor), (np.maximum(preds, floor[None, :]) if len(preds) else preds)


def _interval(preds: np.ndarray, wts: np.ndarray, value: np.ndarray, extra: np.ndarray) -> dict:
    """``ci95`` at the target and, for band steps ``extra``, the ``band``: the ``LEVEL``
    interval of the pooled refits (nothing from fewer than ``MIN_REFITS``)."""
    if len(preds) < MIN_REFITS:
        return {}
    lo, hi = weighted_quantiles(preds, wts, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    out = {"ci95": [float(lo[0]), float(hi[0])]}
    if extra.size:
        out["band"] = {"steps": extra.tolist(), "value": value[1:].tolist(),
                       "low": lo[1:].tolist(), "high": hi[1:].tolist()}
    return out


def forecast_final(steps, acc, schedule: Schedule | None = None, target_step: float | None = None,
                   *, n_boot: int = LIVE_N_BOOT, seed: int = 0, measurement_sd: float | None = None,
                   band_steps=None, families=None, floor: float | None = None,
                   when_accelerating: str = "forecast") -> dict:
    """Forecast ``acc`` at ``target_step`` with a 95% interval including model uncertainty.

    Arguments:
        steps, acc: the observed series (1-D, same length, steps increasing; accuracy fractions).
        schedule: the run's planned lr schedule (``zhbert.analysis.schedule.Schedule``, e.g.
            ``Schedule(peak=1e-3, warmup=100, total=1000, kind="cosine")``; in the trainer
            ``schedule.from_config(cfg.to_dict())``; for a file ``history_schedule(history)``);
            None fits in step units only.
        target_step: default the schedule's planned last step (else 2x the last step). A target
            past the plan raises UserError unless ``schedule.continue_lr`` is set.
        n_boot: bootstrap resamples (each refits every family): the default ``LIVE_N_BOOT`` is
            the small count for live use during training; the analysis uses ``DEFAULT_N_BOOT``.
        measurement_sd: standard error of ONE measurement at the target; given, the interval is
            for that measured point (curve uncertainty + this noise), else for the curve.
        band_steps: optional steps at which to return the mixture's value and interval too.
        families: names of the candidate families (default every one of
            :func:`forecast_families`).
        floor: the accuracy of the unigram count table on the held-out set
            (``zhbert.baselines.unigram_floor(meta)``). A series whose last third of points
            averages under ``readiness.PLATEAU_MARGIN`` x floor has not left the unigram plateau: it is
            not forecast (where the take-off comes, and where it ends, cannot be read from a
            plateau; the backtests in docs/ANALYSIS.md show such forecasts missing).
        when_accelerating: ``"forecast"`` (flagged: ``accelerating`` True and a ``note``) or
            ``"refuse"`` (the live forecast in training) a curve that is still accelerating.

    Returns a JSON-able dict: ``value``, ``ci95`` [low, high] (None when too few refits),
    ``target_step``, ``target_source``, ``interval_for`` ("curve" or "one measured point"),
    ``time_axis`` ("lr_area" or "steps"), ``schedule``, ``families`` (weight, value, flags per
    family), ``weights_method``, ``n_boot``, ``n_refits``, ``block_length``, ``band`` (or None),
    ``ok`` (False with ``reason`` when no family could be used).
    """
    if when_accelerating not in ("forecast", "refuse"):
        raise ValueError(f"when_accelerating must be 'forecast' or 'refuse' "
                         f"(got {when_accelerating!r})")
    steps, acc = _positive_steps(steps, acc)
    target, source = resolve_target(steps, schedule, target_step)
    out = _empty_result(len(acc), target, source, schedule, n_boot=n_boot, seed=seed,
                        measurement_sd=measurement_sd)
    out["reason"] = too_early(acc, floor, schedule is not None)
    if out["reason"]:
        return out
    bs, by = bin_series(steps, acc, FORECAST_MAX_POINTS)
    X = design(bs, schedule, float(bs[-1]))
    extra = np.asarray(band_steps if band_steps is not None else [], dtype=np.float64)
    X_at = design(np.concatenate([[target], extra]), schedule, float(bs[-1]))
    out["accelerating"] = bool(accelerating(bs, by))
    if out["accelerating"]:
        if when_accelerating == "refuse":
            out["reason"] = ACCELERATING
            return out
        out["note"] = ACCELERATING_NOTE
    cands = _candidates(families, X, X_at, schedule is not None)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        fits, weights, drift = _fit_block(X, by, cands)
        out["families"] = _family_report(fits, weights, X_at, by, cands)
        if not weights:
            out["reason"] = "no family fitted without a parameter at its bound" + (
                f" (only {len(by)} points: forecast again after more evaluations)"
                if len(by) < MIN_POINTS else "")
            return out
        rng = np.random.default_rng(seed)
        preds, wts, block = _bootstrap(X, by, fits, weights, drift, X_at, n_boot, rng, cands)
    value = _weighted_value(fits, weights, cands, X_at, by)
    ahead = np.concatenate([[target >= bs[-1]], extra > bs[-1]])
    value, preds = _at_least_level(value, preds, by, ahead)
    if measurement_sd and len(preds):
        preds = preds + rng.normal(0.0, measurement_sd, size=(len(preds), 1))
    out.update(ok=True, value=float(value[0]), n_refits=int(len(preds)), block_length=block,
               **_interval(preds, wts, value, extra))
    return out
