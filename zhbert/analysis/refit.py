"""Refit a forecast family on many resampled series at once (variable projection on a grid).

Every forecast family is linear in some parameters once the others are fixed:
``log_linear`` a + b ln x (no non-linear parameter), ``power_law`` a - b x^-c (c),
``weibull`` a + (d - a) exp(-(x/lam)^k) (lam, k), ``power_law_anneal`` a - b x^-c + C z (c).
For a grid of the non-linear parameters around the original fit, the linear ones are solved in
closed form for every grid point and every resample together; each resample keeps its
least-squares grid point among those that respect the bounds (b, C >= 0; an accuracy asymptote
<= 1; Weibull's start value d in [0, 1]). That is a full least-squares refit restricted to the
grid, about a hundred times faster than polishing each resample with ``curve_fit``, which keeps
a forecast cheap enough to run inside training (issue: live forecast).
"""

from __future__ import annotations

import numpy as np

#: log-spaced multiples of the original non-linear parameter that the grid spans
SPAN = 1.2
GRID_C = 31
GRID_LAM, GRID_K = 15, 11


def _row(name: str) -> int:
    return 2 if name.endswith("_steps") else 0


def _grid(name: str, popt: np.ndarray, bounds) -> list[np.ndarray]:
    """Grid of the non-linear parameters (one array per parameter, same length)."""
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    base = name.removesuffix("_steps")
    if base == "log_linear":
        return []
    if base in ("power_law", "power_law_anneal"):
        c = np.clip(popt[2] * np.exp(np.linspace(-SPAN, SPAN, GRID_C)), lo[2], hi[2])
        return [np.unique(c)]
    lam = np.clip(popt[2] * np.exp(np.linspace(-SPAN, SPAN, GRID_LAM)), lo[2], hi[2])
    k = np.clip(popt[3] * np.exp(np.linspace(-0.8, 0.8, GRID_K)), lo[3], hi[3])
    lam_g, k_g = (m.ravel() for m in np.meshgrid(lam, k))
    return [lam_g, k_g]


def _bases(name: str, X: np.ndarray, grid: list[np.ndarray]) -> np.ndarray:
    """Basis functions ``(J, p, n)`` for the J grid points (p linear coefficients)."""
    x = X[_row(name)]
    base = name.removesuffix("_steps")
    one = np.ones_like(x)
    if base == "log_linear":
        return np.stack([one, np.log(x)])[None]
    if base == "power_law":
        return np.stack([np.broadcast_to(one, (len(grid[0]), len(x))),
                         x[None, :] ** (-grid[0][:, None])], axis=1)
    if base == "power_law_anneal":
        j = len(grid[0])
        return np.stack([np.broadcast_to(one, (j, len(x))), x[None, :] ** (-grid[0][:, None]),
                         np.broadcast_to(X[1], (j, len(x)))], axis=1)
    e = np.exp(-((x[None, :] / grid[0][:, None]) ** grid[1][:, None]))
    return np.stack([np.broadcast_to(one, e.shape), e], axis=1)


def _valid(name: str, coef: np.ndarray, bounds) -> np.ndarray:
    """Which ``(J, p, B)`` solutions respect the family's bounds: ``(J, B)`` booleans."""
    lo, hi = (np.asarray(b, dtype=np.float64) for b in bounds)
    base = name.removesuffix("_steps")
    a = coef[:, 0]
    ok = (a <= hi[0]) & (a >= lo[0])
    if base in ("power_law", "power_law_anneal"):
        ok &= coef[:, 1] <= 0  # the basis is +x^-c, so its coefficient is -b
    if base == "power_law_anneal":
        ok &= coef[:, 2] >= 0
    if base == "weibull":
        d = a + coef[:, 1]
        ok &= (d >= lo[1]) & (d <= hi[1])
    return ok


def grid_refit(name: str, X: np.ndarray, Y: np.ndarray, popt: np.ndarray, bounds,
               X_at: np.ndarray) -> np.ndarray:
    """Predictions ``(B, m)`` at ``X_at`` of family ``name`` refitted to each row of ``Y``.

    Rows with no admissible grid point are NaN.
    """
    grid = _grid(name, np.asarray(popt, dtype=np.float64), bounds)
    G = _bases(name, X, grid)  # noqa: N806 - (J, p, n)
    G_at = _bases(name, X_at, grid)  # noqa: N806
    gram = np.einsum("jpn,jqn->jpq", G, G)
    rhs = np.einsum("jpn,bn->jpb", G, Y)
    with np.errstate(all="ignore"):
        try:
            coef = np.linalg.solve(gram, rhs)  # (J, p, B)
        except np.linalg.LinAlgError:
            coef = np.einsum("jpq,jqb->jpb", np.linalg.pinv(gram), rhs)
        rss = np.einsum("bn,bn->b", Y, Y)[None, :] - np.einsum("jpb,jpb->jb", coef, rhs)
    rss = np.where(_valid(name, coef, bounds) & np.isfinite(rss), rss, np.inf)
    best = np.argmin(rss, axis=0)  # (B,)
    cols = np.arange(Y.shape[0])
    pred = np.einsum("bp,bpm->bm", coef[best, :, cols], G_at[best])
    pred[~np.isfinite(rss[best, cols])] = np.nan
    return pred
