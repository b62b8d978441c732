"""Residual circular-block bootstrap of the best curve fit, for an extrapolation interval.

Residuals of a training curve are autocorrelated, so resampling them one by one (i.i.d.) would
make the interval too narrow. We resample blocks of consecutive residuals (circular, so every
residual is equally likely) and refit the curve to ``fit + resampled residuals`` per replicate,
warm-started at the original fit. The block length comes from the data (``block_length``).
"""

from __future__ import annotations

import math

import numpy as np

from zhbert.analysis.curves import FAMILIES, _start_and_bounds, bin_series, fit_params
from zhbert.analysis.trend import lag1_autocorr

DEFAULT_N_BOOT = 500
BAND_POINTS = 60


def block_length(resid: np.ndarray) -> int:
    """Data-driven block length: an AR(1) plug-in of the Politis-White rule.

    For AR(1) residuals with lag-1 autocorrelation rho, the optimal block length of the circular
    block bootstrap grows like ``(2 rho / (1 - rho^2))^(2/3) * n^(1/3)``; we take that with rho
    estimated from the residuals, at least 1 (i.i.d. resampling when rho <= 0), at most n/4.
    """
    n = len(resid)
    rho = min(max(lag1_autocorr(resid), 0.0), 0.98)
    b = (2 * rho / (1 - rho**2)) ** (2 / 3) * n ** (1 / 3)
    return int(min(max(1, math.ceil(b)), max(1, n // 4)))


def circular_block_indices(n: int, block: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` resampling indices made of circular blocks of ``block`` consecutive points."""
    n_blocks = -(-n // block)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(block)[None, None, :]) % n
    return idx.reshape(n_boot, n_blocks * block)[:, :n]


def bootstrap_predictions(name: str, params: dict, steps: np.ndarray, y: np.ndarray,
                          at_steps: np.ndarray, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                          ) -> tuple[np.ndarray, int]:
    """Refit family ``name`` on ``n_boot`` block-bootstrap series; predictions at ``at_steps``.

    Returns ``(preds, block)`` with ``preds`` of shape ``(n_ok, len(at_steps))`` (replicates whose
    refit failed are left out). Long series are binned first (``curves.bin_series``).
    """
    fam = FAMILIES[name]
    t_scale = float(params.get("t_scale", 1.0))
    keep = steps > 0
    bs, by = bin_series(np.asarray(steps, float)[keep], np.asarray(y, float)[keep])
    ts = bs / t_scale
    p_hat = np.array([params[p] for p in fam.params])
    fitted = fam.func(ts, *p_hat)
    resid = by - fitted
    resid = resid - resid.mean()  # centred, so replicates are unbiased around the fit
    block = block_length(resid)
    rng = np.random.default_rng(seed)
    ystar = fitted[None, :] + resid[circular_block_indices(len(resid), block, n_boot, rng)]
    _, bounds = _start_and_bounds(name, ts, by)
    at_ts = np.asarray(at_steps, float) / t_scale
    preds = []
    for row in ystar:  # each refit is warm-started at the original fit
        popt = fit_params(name, ts, row, p_hat, bounds)
        if popt is not None:
            preds.append(fam.func(at_ts, *popt))
    return (np.array(preds) if preds else np.empty((0, len(at_ts)))), block


def extrapolate(best: dict, steps: np.ndarray, y: np.ndarray, target_step: float | None = None,
                n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict | None:
    """``extrapolation`` block: value and 95% percentile interval of the best fit at the target.

    The interval is for the expected accuracy (the curve), not for one noisy measurement.
    """
    if best is None:
        return None
    name, params = best["family"], best["params"]
    last = float(np.max(steps))
    target = float(target_step) if target_step is not None else 2.0 * last
    first = float(steps[steps > 0].min())
    band_steps = np.unique(np.concatenate([np.linspace(first, max(target, last), BAND_POINTS),
                                           [target]]))
    at = np.concatenate([[target], band_steps])
    preds, block = bootstrap_predictions(name, params, steps, y, at, n_boot, seed)
    fam = FAMILIES[name]
    center = fam.func(at / float(params.get("t_scale", 1.0)), *(params[p] for p in fam.params))
    if len(preds) >= 10:
        low, high = np.percentile(preds, [2.5, 97.5], axis=0)
    else:  # too few successful refits for a percentile interval
        low = high = np.full_like(center, np.nan)
    nan_none = [None if not math.isfinite(v) else float(v) for v in (low[0], high[0])]
    return {"family": name, "target_step": target, "value": float(center[0]), "ci95": nan_none,
            "block_length": block, "n_boot": int(n_boot), "n_boot_ok": int(len(preds)),
            "seed": int(seed), "interval": "percentile, expected accuracy (curve), not one batch",
            "band": {"steps": band_steps.tolist(), "value": center[1:].tolist(),
                     "low": low[1:].tolist(), "high": high[1:].tolist()}}
