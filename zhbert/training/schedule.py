"""Learning-rate schedule of the trainer: linear warmup to the peak, then cosine (or linear) decay.

The lr is a pure function of the config and the number of updates already taken, computed again
before every update (as in nanoGPT) rather than kept in a scheduler object. A resumed run
therefore always follows the schedule its *current* config states: extending ``run.max_steps``
or changing ``optim.lr`` / ``warmup_steps`` / ``total_steps`` / ``schedule`` takes effect at the
next update, and nothing stale survives in a checkpoint. With ``run.time_budget_s`` the run's
length is re-planned from its pace (:func:`plan_steps`) and the schedule stretched to it. The multiplier itself is
:func:`zhbert.lr_schedule.lr_factor`, shared with the analysis.
"""

from __future__ import annotations

import torch

from zhbert.config import TrainConfig
from zhbert.lr_schedule import lr_factor


def scheduled_lr(cfg: TrainConfig, step: int, planned_steps: int | None = None) -> float:
    """The lr of the update after ``step`` updates (update number ``step + 1``) under ``cfg``.

    ``planned_steps`` (a time-budget run's re-planned length) stretches the whole schedule so
    that step ``planned_steps`` plays the part of ``run.max_steps``: warmup keeps its share and
    the decay ends where it would have ended.

    >>> from zhbert.config import get_preset
    >>> cfg = get_preset("smoke")
    >>> cfg.optim.lr, cfg.optim.warmup_steps, cfg.run.max_steps = 1.0, 10, 100
    >>> scheduled_lr(cfg, 4), scheduled_lr(cfg, 4, planned_steps=50)  # update 5 of 100 / of 50
    (0.5, 1.0)
    >>> scheduled_lr(cfg, 49, planned_steps=50)  # the last update of the stretched plan
    0.0
    """
    o = cfg.optim
    update = float(step + 1)
    if planned_steps and planned_steps != cfg.run.max_steps:
        update *= cfg.run.max_steps / planned_steps
    return o.lr * lr_factor(update, o.warmup_steps, cfg.total_steps, o.schedule)


def plan_steps(step: int, elapsed_s: float, budget_s: float, max_steps: int) -> int:
    """Steps a time-budget run can take: ``step`` plus what fits in the budget left at the pace
    so far (``elapsed_s / step``, evaluations and checkpoints included), within
    ``[step, max_steps]``. Before the first step the plan is ``max_steps``.

    >>> plan_steps(100, 50.0, 200.0, 1000)  # 0.5 s a step, 150 s left: 300 more
    400
    >>> plan_steps(100, 250.0, 200.0, 1000)  # over budget: stop here
    100
    >>> plan_steps(0, 0.0, 200.0, 1000)
    1000
    """
    if step <= 0 or elapsed_s <= 0:
        return max_steps
    more = int((budget_s - elapsed_s) // (elapsed_s / step))
    return max(step, min(max_steps, step + more))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's lr (call before ``optimizer.step()``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def lr_at(peak: float, step: int, warmup: int, total: int, kind: str = "cosine") -> float:
    """The lr of update number ``step`` (1-based), for tests and docs."""
    return peak * lr_factor(step, warmup, total, kind)
