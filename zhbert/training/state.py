"""The small state that changes every step, and how it goes into and out of ``state.pt``.

What is built once per process (model, optimizer, data, config) is
:class:`zhbert.training.setup.Setup`; what the loop advances is :class:`Progress` (counters and
the clock) holding one :class:`Interval` (the running sums of the current log interval).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zhbert.baselines import BASELINES_KEY
from zhbert.data import STREAM_DROPOUT_RESHARDED, stream_seed
from zhbert.errors import UserError
from zhbert.training import distributed as D
from zhbert.training.checkpoint import load_state, load_weights, rng_state, set_rng_state
from zhbert.training.optim import load_optimizer_state
from zhbert.training.setup import Setup


class Interval:
    """Running sums of one log interval, kept on the device (no host sync per step), and the
    interval's clock.

    ``REDUCED`` sums differ per rank and are summed over ranks at a log point; ``LOCAL`` ones
    are the same on every rank (the gradient norm after the all-reduce, skipped steps).
    """

    REDUCED = ("mlm_correct", "mlm_count", "loss_sum", "n_micro", "tokens", "nsp_correct",
               "nsp_count")
    LOCAL = ("grad_norm_sum", "n_steps", "skipped")

    def __init__(self, device: torch.device, values: dict[str, float] | None = None):
        values = values or {}
        self.sums = {k: torch.tensor(float(values.get(k, 0.0)), dtype=torch.float64,
                                     device=device) for k in self.REDUCED + self.LOCAL}
        self.restart_clock()

    def restart_clock(self) -> None:
        """Start timing now: ``overhead`` (eval, checkpoints) and ``data_wait`` are excluded
        from the interval's tokens/s."""
        self.start, self.overhead, self.data_wait = time.perf_counter(), 0.0, 0.0

    def busy_seconds(self) -> float:
        """Seconds spent training in this interval (wall time less eval and checkpoints)."""
        return max(time.perf_counter() - self.start - self.overhead, 1e-9)

    def add_micro(self, out, n_tokens: int) -> None:
        """Count one micro-batch's forward output (``PretrainOutput``)."""
        s = self.sums
        s["mlm_correct"] += out.mlm_correct
        s["mlm_count"] += out.mlm_count
        s["loss_sum"] += out.loss.detach().double()
        s["n_micro"] += 1
        s["tokens"] += n_tokens
        if out.nsp_correct is not None:
            s["nsp_correct"] += out.nsp_correct
            s["nsp_count"] += out.nsp_count

    def add_step(self, norm: torch.Tensor, finite: bool) -> None:
        """Count one optimizer step: its gradient norm when finite, else one skipped step."""
        if finite:
            self.sums["grad_norm_sum"] += norm.detach().double()
            self.sums["n_steps"] += 1
        else:
            self.sums["skipped"] += 1

    def local(self, key: str) -> float:
        return float(self.sums[key])

    def reduced(self, dist: D.DistInfo) -> dict[str, float]:
        """The ``REDUCED`` sums over all ranks (collective under DDP)."""
        device = self.sums["tokens"].device
        values = D.all_reduce_sum([float(self.sums[k]) for k in self.REDUCED], device, dist)
        return dict(zip(self.REDUCED, values, strict=True))

    def snapshot(self, dist: D.DistInfo) -> dict[str, float]:
        """Every sum as a float, the ``REDUCED`` ones over all ranks (for ``state.pt``)."""
        out = {k: float(v) for k, v in self.sums.items()}
        out.update(self.reduced(dist))
        return out


@dataclass
class Progress:
    """Where the run is: counters that change every step, and the current log interval."""

    interval: Interval
    step: int = 0
    tokens_seen: int = 0
    elapsed_before: float = 0.0  # wall seconds of earlier (resumed) sessions
    last_lr: float = 0.0
    last_eval: str = "-"  # the last held-out accuracy, for the progress bar
    skip_streak: int = 0  # consecutive steps skipped for a non-finite gradient
    planned_steps: int = 0  # where the run ends: run.max_steps, or re-planned by a time budget
    position: float | None = None  # schedule position of a time-budget run (None: the step)
    pace_mark: tuple[int, float] | None = None  # (step, elapsed) after this session's 1st step
    t0: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Wall seconds of training so far, including earlier (resumed) sessions."""
        return self.elapsed_before + time.perf_counter() - self.t0


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite (one host-device synchronisation)."""
    return bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())


def checkpoint_state(s: Setup, p: Progress) -> dict[str, Any]:
    """The ``state.pt`` content (collective under DDP: RNG states are gathered, the interval's
    sums reduced over ranks; a resume restores them on rank 0 only)."""
    return {
        "step": p.step,
        "optimizer": s.optimizer.state_dict(),
        "scaler": s.scaler.state_dict() if s.scaler else {},
        "rng": D.all_gather_objects(rng_state(), s.dist),
        "sampler": s.stream.state_dict(),
        "history_len": s.history.lengths,
        "history_json": json.dumps(s.history.data, ensure_ascii=False),
        "interval": p.interval.snapshot(s.dist),
        "tokens_seen": p.tokens_seen,
        "elapsed_s": p.elapsed(),
        "last_lr": p.last_lr,
        "planned_steps": p.planned_steps,
        "schedule_position": p.position,
        "world_size": s.dist.world_size,
    }


def restore(s: Setup, p: Progress, ckpt: Path, changes: list[str]) -> None:
    """Load weights and training state from ``ckpt`` into ``s`` and ``p``; the current
    config's settings apply.

    The optimizer keeps its configured hyper-parameters (only moments and step counts are
    restored) and the lr is recomputed from the config at every step, so ``changes`` (the
    config keys that differ from the checkpoint's) all take effect; they are recorded in
    ``meta.resumed`` and ``meta.config`` becomes the current config.
    """
    load_weights(s.model, ckpt)
    state = load_state(ckpt)
    try:
        load_optimizer_state(s.optimizer, state["optimizer"])
        if s.scaler and state["scaler"]:
            s.scaler.load_state_dict(state["scaler"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"checkpoint {ckpt} does not fit this config: {exc}") from None
    s.stream.load_state_dict(state["sampler"])
    _restore_history(s, state, changes)
    p.step, p.tokens_seen = int(state["step"]), int(state["tokens_seen"])
    p.elapsed_before, p.last_lr = float(state["elapsed_s"]), float(state["last_lr"])
    _restore_plan(s, p, state, changes)
    interval = dict(state["interval"])
    if not s.dist.is_main:  # rank 0 holds the whole world's sums; the log point adds them up
        interval.update(dict.fromkeys(Interval.REDUCED, 0.0))
    p.interval = Interval(s.device, interval)
    rngs = state["rng"]
    if len(rngs) == s.dist.world_size:
        set_rng_state(rngs[s.dist.rank])
    else:
        s.log.info("note: world size changed (%d -> %d); data order and dropout differ from "
                   "an uninterrupted run", len(rngs), s.dist.world_size)
        torch.manual_seed(stream_seed(s.cfg.run.seed, STREAM_DROPOUT_RESHARDED, s.dist.rank,
                                      p.step))
    s.log.info("resumed from %s at step %d", ckpt, p.step)


def _restore_plan(s: Setup, p: Progress, state: dict, changes: list[str]) -> None:
    """A time-budget run keeps its schedule position and its plan (a reached plan stays final).

    A changed budget or ``run.max_steps`` makes the loop plan again before its first step; the
    position goes on from where it is, towards the new ``run.max_steps`` (as a plain run's step
    does when it is extended: the lr follows the current config's schedule from there).
    """
    position = state.get("schedule_position")
    if position is None:
        return
    p.position = float(position)
    changed = {c.split(":", 1)[0] for c in changes}
    if not changed & {"run.time_budget_s", "run.max_steps"}:
        p.planned_steps = min(int(state.get("planned_steps") or p.planned_steps),
                              s.cfg.run.max_steps)


def _restore_history(s: Setup, state: dict, changes: list[str]) -> None:
    """The saved history, cut to the checkpoint's length, with this session in ``meta``."""
    saved = json.loads(state["history_json"])
    fresh = s.history.data["meta"]
    meta = saved.get("meta", fresh)
    if BASELINES_KEY in fresh:  # a run started before the baselines existed gets them now
        meta.setdefault(BASELINES_KEY, fresh[BASELINES_KEY])
    meta["config"] = s.cfg.to_dict()
    meta.setdefault("resumed", []).append(
        {"step": int(state["step"]), "time": dt.datetime.now(dt.UTC).isoformat(
            timespec="seconds"), "world_size": s.dist.world_size, "config_changes": changes})
    s.history.data = {**saved, "meta": meta}
    s.history.truncate(state["history_len"])
