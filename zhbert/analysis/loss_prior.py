"""Priors of the loss forecast, fitted on a calibration set of other runs' loss curves.

The multi-power law's decay shape ``(C, beta, gamma)`` is hard to identify from one partial
curve (before the lr decays it is not identified at all), and so is the size of the annealing
gain ``B``; the exponent ``alpha`` of the power part trades off against ``L0`` when the curve is
short. Luo et al. 2025 fit their law on three curves and predict others; we do the same across a
calibration set (:func:`calibrate_prior`):

1. the decay shape is fitted jointly on every curve whose lr drops (each curve keeps its own
   ``L0``, ``A``, ``alpha``, ``B``; the sum of ``n_c log rss_c``, each curve's Gaussian profile
   likelihood with its own variance, is minimised over the shape by Nelder-Mead);
2. at that shape each curve's ``alpha`` and ``B`` are fitted; the prior on ``log alpha`` is the
   mean and standard deviation of every curve's, the prior on ``B`` those of the decaying curves'
   (each standard deviation at least its floor).

A backtest calibrates the prior on the other curves only (``exclude``). The prior shipped with
the package, ``loss_prior.json``, is this function on every curve of ``../shared/curves/``
(``python studies/forecast_peers.py --write-prior zhbert/analysis/loss_prior.json``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from zhbert.analysis.loss_fit import Basis, PriorModel, grid_solve
from zhbert.analysis.loss_laws import LossDesign, loss_design
from zhbert.io_utils import read_json

PRIOR_FILE = Path(__file__).with_name("loss_prior.json")
#: calibration fits run on at most this many bin means per curve
CAL_POINTS = 80
#: floors of the prior standard deviations (log alpha; B in lr/peak units of loss)
ALPHA_SD_FLOOR = 0.1
B_SD_FLOOR = 0.03
SHAPE_START = (2.0, 0.6, 0.6)
#: cut fractions of the pseudo-forecasts that measure the model error
CAL_CUTS = (0.2, 0.3, 0.4, 0.5, 0.6)


def _curve_fit(d: LossDesign, y: np.ndarray, shape, power: Basis | None = None) -> dict:
    """One curve's grid fit of the multi-power law at a fixed decay shape (B >= 0 when the lr
    drops; no B column when it never does); ``power``: the curve's ``Basis("power", d)``, to
    reuse its power part."""
    decays = d.delta.size > 0
    power = power or Basis("power", d)
    basis = power.with_shape(d, shape) if decays else power
    out = grid_solve(basis, y[None], 1.0, positive=(1, 2) if decays else (1,))
    th = out["theta"][0]
    return {"rss": float(out["objective"][0]), "alpha": float(out["alpha"][0]),
            "B": float(th[2]) if decays else None, "L0": float(th[0]), "A": float(th[1])}


def _prepared(curves) -> list[tuple[str, LossDesign, np.ndarray]]:
    """``(name, design, values)`` of each ``(name, steps, values, schedule)``, in bin means."""
    out = []
    for name, steps, values, schedule in curves:
        d = loss_design(np.asarray(steps, np.float64), schedule, max_points=CAL_POINTS)
        out.append((name, d, d.avg(np.asarray(values, np.float64))))
    return out


def fit_shape(prepared) -> tuple[float, float, float]:
    """The decay shape ``(C, beta, gamma)`` minimising the summed profile likelihood."""
    decaying = [(d, y, Basis("power", d)) for _, d, y in prepared if d.delta.size]
    if not decaying:
        return SHAPE_START

    def loss(q):
        shape = np.exp(np.clip(q, -8.0, 8.0))
        total = 0.0
        for d, y, power in decaying:
            rss = _curve_fit(d, y, shape, power)["rss"]
            total += len(y) * math.log(max(rss, 1e-300)) if math.isfinite(rss) else 1e12
        return total

    res = minimize(loss, np.log(SHAPE_START), method="Nelder-Mead",
                   options={"xatol": 1e-3, "fatol": 1e-3, "maxiter": 400})
    return tuple(float(v) for v in np.exp(np.clip(res.x, -8.0, 8.0)))


def calibrate_prior(curves, exclude: str | None = None) -> dict:
    """The prior from ``curves`` (``(name, steps, values, schedule)`` tuples), leaving out the
    curve named ``exclude``: ``{"shape", "log_alpha": [mean, sd], "B": [mean, sd], "curves"}``."""
    kept = [c for c in curves if c[0] != exclude]
    prepared = _prepared(kept)
    if not prepared:
        raise ValueError("a prior needs at least one calibration curve")
    shape = fit_shape(prepared)
    fits = [(name, d.delta.size > 0, _curve_fit(d, y, shape)) for name, d, y in prepared]
    prior = _moments(shape, fits)
    errors = []
    for i, curve in enumerate(kept):  # each curve forecast under a prior without it
        errors += _pseudo_errors(*curve[1:], _moments(shape, fits[:i] + fits[i + 1:]))
    rel = np.array(errors) if errors else np.zeros((0, 2))
    prior["model_error"] = (float(np.sqrt(np.mean((rel[:, 0] / rel[:, 1]) ** 2)))
                            if rel.size else 0.0)
    prior["n_pseudo_forecasts"] = int(rel.shape[0])
    prior["curves"] = [name for name, _, _ in prepared]
    return prior


def _moments(shape, fits) -> dict:
    """The prior's means and standard deviations (with floors) from per-curve fits."""
    la = np.log([f["alpha"] for _, _, f in fits])
    b = np.array([f["B"] for _, decays, f in fits if decays], dtype=np.float64)
    return {"shape": list(shape),
            "log_alpha": [float(la.mean()) if la.size else math.log(0.5),
                          max(float(la.std(ddof=1)) if la.size > 1 else 0.0, ALPHA_SD_FLOOR)],
            "B": [float(b.mean()) if b.size else 0.15,
                  max(float(b.std(ddof=1)) if b.size > 1 else 0.0, B_SD_FLOOR)]}


def _pseudo_errors(steps, values, schedule, prior: dict) -> list[tuple[float, float]]:
    """``(relative error, log step distance)`` of the prior model's point forecasts of the last
    point from each of :data:`CAL_CUTS`."""
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    last = float(steps[-1])
    d_at = loss_design([last], schedule, last)
    out = []
    for q in CAL_CUTS:
        m = steps <= q * last
        if m.sum() < 3:
            continue
        d = loss_design(steps[m], schedule, last, max_points=CAL_POINTS)
        model = PriorModel(d, d_at, prior, schedule is not None)
        y = d.avg(values[m])
        model.point(y, None)
        pred = float(model.fit(y[None])[0][0, 0])
        out.append(((pred - values[-1]) / abs(values[-1]), math.log(last / steps[m][-1])))
    return out


def default_prior() -> dict:
    """The prior shipped with the package (see the module docstring for its command)."""
    return read_json(PRIOR_FILE, "the loss forecast's prior")
