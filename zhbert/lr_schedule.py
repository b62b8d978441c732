"""The learning-rate multiplier of warmup + decay schedules, torch-free and vectorised.

One definition shared by the trainer (``zhbert.training.schedule``) and the analysis, which needs
the planned schedule to turn steps into learning-rate area (``zhbert.analysis.schedule``).
"""

from __future__ import annotations

import numpy as np

KINDS = ("cosine", "linear", "constant")


def lr_factor(update, warmup: int, total: int, kind: str = "cosine"):
    """Multiplier of the peak lr for update number ``update`` (1-based; scalar or array).

    Linear warmup to exactly 1 at ``update == warmup``; then ``constant`` stays at 1, ``linear``
    and ``cosine`` decay to exactly 0 at ``update == total`` and stay there.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown schedule kind {kind!r}; choose one of {', '.join(KINDS)}")
    s = np.asarray(update, dtype=np.float64)
    if kind == "constant":
        decay = np.ones_like(s)
    else:
        progress = np.clip((s - warmup) / max(1, total - warmup), 0.0, 1.0)
        decay = 1.0 - progress if kind == "linear" else 0.5 * (1.0 + np.cos(np.pi * progress))
    out = np.where((warmup > 0) & (s < warmup), s / max(warmup, 1), decay)
    return float(out) if out.ndim == 0 else out
