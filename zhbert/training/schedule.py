"""Learning-rate schedule of the trainer: linear warmup to the peak, then cosine (or linear) decay.

The lr is a pure function of the config and the number of updates already taken, computed again
before every update (as in nanoGPT) rather than kept in a scheduler object. A resumed run
therefore always follows the schedule its *current* config states: extending ``run.max_steps``
or changing ``optim.lr`` / ``warmup_steps`` / ``total_steps`` / ``schedule`` takes effect at the
next update, and nothing stale survives in a checkpoint. With ``run.time_budget_s`` the run's
length is re-planned from its pace (:func:`plan_steps`) and the schedule followed at the
rate the plan allows (:func:`advance`). The multiplier itself is
:func:`zhbert.lr_schedule.lr_factor`, shared with the analysis.
"""

from __future__ import annotations

import torch

from zhbert.config import TrainConfig
from zhbert.lr_schedule import lr_factor


def scheduled_lr(cfg: TrainConfig, step: int, position: float | None = None) -> float:
    """The lr of the update after ``step`` updates (update number ``step + 1``) under ``cfg``.

    ``position`` replaces the update number in a time-budget run (:func:`advance`): the
    schedule is then followed at the pace the budget allows.

    >>> from zhbert.config import get_preset
    >>> cfg = get_preset("smoke")
    >>> cfg.optim.lr, cfg.optim.warmup_steps, cfg.run.max_steps = 1.0, 10, 100
    >>> scheduled_lr(cfg, 4), scheduled_lr(cfg, 4, position=10.0), scheduled_lr(cfg, 49, 100.0)
    (0.5, 1.0, 0.0)
    """
    o = cfg.optim
    update = step + 1 if position is None else position
    return o.lr * lr_factor(update, o.warmup_steps, cfg.total_steps, o.schedule)


def advance(position: float, step: int, planned_steps: int, max_steps: int) -> float:
    """The schedule position of update ``step + 1`` in a time-budget run: what is left of the
    schedule (up to ``max_steps``) spread evenly over the planned steps left, so the position
    never moves back and reaches ``max_steps`` exactly at the planned last step.

    >>> advance(0.0, 0, 50, 100)  # half as many steps as planned: two positions a step
    2.0
    >>> advance(98.0, 49, 50, 100)  # the last planned update
    100.0
    """
    return position + (max_steps - position) / max(planned_steps - step, 1)


def plan_steps(step: int, elapsed_s: float, budget_s: float, max_steps: int,
               mark: tuple[int, float] | None = None) -> int:
    """Steps a time-budget run can take: ``step`` plus what fits in the budget left at the pace
    since ``mark`` = (step, elapsed) (evaluations and checkpoints included; without a usable
    mark, since the start), within ``[step, max_steps]``. Before the first step: ``max_steps``.

    >>> plan_steps(100, 50.0, 200.0, 1000)  # 0.5 s a step, 150 s left: 300 more
    400
    >>> plan_steps(100, 50.0, 200.0, 1000, mark=(60, 40.0))  # 0.25 s a step since the mark
    700
    >>> plan_steps(100, 250.0, 200.0, 1000)  # over budget: stop here
    100
    >>> plan_steps(0, 0.0, 200.0, 1000)
    1000
    """
    if step <= 0 or elapsed_s <= 0:
        return max_steps
    since_step, since_s = mark if mark is not None and mark[0] < step else (0, 0.0)
    pace = max(elapsed_s - since_s, 1e-9) / (step - since_step)
    more = int((budget_s - elapsed_s) // pace)
    return max(step, min(max_steps, step + more))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's lr (call before ``optimizer.step()``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def lr_at(peak: float, step: int, warmup: int, total: int, kind: str = "cosine") -> float:
    """The lr of update number ``step`` (1-based), for tests and docs."""
    return peak * lr_factor(step, warmup, total, kind)
