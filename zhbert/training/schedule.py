"""Learning-rate schedule of the trainer: linear warmup to the peak, then cosine (or linear) decay.

The lr is a pure function of the config and the number of updates already taken, computed again
before every update (as in nanoGPT) rather than kept in a scheduler object. A resumed run
therefore always follows the schedule its *current* config states: extending ``run.max_steps``
or changing ``optim.lr`` / ``warmup_steps`` / ``total_steps`` / ``schedule`` takes effect at the
next update, and nothing stale survives in a checkpoint. The multiplier itself is
:func:`zhbert.lr_schedule.lr_factor`, shared with the analysis.
"""

from __future__ import annotations

import torch

from zhbert.config import TrainConfig
from zhbert.lr_schedule import lr_factor


def scheduled_lr(cfg: TrainConfig, step: int) -> float:
    """The lr of the update after ``step`` updates (update number ``step + 1``) under ``cfg``."""
    o = cfg.optim
    return o.lr * lr_factor(step + 1, o.warmup_steps, cfg.total_steps, o.schedule)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's lr (call before ``optimizer.step()``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def lr_at(peak: float, step: int, warmup: int, total: int, kind: str = "cosine") -> float:
    """The lr of update number ``step`` (1-based), for tests and docs."""
    return peak * lr_factor(step, warmup, total, kind)
