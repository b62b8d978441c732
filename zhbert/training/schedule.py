"""Learning-rate schedule: linear warmup to the peak, then cosine (or linear) decay to 0."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zhbert.lr_schedule import lr_factor


@dataclass(frozen=True)
class WarmupDecay:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based count of steps taken).

    The lr used by update number ``s`` (1-based) is ``peak * factor(s)``: it rises linearly to
    exactly the peak at ``s == warmup`` and decays to exactly 0 at ``s == total``.
    A picklable object (not a lambda) so the scheduler state stays plain data.
    """

    warmup: int
    total: int
    kind: str = "cosine"

    def __call__(self, step: int) -> float:
        return lr_factor(step + 1, self.warmup, self.total, self.kind)  # LambdaLR starts at 0


def make_scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int,
                   kind: str = "cosine") -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with :class:`WarmupDecay`; call ``.step()`` once after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupDecay(warmup, total, kind))


def lr_at(peak: float, step: int, warmup: int, total: int, kind: str = "cosine") -> float:
    """The lr of update number ``step`` (1-based), for tests and docs."""
    return peak * WarmupDecay(warmup, total, kind)(step - 1)
