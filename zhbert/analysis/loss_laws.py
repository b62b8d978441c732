"""Loss laws in the learning-rate areas: Tissue et al. 2024, Luo et al. 2025, and a power law in steps.

Time is the lr area of ``zhbert.analysis.schedule``: ``S1(t)`` (sum of lr/peak over updates 1..t)
and ``S2(t)`` (sum of 1 - lr/peak after warmup), here in units of ``SCALE`` peak-lr steps so that
fitted constants carry over between runs of similar length. The laws (lower is better):

* ``tissue_s1s2``: ``L0 + A S1^-alpha - C S2`` (Tissue et al. 2024, "Scaling law with learning
  rate annealing");
* ``multi_power``: ``L0 + A S1^-alpha - LD``, ``LD(t) = B sum_k (eta_{k-1} - eta_k)
  G(eta_k^-gamma S_k(t))``, ``G(x) = 1 - (C x + 1)^-beta``, ``S_k(t)`` the area from update k to
  t (Luo et al. 2025, "A multi-power law for loss curve prediction across learning rate
  schedules"). lr is lr/peak here, so B is the loss drop per unit of lr/peak;
* ``power_law_steps``: ``L0 + A (t / SCALE)^-alpha`` (no schedule).

The multi-power sum runs on a grid of ``GRID_CELLS`` equal cells from step 0 to the furthest step
needed; each cell's lr is its exact mean (area difference / cell length), so the sum is exact for
an lr that is constant within cells and a fine Riemann sum otherwise. The matrix of areas after
each lr drop is computed once per design (:func:`loss_design`), the law evaluates in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: areas and steps are in units of this many peak-lr steps
SCALE = 1000.0
GRID_CELLS = 192


class TabulatedSchedule:
    """A schedule read off a logged lr column: ``lr(update)`` interpolates between logged points.

    Duck-types ``zhbert.analysis.schedule.Schedule`` (``lr``, ``areas``, ``end``, ``to_dict``).
    The peak is the largest lr; warmup ends at the first step that reaches it. Before the first
    logged step the lr rises linearly from 0 (a warmup: the usual reason a log starts late),
    after the last one it stays at the last value; ``end`` is the last logged step.

    >>> s = TabulatedSchedule([10, 20, 30], [1.0, 1.0, 0.5])
    >>> s.lr([5, 25, 40]).tolist(), s.end
    ([0.5, 0.75, 0.5], 30)
    >>> [a.round(3).tolist() for a in s.areas([10, 30])]
    [[5.0, 22.5], [0.0, 2.5]]
    """

    def __init__(self, steps, lr, source: str = "tabulated lr column"):
        steps, lr = np.asarray(steps, np.float64), np.asarray(lr, np.float64)
        ok = np.isfinite(steps) & np.isfinite(lr)
        steps, lr = steps[ok], lr[ok]
        if steps.size < 2 or np.any(np.diff(steps) <= 0) or np.max(lr) <= 0 or np.min(lr) < 0:
            raise ValueError("a tabulated schedule needs 2+ increasing steps and lr >= 0, not all 0")
        if steps[0] > 0:
            steps, lr = np.concatenate([[0.0], steps]), np.concatenate([[0.0], lr])
        self.steps, self.values = steps, lr
        self.peak = float(np.max(lr))
        self.warmup = float(steps[int(np.argmax(lr))])
        self.source = source
        self.kind = "tabulated"

    @property
    def end(self) -> int:
        """The last tabulated step."""
        return int(self.steps[-1])

    def lr(self, update) -> np.ndarray:
        """The lr at ``update`` (linear between logged points, flat past the last)."""
        return np.interp(np.asarray(update, np.float64), self.steps, self.values)

    def areas(self, steps) -> tuple[np.ndarray, np.ndarray]:
        """``(S1, S2)`` after ``steps`` updates, in peak-lr steps (exact for the interpolant)."""
        steps = np.asarray(steps, np.float64)
        knots = np.union1d(self.steps, steps[np.isfinite(steps)])
        knots = knots[knots >= 0]
        f = self.lr(knots) / self.peak
        seg = 0.5 * (f[1:] + f[:-1]) * np.diff(knots)
        s1 = np.concatenate([[0.0], np.cumsum(seg)])
        after = knots[1:] > self.warmup
        s2 = np.concatenate([[0.0], np.cumsum(np.where(after, np.diff(knots) - seg, 0.0))])
        return np.interp(steps, knots, s1), np.interp(steps, knots, s2)

    def check_target(self, target: float) -> None:
        """Any target is allowed: past the last tabulated step the lr is held."""

    def to_dict(self) -> dict:
        """JSON form (``schedule`` block of a forecast)."""
        return {"kind": self.kind, "source": self.source, "peak_lr": self.peak,
                "warmup_steps": self.warmup, "last_step": self.end, "points": int(self.steps.size)}


@dataclass(frozen=True)
class LossDesign:
    """What the laws need at a set of steps: areas, steps, and the multi-power drop matrix.

    With ``w`` (bins x points) the laws return bin means, ``w @ law(points)``: a bin's mean of a
    curve, not the curve at the bin's mean step (they differ where the curve bends, as it does
    most at its start).
    """

    s1: np.ndarray  # S1 / SCALE
    s2: np.ndarray  # S2 / SCALE
    t: np.ndarray  # steps / SCALE
    delta: np.ndarray  # (m,) lr/peak drops at the cell boundaries (0 before the peak)
    eta: np.ndarray  # (m,) lr/peak just after each drop
    area: np.ndarray  # (n, m) area from each drop to each step, 0 where the drop comes later
    w: np.ndarray | None = None

    def avg(self, x: np.ndarray) -> np.ndarray:
        """Bin means of per-point values ``x`` (last axis), or ``x`` itself without bins."""
        return x if self.w is None else x @ self.w.T


def bin_matrix(n: int, max_points: int | None) -> np.ndarray | None:
    """Equal-count averaging of ``n`` points into at most ``max_points`` bins (None: no need).

    >>> bin_matrix(5, 2).round(3).tolist()
    [[0.333, 0.333, 0.333, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5, 0.5]]
    """
    if not max_points or n <= max_points:
        return None
    edges = np.ceil(np.linspace(0, n, max_points + 1) - 1e-9).astype(np.int64)
    w = np.zeros((max_points, n))
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        w[i, a:b] = 1.0 / (b - a)
    return w


def loss_design(steps, schedule, horizon: float | None = None,
                max_points: int | None = None) -> LossDesign:
    """The :class:`LossDesign` at ``steps`` under ``schedule`` (None: steps only); the
    multi-power grid covers 0..``horizon`` (default the largest step); more than ``max_points``
    steps are averaged in equal-count bins (:func:`bin_matrix`)."""
    steps = np.asarray(steps, np.float64)
    t, w = steps / SCALE, bin_matrix(steps.size, max_points)
    if schedule is None:
        z = np.zeros_like(steps)
        return LossDesign(z, z, t, np.zeros(0), np.ones(0), np.zeros((steps.size, 0)), w)
    top = float(max(np.max(steps), horizon or 0.0))
    grid = np.linspace(0.0, top, GRID_CELLS + 1)
    g1 = schedule.areas(grid)[0]
    eta = np.maximum(np.diff(g1) / np.diff(grid), 0.0)
    s1, s2 = schedule.areas(steps)
    peak_cell = int(np.argmax(eta >= eta.max() * (1 - 1e-9)))
    delta = np.where(np.arange(1, eta.size) > peak_cell, eta[:-1] - eta[1:], 0.0)
    keep = np.abs(delta) > 1e-9
    start = g1[1:-1][keep]  # area at the boundary where each drop happens
    area = np.maximum(s1[:, None] - start[None, :], 0.0) / SCALE
    return LossDesign(s1 / SCALE, s2 / SCALE, t, delta[keep], eta[1:][keep], area, w)


def tissue(p, d: LossDesign) -> np.ndarray:
    """``L0 + A S1^-alpha - C S2`` (p = L0, A, alpha, C).

    >>> d = LossDesign(np.array([1.0, 4.0]), np.array([0.0, 2.0]), np.zeros(2), np.zeros(0),
    ...                np.zeros(0), np.zeros((2, 0)))
    >>> tissue([2.0, 1.0, 0.5, 0.1], d).tolist()
    [3.0, 2.3]
    """
    L0, A, alpha, C = p  # noqa: N806 - the papers' names
    return d.avg(L0 + A * d.s1 ** (-alpha) - C * d.s2)


def annealing_drop(p, d: LossDesign) -> np.ndarray:
    """The multi-power law's ``LD(t)`` at every point (p = B, C, beta, gamma; no bin means)."""
    B, C, beta, gamma = p  # noqa: N806
    if d.delta.size == 0:
        return np.zeros(d.area.shape[0])
    x = (np.maximum(d.eta, 1e-12) ** (-gamma))[None, :] * d.area
    g = 1.0 - (C * x + 1.0) ** (-beta)
    return B * (g @ d.delta)


def multi_power(p, d: LossDesign) -> np.ndarray:
    """``L0 + A S1^-alpha - LD`` (p = L0, A, alpha, B, C, beta, gamma).

    One drop of lr/peak from 1 to 0.5 at area 1 (i.e. eta = 0.5), seen at area 2 after it:
    G = 1 - (C * 0.5^-1 * 2 + 1)^-1 = 1 - 1/5 with C = 1, gamma = 1, beta = 1, so LD = B 0.5 0.8.

    >>> d = LossDesign(np.array([3.0]), np.zeros(1), np.zeros(1), np.array([0.5]),
    ...                np.array([0.5]), np.array([[2.0]]))
    >>> round(float(multi_power([2.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0], d)[0]), 6)
    2.6
    """
    return d.avg(p[0] + p[1] * d.s1 ** (-p[2]) - annealing_drop(p[3:], d))


def power_steps(p, d: LossDesign) -> np.ndarray:
    """``L0 + A (t / SCALE)^-alpha`` (p = L0, A, alpha)."""
    return d.avg(p[0] + p[1] * d.t ** (-p[2]))


@dataclass(frozen=True)
class Law:
    """A loss law: its curve ``func(p, design)``, parameter names, which are fitted in log space
    (positive), and default bounds (in the fitted space)."""

    name: str
    func: object
    params: tuple[str, ...]
    log: tuple[bool, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    needs_schedule: bool = True


_LN = np.log
LAWS = {
    "tissue_s1s2": Law("tissue_s1s2", tissue, ("L0", "A", "alpha", "C"),
                       (False, True, True, True), (-np.inf, _LN(1e-6), _LN(1e-3), _LN(1e-9)),
                       (np.inf, _LN(1e3), _LN(3.0), _LN(1e2))),
    "multi_power": Law("multi_power", multi_power, ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
                       (False, True, True, True, True, True, True),
                       (-np.inf, _LN(1e-6), _LN(1e-3), _LN(1e-6), _LN(1e-4), _LN(0.02),
                        _LN(0.02)),
                       (np.inf, _LN(1e3), _LN(3.0), _LN(1e2), _LN(1e5), _LN(10.0), _LN(3.0))),
    "power_law_steps": Law("power_law_steps", power_steps, ("L0", "A", "alpha"),
                           (False, True, True), (-np.inf, _LN(1e-6), _LN(1e-3)),
                           (np.inf, _LN(1e3), _LN(3.0)), needs_schedule=False),
}


def to_natural(law: Law, q) -> np.ndarray:
    """Fitted-space parameters ``q`` (log for positive ones) to the law's own."""
    q = np.asarray(q, np.float64)
    return np.where(law.log, np.exp(np.minimum(q, 700.0)), q)


def to_fitted(law: Law, p) -> np.ndarray:
    """The law's parameters to the fitted space."""
    p = np.asarray(p, np.float64)
    return np.where(law.log, np.log(np.maximum(np.abs(p), 1e-300)), p)
