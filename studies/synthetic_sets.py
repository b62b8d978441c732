"""The head-to-head's synthetic curves (``studies/forecast_peers.py``, ``--synthetic``), one recipe
for every study that scores them: the ``i``-th curve of each kind with its seed.

* accuracy: ``zhbert.analysis.synthetic.make_scheduled_history``'s held-out series (40 points,
  noise sd 0.35 points) under a cosine, linear or constant plan in turn, 10,000 steps, warmup
  200-500;
* loss: Tissue's law (``make_loss_curve``, 200 points, noise sd :data:`SYNTHETIC_LOSS_NOISE`)
  under the same plans, every fourth under a warmup-stable-decay schedule instead.
"""

from __future__ import annotations

import numpy as np

from zhbert import history_schema as H
from zhbert.analysis.loss_laws import TabulatedSchedule
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import make_loss_curve, make_scheduled_history


def _wsd(total: int, warmup: int, decay_from: float) -> TabulatedSchedule:
    """Warmup, constant, then a linear decay to 10 % over the last ``1 - decay_from``."""
    steps = np.linspace(0, total, 401)
    lr = np.interp(steps, [0, warmup, decay_from * total, total], [0.0, 1e-3, 1e-3, 1e-4])
    return TabulatedSchedule(steps, lr, source="synthetic WSD")


def _synthetic_plan(i: int) -> Schedule:
    return Schedule(1e-3, 200 + 100 * (i % 4), 10_000, ("cosine", "linear", "constant")[i % 3])


def synthetic_accuracy(i: int, seed: int) -> tuple[str, np.ndarray, np.ndarray, Schedule, float]:
    """The ``i``-th synthetic accuracy history's held-out series (``make_scheduled_history``;
    cosine / linear / constant in turn): ``(name, steps, acc, plan, stderr)``."""
    plan = _synthetic_plan(i)
    h = make_scheduled_history(plan, seed=seed, n=1000, noise=0.03, rho=0.5, eval_every=25)
    steps, acc = np.asarray(h[H.EVAL_STEPS], float), np.asarray(h[H.EVAL_MLM_ACC], float)
    return f"{plan.kind} seed {seed}", steps, acc, plan, float(h[H.EVAL_STDERR][-1])


#: the synthetic loss curves' noise sd
SYNTHETIC_LOSS_NOISE = 0.01


def synthetic_loss(i: int, seed: int, c_ranges: dict | None = None,
                   ) -> tuple[str, np.ndarray, np.ndarray, object]:
    """The ``i``-th synthetic loss curve of Tissue's law (``make_loss_curve``; every fourth on a
    WSD schedule, the others as :func:`synthetic_accuracy`'s): ``(name, steps, loss, schedule)``.
    ``c_ranges``: schedule kind -> the range its ``C`` is drawn from (``make_loss_curve``'s
    ``c_range``; a kind not named keeps the generator's)."""
    sched = _wsd(10_000, 200, 0.8) if i % 4 == 3 else _synthetic_plan(i)
    c = make_loss_curve(sched, n=200, noise=SYNTHETIC_LOSS_NOISE, rho=0.5, seed=seed,
                        c_range=(c_ranges or {}).get(sched.kind))
    return f"{sched.kind} seed {seed}", np.asarray(c["steps"]), np.asarray(c["loss"]), sched
