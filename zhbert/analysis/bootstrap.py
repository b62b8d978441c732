"""Circular block bootstrap of residuals (used by ``zhbert.analysis.forecast``).

Residuals of a training curve are autocorrelated, so resampling them one by one (i.i.d.) would
make the interval too narrow. We resample blocks of consecutive residuals (circular, so every
residual is equally likely); the forecast refits its curves to ``fit + resampled residuals``.
The block length comes from the data (``block_length``).
"""

from __future__ import annotations

import math

import numpy as np

from zhbert.analysis.trend import lag1_autocorr


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
