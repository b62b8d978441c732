"""A run's planned learning-rate schedule, and the learning-rate areas the forecasts use as time.

Under a decaying schedule progress per step shrinks with the lr, so curves are fitted against the
lr area ``S1(t) = sum of lr over updates 1..t`` (Tissue et al. 2024, "Scaling law with learning
rate annealing") rather than the step. Their annealing area ``S2`` is taken in its long-memory
form ``S2(t) = sum over updates after warmup of (peak - lr)``: how much the lr has been lowered,
accumulated. Both are in units of ``peak lr x steps``.

The plan comes from the history's ``meta`` (this project's trainer records its config), or is
inferred from the ``lr`` column (warmup + cosine/linear decay to a total step count, or constant).
A target past the planned last step needs an explicit ``continue_lr`` (how training would go on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import least_squares

from zhbert import history_schema as H
from zhbert.errors import UserError
from zhbert.lr_schedule import KINDS, lr_factor

#: areas are tabulated update by update up to this many steps, beyond it on a coarser grid
MAX_TABLE = 2_000_000


class _Plan:
    """What every schedule shares: the lr areas, the target check and the continuation. A
    subclass is a frozen dataclass with ``peak``, ``warmup``, ``kind``, ``continue_lr``,
    ``end``, ``position(update)`` and ``lr(update)``."""

    def areas(self, steps) -> tuple[np.ndarray, np.ndarray]:
        """``(S1, S2)`` after ``steps`` updates (fractional steps interpolated), in peak-lr steps."""
        steps = np.asarray(steps, dtype=np.float64)
        last = int(math.ceil(float(np.max(steps)))) if steps.size else 0
        stride = max(1, -(-last // MAX_TABLE))
        grid = np.arange(0, last + stride, stride, dtype=np.float64)
        lr = self.lr(grid[1:]) / self.peak
        cut = self.position(grid[1:]) > self.warmup
        s1 = np.concatenate([[0.0], np.cumsum(lr) * stride])
        s2 = np.concatenate([[0.0], np.cumsum(np.where(cut, 1.0 - lr, 0.0)) * stride])
        return np.interp(steps, grid, s1), np.interp(steps, grid, s2)

    def check_target(self, target: float) -> None:
        """UserError when ``target`` lies past the planned last step with no continuation given."""
        end = self.end
        if end is not None and target > end and self.continue_lr is None:
            raise UserError(
                f"target step {target:,.0f} is past the planned last step {end:,} of the "
                f"{self.kind} schedule (lr {self.lr(end).item():.3g} there); say how "
                f"training would continue with --continue-lr constant|VALUE")

    def with_continuation(self, how: str | float | None) -> Schedule:
        """``"constant"`` holds the lr of the planned last step; a number is the lr itself."""
        if how is None:
            return self
        if how == "constant":
            if self.end is None:
                return self
            return replace(self, continue_lr=float(self.lr(self.end)))
        try:
            value = float(how)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise UserError(f"--continue-lr must be 'constant' or a non-negative lr (got {how!r})")
        return replace(self, continue_lr=value)


@dataclass(frozen=True)
class Schedule(_Plan):
    """``peak * lr_factor(position(update), warmup, total, kind)``, decaying to ``final x peak``
    instead of 0 when ``final`` > 0; ``total`` None: no planned end known.

    ``position`` is the update number itself, except for a time-budget run (``warp``): there the
    trainer advances a schedule position towards ``run.max_steps`` at a rate re-planned from
    its pace, recorded as ``(step, position)`` knots ending at ``(last planned step, max_steps)``.
    :attr:`end` is the planned last step in steps. ``continue_lr`` (absolute lr) is how training
    is assumed to go on after it; None means a target past it is refused.
    """

    peak: float
    warmup: int
    total: int | None
    kind: str = "cosine"
    source: str = "meta"
    continue_lr: float | None = None
    warp: tuple[tuple[float, float], ...] | None = None
    final: float = 0.0

    @property
    def end(self) -> int | None:
        """The planned last step (the time-budget plan's, else ``total``)."""
        return int(self.warp[-1][0]) if self.warp else self.total

    def position(self, update) -> np.ndarray:
        """Schedule position of update number ``update`` (the update itself without a warp).

        >>> Schedule(1.0, 10, 100, warp=((0, 0.0), (10, 10.0), (60, 100.0))).position([5, 35])
        array([ 5., 55.])
        """
        s = np.asarray(update, dtype=np.float64)
        if not self.warp:
            return s
        xs, ys = zip(*self.warp, strict=True)
        return np.interp(s, xs, ys)

    def lr(self, update) -> np.ndarray:
        """The lr of update number ``update`` (1-based), including the continuation."""
        s = np.asarray(update, dtype=np.float64)
        total = self.total if self.total is not None else math.inf
        end = self.end if self.end is not None else math.inf
        pos = self.position(s)
        f = lr_factor(pos, self.warmup, int(min(total, 2**62)), self.kind)
        planned = self.peak * np.where(pos < self.warmup, f, self.final + (1.0 - self.final) * f)
        return planned if self.continue_lr is None else np.where(s > end, self.continue_lr, planned)

    def to_dict(self) -> dict:
        """JSON form (``schedule`` block of a forecast)."""
        return {"peak_lr": self.peak, "warmup_steps": self.warmup, "total_steps": self.total,
                "kind": self.kind, "final_lr_fraction": self.final, "source": self.source,
                "continue_lr": self.continue_lr,
                "last_step": self.end,
                "warp": None if self.warp is None else [list(k) for k in self.warp]}


@dataclass(frozen=True)
class TabulatedSchedule(_Plan):
    """A schedule known only as its logged ``(step, lr)`` points, for an lr column that no
    warmup + cosine/linear/constant plan reproduces (:func:`infer` gives None), e.g. a
    warmup-stable-decay run: the lr of an update is interpolated between the logged points,
    rising linearly from 0 at step 0 to the first logged point (a warmup before the log began)
    and held at the last one after it. :attr:`end` is the last logged step, so a target past
    it needs ``continue_lr``; ``warmup`` (where ``S2`` starts) is the first step at the peak.

    >>> t = TabulatedSchedule((10.0, 20.0, 30.0), (1.0, 1.0, 0.5))
    >>> t.lr([5, 25, 40]).tolist(), t.end, t.warmup, [a.tolist() for a in t.areas([30])]
    ([0.5, 0.75, 0.5], 30, 10, [[22.75], [2.75]])
    """

    steps: tuple[float, ...]
    values: tuple[float, ...]
    source: str = "tabulated from the lr column"
    continue_lr: float | None = None
    kind: str = "tabulated"

    @property
    def peak(self) -> float:
        """The largest logged lr."""
        return float(max(self.values))

    @property
    def warmup(self) -> int:
        """The first logged step at the peak lr."""
        return int(self.steps[int(np.argmax(self.values))])

    @property
    def end(self) -> int:
        """The last logged step."""
        return int(self.steps[-1])

    total = end

    def position(self, update) -> np.ndarray:
        """The update itself (no time-budget warp)."""
        return np.asarray(update, dtype=np.float64)

    def lr(self, update) -> np.ndarray:
        """The lr of update number ``update``, interpolated; the continuation after :attr:`end`."""
        s = np.asarray(update, dtype=np.float64)
        xs, ys = np.asarray(self.steps), np.asarray(self.values)
        if xs[0] > 0:
            xs, ys = np.concatenate([[0.0], xs]), np.concatenate([[0.0], ys])
        planned = np.interp(s, xs, ys)
        return planned if self.continue_lr is None else np.where(s > self.end, self.continue_lr,
                                                                 planned)

    def to_dict(self) -> dict:
        """JSON form (``schedule`` block of a forecast), the points summarised."""
        return {"peak_lr": self.peak, "warmup_steps": self.warmup, "total_steps": self.end,
                "kind": self.kind, "final_lr_fraction": float(self.values[-1]) / self.peak,
                "source": self.source, "continue_lr": self.continue_lr, "last_step": self.end,
                "warp": None, "n_points": len(self.steps)}


def tabulate(steps, lr) -> TabulatedSchedule | None:
    """A :class:`TabulatedSchedule` of the finite, positive-step points of an lr column; None
    with fewer than 2 of them or no positive lr.

    >>> tabulate([0, 10, 20], [0.0, 1e-3, 5e-4]).to_dict()["final_lr_fraction"]
    0.5
    """
    steps, lr = np.asarray(steps, np.float64), np.asarray(lr, np.float64)
    ok = np.isfinite(steps) & np.isfinite(lr) & (steps >= 0)
    steps, lr = steps[ok], lr[ok]
    if steps.size < 2 or np.max(lr) <= 0 or np.any(np.diff(steps) <= 0):
        return None
    return TabulatedSchedule(tuple(steps.tolist()), tuple(lr.tolist()))


def from_config(config: dict, source: str = "meta") -> Schedule | None:
    """The schedule of this project's config dict (``meta.config``); None when incomplete."""
    optim = config.get("optim") if isinstance(config, dict) else None
    run = config.get("run") if isinstance(config, dict) else None
    if not isinstance(optim, dict):
        return None
    try:
        peak = float(optim["lr"])
        warmup = int(optim.get("warmup_steps", 0))
        kind = str(optim.get("schedule", "cosine"))
        total = int(optim.get("total_steps") or (run or {}).get("max_steps") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    if kind not in KINDS or peak <= 0 or total <= 0:
        return None
    return Schedule(peak=peak, warmup=warmup, total=total, kind=kind, source=source)


def _decay_total(after: np.ndarray, frac: np.ndarray, warmup: float, kind: str) -> float | None:
    """Total step implied by decayed points (``frac`` = lr/peak strictly between 0 and 1)."""
    progress = (1.0 - frac) if kind == "linear" else np.arccos(2.0 * frac - 1.0) / math.pi
    ok = progress > 1e-3
    if not ok.any():
        return None
    return float(np.median(warmup + (after[ok] - warmup) / progress[ok]))


def _refine(steps: np.ndarray, lr: np.ndarray, kind: str, start: list[float]) -> list[float]:
    """Least-squares ``(peak, warmup, total, final)`` of one schedule kind from ``start``.

    Sampled lr columns rarely hold the exact peak or the warmup's last step, so the starting
    guess read off the samples is refined against every point (relative to the peak).
    """
    peak0, last = start[0], float(steps[-1])

    def resid(p):
        f = lr_factor(steps, p[1], p[2], kind)
        return (p[0] * np.where(steps < p[1], f, p[3] + (1.0 - p[3]) * f) - lr) / peak0

    lo = [0.5 * peak0, 0.0, 1.0, 0.0]
    hi = [2.0 * peak0, max(last, 1.0), max(100.0 * last, 2.0), 0.95]
    x0 = np.clip(start, lo, np.nextafter(hi, -np.inf))
    try:
        fit = least_squares(resid, x0, bounds=(lo, hi), x_scale="jac")
    except ValueError:
        return list(start)
    return list(fit.x) if fit.cost <= 0.5 * float(resid(x0) @ resid(x0)) else list(start)


def infer(steps: np.ndarray, lr: np.ndarray) -> Schedule | None:
    """Warmup + cosine/linear/constant schedule that reproduces an ``lr`` column; None if none does.

    A starting guess is read off the samples (the largest lr is the peak and ends the warmup;
    a decay's total solved from every decayed point, median; no floor), then peak, warmup,
    total and a final lr floor are refined by least squares on every point; the kind with the smaller
    misfit wins, and a fit worse than 2% of the peak is refused (the column follows some other
    schedule). A decay whose fitted end falls at most one logging interval (or 0.5%) before the
    last logged step is taken to end there. A floor is identifiable for a cosine decay; a linear
    decay to a floor matches a longer linear decay to 0 over the data, which is what it gives.

    >>> steps = np.arange(100, 100_001, 100)
    >>> s = infer(steps, Schedule(1e-4, 2345, 100_000, "cosine").lr(steps))
    >>> (s.kind, s.total, abs(s.warmup - 2345) <= 5)
    ('cosine', 100000, True)
    """
    steps, lr = np.asarray(steps, np.float64), np.asarray(lr, np.float64)
    ok = np.isfinite(lr) & np.isfinite(steps)
    steps, lr = steps[ok], lr[ok]
    if lr.size < 3 or np.max(lr) <= 0:
        return None
    i = int(np.argmax(lr))
    peak, warmup = float(lr[i]), float(steps[i])
    after, frac = steps[i:], lr[i:] / peak
    zero = np.nonzero(frac <= 0)[0]
    inner = (frac > 1e-6) & (frac < 1 - 1e-9)
    best = None
    for kind in ("constant", "cosine", "linear"):
        if kind == "constant":
            p = _refine(steps, lr, kind, [peak, warmup, 1.0, 0.0])
            total = None
        else:
            total = float(after[zero[0]]) if zero.size and not inner.any() else \
                _decay_total(after[inner], frac[inner], warmup, kind)
            if total is None or total <= warmup:
                continue
            p = _refine(steps, lr, kind, [peak, warmup, total, 0.0])
            total = _snap_end(p[2], steps)
        sched = Schedule(float(p[0]), int(round(p[1])), total, kind,
                         source="inferred from the lr column",
                         final=0.0 if kind == "constant" or p[3] < 1e-3 else float(p[3]))
        err = float(np.max(np.abs(sched.lr(steps) - lr)) / peak)
        if best is None or err < best[0] - 1e-12:
            best = (err, sched)
    return best[1] if best and best[0] <= 0.02 else None


def _snap_end(total: float, steps: np.ndarray) -> int:
    """``total`` rounded, or the last logged step when the fitted end falls before it by at most
    one logging interval (or 0.5%): a run logged past its end ended there. A fitted end after
    the last logged step is kept (the run may have stopped before its plan)."""
    last = float(steps[-1])
    spacing = float(np.median(np.diff(steps))) if steps.size > 1 else 0.0
    if 0 < last - total <= max(spacing, 0.005 * last):
        return int(round(last))
    return int(round(total))


def budget_warp(block) -> tuple[tuple[float, float], ...] | None:
    """The ``(step, position)`` knots of ``meta.time_budget`` (``zhbert.training.loop.replan``),
    closed by ``(planned_steps, max_steps)``; None when absent or malformed.

    >>> budget_warp({"knots": [[0, 0.0], [10, 10.0]], "planned_steps": 60, "max_steps": 100})
    ((0.0, 0.0), (10.0, 10.0), (60.0, 100.0))
    """
    try:
        knots = [(float(a), float(b)) for a, b in block["knots"]]
        end = (float(block["planned_steps"]), float(block["max_steps"]))
    except (KeyError, TypeError, ValueError):
        return None
    if knots and knots[-1][0] == end[0]:  # stopped over budget at a re-plan: the last update's
        end = knots.pop()  # position is the knot's, not the schedule's end
    knots.append(end)
    xs, ys = np.array(knots).T
    if not (np.all(np.isfinite(xs)) and np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)):
        return None
    return tuple(knots)


def planned_schedule(meta: dict | None, steps=None, lr=None, *, tabulated: bool = False,
                     ) -> Schedule | TabulatedSchedule | None:
    """The plan from ``meta.config`` when recorded, else inferred from the lr column, else
    (``tabulated``: for another tool's complete log) the column itself (:func:`tabulate`), else
    None."""
    config = meta.get(H.META_CONFIG) if isinstance(meta, dict) else None
    sched = from_config(config) if isinstance(config, dict) else None
    warp = budget_warp(meta.get(H.META_TIME_BUDGET) if isinstance(meta, dict) else None)
    if sched is not None and warp is not None:
        sched = replace(sched, warp=warp, source=f"{sched.source}, warped by the time budget")
    if sched is None and steps is not None and lr is not None:
        sched = infer(steps, lr)
        if sched is None and tabulated:
            sched = tabulate(steps, lr)
    return sched


def history_schedule(history) -> Schedule | TabulatedSchedule | None:
    """:func:`planned_schedule` of a loaded ``zhbert.analysis.History``; the lr column of another
    tool's log is tabulated when no known shape reproduces it (this project's histories and the
    original study's are read as before)."""
    frame = history.train
    lr = frame[H.LR].to_numpy(dtype=np.float64) if H.LR in frame.columns else None
    return planned_schedule(history.meta, frame[H.STEPS].to_numpy(dtype=np.float64), lr,
                            tabulated=not getattr(history, "native", True))
