"""Forecast a loss curve (any lower-is-better series) at a later step, with an interval.

``forecast_loss`` fits a law of ``zhbert.analysis.loss_laws`` to the observed points (at most
``FIT_POINTS`` bin means) and predicts the target step:

* ``family="auto"`` (ours): with a schedule, the multi-power law with its decay shape ``(C, beta,
  gamma)`` fixed and Gaussian priors on ``log alpha`` and ``B`` (``zhbert.analysis.loss_prior``:
  fitted on a calibration set of other runs); ``L0``, ``A`` are free. Without a schedule, the
  power law in steps with the same prior on ``log alpha``. The prior's weight against the data
  uses the residual variance inflated for AR(1) autocorrelation (``(1 + rho) / (1 - rho)``), so
  correlated residuals do not count as independent evidence;
* ``tissue_s1s2``, ``multi_power``, ``power_law_steps``: the published laws fitted on the curve
  alone, every parameter free; ``last_value``: the mean of the last ``LAST_FRACTION`` of points.

Interval (the same for every family): the fit's residuals are resampled in circular blocks
(``zhbert.analysis.bootstrap``; i.i.d. Gaussian draws of their standard deviation when the fit
has fewer than ``MIN_DOF`` residual degrees of freedom); the law is refitted to each resample
(for ours with the prior means redrawn from the prior, so the interval carries the prior's
uncertainty as well as the data's: a randomised-MAP posterior draw); measurement noise is added
to each prediction (``noise_sd``, else the series' own point-to-point noise, the standard
deviation of its second differences over sqrt(6)); the ``level`` interval is between the
refits' quantiles.
"""

from __future__ import annotations

import math

import numpy as np

from zhbert.analysis.bootstrap import block_length, circular_block_indices
from zhbert.analysis.loss_fit import (
    MIN_DOF,
    REL_SD_FLOOR,
    Basis,
    PriorModel,
    fit_free,
    grid_solve,
    predict,
)
from zhbert.analysis.loss_laws import LAWS, loss_design
from zhbert.analysis.loss_prior import default_prior
from zhbert.analysis.trend import second_diff_noise_sd

FIT_POINTS = 100
#: points needed with a known schedule (the lr areas carry the shape) and without one
MIN_POINTS_SCHEDULE = 3
MIN_POINTS_STEPS = 5
LAST_FRACTION = 0.1
PEERS = ("tissue_s1s2", "multi_power", "power_law_steps", "last_value")


def _empty(n: int, target: float, family: str, schedule, level: float, n_boot: int,
           seed: int) -> dict:
    return {"ok": False, "reason": None, "value": None, "lower": None, "upper": None,
            "family": family, "target_step": float(target), "n_points": int(n),
            "level": level, "n_boot": int(n_boot), "seed": int(seed), "noise_sd": None,
            "noise_source": None, "params": None, "prior": None, "block_length": None,
            "interval_for": "one measured point (curve uncertainty + measurement noise)",
            "schedule": schedule.to_dict() if schedule is not None else None, "band": None}


def _refusal(steps: np.ndarray, values: np.ndarray, schedule, target: float) -> str | None:
    """Why the series cannot be forecast (None: it can), in terms a user can act on."""
    need = MIN_POINTS_SCHEDULE if schedule is not None else MIN_POINTS_STEPS
    if steps.size < need:
        how = ("" if schedule is not None else
               f"; with the lr schedule known (an lr column or --lr-metric) "
               f"{MIN_POINTS_SCHEDULE} are enough")
        return f"only {steps.size} points with a step above 0 (at least {need} are needed{how})"
    if not math.isfinite(target) or target <= 0:
        return f"the target step must be a positive number (got {target})"
    if schedule is not None and float(schedule.areas([steps[0]])[0][0]) <= 0:
        return ("the lr schedule is 0 up to the first point, so the lr area (the time axis of "
                "a loss law) is 0 there; check the lr column or give the schedule")
    third = max(1, steps.size // 3)
    if np.mean(values[-third:]) >= np.mean(values[:third]) and steps.size >= 6:
        return ("the series does not decrease (its last third averages no lower than its "
                "first): a loss law needs a lower-is-better series that is falling; for "
                "accuracy use the accuracy forecast")
    return None


class _Grid:
    """A published law fitted alone on the alpha grid (``tissue_s1s2``, ``power_law_steps``)."""

    def __init__(self, law: str, d, d_at):
        self.basis, self.basis_at = Basis(law, d), Basis(law, d_at)
        self.names, self.n_params = LAWS[law].params, len(LAWS[law].params)

    def point(self, y: np.ndarray) -> tuple[np.ndarray, dict]:
        out = grid_solve(self.basis, y[None], 1.0)
        th, a = out["theta"][0], float(out["alpha"][0])
        vals = [th[0], th[1], a, *th[2:]]
        return self.basis(out["alpha"])[0] @ th, dict(zip(self.names, map(float, vals),
                                                          strict=True))

    def refit(self, Y: np.ndarray, rng) -> np.ndarray:  # noqa: N803
        return predict(self.basis_at, grid_solve(self.basis, Y, 1.0))


class _Free:
    """The multi-power law fitted alone, every parameter free (each refit warm-started)."""

    def __init__(self, d, d_at):
        self.d, self.d_at, self.p = d, d_at, None
        self.n_params = len(LAWS["multi_power"].params)

    def point(self, y: np.ndarray) -> tuple[np.ndarray, dict]:
        self.p = fit_free("multi_power", self.d, y)
        if self.p is None:
            return None, None
        return LAWS["multi_power"].func(self.p, self.d), dict(
            zip(LAWS["multi_power"].params, map(float, self.p), strict=True))

    def refit(self, Y: np.ndarray, rng) -> np.ndarray:  # noqa: N803
        law = LAWS["multi_power"]
        out = np.full((Y.shape[0], self.d_at.t.size), np.nan)
        for r, y in enumerate(Y):
            p = fit_free("multi_power", self.d, y, p0=self.p, max_nfev=40)
            if p is not None:
                out[r] = law.func(p, self.d_at)
        return out


class _Last:
    """The mean of the last ``LAST_FRACTION`` of points (at least 3), held."""

    n_params = 1

    def __init__(self, n: int, m: int):
        self.k, self.m = min(n, max(3, int(round(LAST_FRACTION * n)))), m

    def point(self, y: np.ndarray) -> tuple[np.ndarray, dict]:
        level = float(np.mean(y[-self.k:]))
        return np.concatenate([y[:-self.k], np.full(self.k, level)]), {"level": level,
                                                                       "points": self.k}

    def refit(self, Y: np.ndarray, rng) -> np.ndarray:  # noqa: N803
        return np.repeat(Y[:, -self.k:].mean(axis=1, keepdims=True), self.m, axis=1)


def _resamples(fitted: np.ndarray, y: np.ndarray, n_params: int, n_boot: int,
               rng: np.random.Generator) -> tuple[np.ndarray, int | None]:
    """``(n_boot, n)`` bootstrap series around ``fitted`` and the block length (None: i.i.d.)."""
    resid = y - fitted
    dof = y.size - n_params
    if dof >= MIN_DOF and np.any(resid != 0):
        resid = resid - resid.mean()
        block = block_length(resid)
        return fitted[None] + resid[circular_block_indices(y.size, block, n_boot, rng)], block
    sd = math.sqrt(float(resid @ resid) / max(dof, 1))
    sd = max(sd, REL_SD_FLOOR * abs(float(np.mean(y))))
    return fitted[None] + rng.normal(0.0, sd, size=(n_boot, y.size)), None


def forecast_loss(steps: np.ndarray, values: np.ndarray, schedule, target_step: float, *,
                  noise_sd: float | None = None, level: float = 0.95, n_boot: int = 200,
                  seed: int = 0, family: str = "auto", prior: dict | None = None,
                  band_steps=None) -> dict:
    """Forecast a lower-is-better series at target_step. `schedule` has the duck-typed interface of
    zhbert.analysis.schedule.Schedule (.areas(steps) -> (S1, S2), .lr(update), .end) or is None.
    Returns {"ok": bool, "reason": str|None, "value": float, "lower": float, "upper": float,
             "family": str, "target_step": float, "n_points": int, ...}.

    ``family``: ``"auto"`` (ours, see the module docstring) or one of :data:`PEERS`; ``prior``:
    the prior of ours (default ``zhbert.analysis.loss_prior.default_prior()``); ``band_steps``:
    more steps to predict (``band``: value, low, high at each). The interval is for one measured
    point at the target (the curve's uncertainty + measurement noise ``noise_sd``, else the
    series' own point-to-point noise). Other keys: ``noise_sd``, ``noise_source``, ``params``,
    ``prior``, ``block_length``, ``level``, ``n_boot``, ``seed``, ``schedule``, ``interval_for``.
    """
    steps = np.asarray(steps, np.float64)
    values = np.asarray(values, np.float64)
    keep = np.isfinite(steps) & np.isfinite(values) & (steps > 0)
    steps, values = steps[keep], values[keep]
    order = np.argsort(steps)
    steps, values = steps[order], values[order]
    target = float(target_step)
    name = family if family != "auto" else ("multi_power+prior" if schedule is not None
                                            else "power_law_steps+prior")
    out = _empty(steps.size, target, name, schedule, level, n_boot, seed)
    if family not in ("auto", *PEERS):
        raise ValueError(f"unknown family {family!r}")
    if family in ("tissue_s1s2", "multi_power") and schedule is None:
        out["reason"] = f"the {family} law needs the lr schedule (an lr column or --lr-metric)"
        return out
    out["reason"] = _refusal(steps, values, schedule, target)
    if out["reason"]:
        return out
    at = np.concatenate([[target], np.asarray(band_steps if band_steps is not None else [],
                                              np.float64)])
    horizon = float(max(np.max(at), steps[-1]))
    d = loss_design(steps, schedule, horizon, max_points=FIT_POINTS)
    d_at = loss_design(at, schedule, horizon)
    by = d.avg(values)
    noise = noise_sd if noise_sd is not None else second_diff_noise_sd(values)
    out.update(noise_sd=noise, noise_source="given" if noise_sd is not None else
               "point-to-point noise of the series" if noise is not None else None)
    with np.errstate(all="ignore"):
        model, fitted, params = _model(family, d, d_at, by, prior, schedule, noise, out)
        if fitted is None:
            out["reason"] = f"the {name} fit did not converge on these points"
            return out
        point = _point_at(model, by)
        preds, out["block_length"] = _draws(model, fitted, by, point, at / steps[-1], n_boot,
                                            seed, noise)
    if len(preds) < 10:
        out["reason"] = f"fewer than 10 of {n_boot} bootstrap refits of {name} succeeded"
        return out
    lo, hi = np.quantile(preds, [(1 - level) / 2, (1 + level) / 2], axis=0)
    out.update(ok=True, value=float(point[0]), lower=float(min(lo[0], point[0])),
               upper=float(max(hi[0], point[0])), params=params)
    if at.size > 1:
        out["band"] = {"steps": at[1:].tolist(), "value": point[1:].tolist(),
                       "low": lo[1:].tolist(), "high": hi[1:].tolist()}
    return out


def _model(family: str, d, d_at, y: np.ndarray, prior, schedule, noise, out: dict):
    """The family's model, its fitted values on the data and its parameters."""
    if family == "auto":
        prior = prior if prior is not None else default_prior()
        out["prior"] = {k: prior.get(k) for k in ("shape", "log_alpha", "B", "model_error")}
        model = PriorModel(d, d_at, prior, schedule is not None)
        fitted, params = model.point(y, noise)
        return model, fitted, params
    if family in ("tissue_s1s2", "power_law_steps"):
        model = _Grid(family, d, d_at)
    elif family == "multi_power":
        model = _Free(d, d_at)
    else:
        model = _Last(y.size, d_at.t.size)
    fitted, params = model.point(y)
    return model, fitted, params


def _draws(model, fitted: np.ndarray, y: np.ndarray, point: np.ndarray, reach: np.ndarray,
           n_boot: int, seed: int, noise: float | None) -> tuple[np.ndarray, int | None]:
    """Bootstrap predictions ``(m, targets)``: refits to resampled series, plus (ours) the
    calibrated model error ``model_error x log(target / last step) x |value|``, plus measurement
    noise; and the block length."""
    rng = np.random.default_rng(seed)
    Y, block = _resamples(fitted, y, model.n_params, n_boot, rng)  # noqa: N806
    preds = model.refit(Y, rng)
    preds = preds[np.isfinite(preds).all(axis=1)]
    if isinstance(model, PriorModel):
        sd = model.prior.get("model_error", 0.0) * np.log(np.maximum(reach, 1.0)) * np.abs(point)
        preds = preds + rng.standard_normal((len(preds), 1)) * sd[None, :]
    return preds + rng.normal(0.0, noise or 0.0, size=preds.shape), block


def _point_at(model, y: np.ndarray) -> np.ndarray:
    """The point forecast at ``at``: the model's fit to the data, predicted there."""
    if isinstance(model, PriorModel):
        return model.fit(y[None])[0][0]
    return model.refit(y[None], None)[0] if not isinstance(model, _Free) else \
        LAWS["multi_power"].func(model.p, model.d_at)
