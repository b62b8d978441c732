"""The hand-written pretraining loop (no Trainer, no accelerate).

:func:`train` builds a :class:`~zhbert.training.setup.Setup` (what is built once) and a
:class:`~zhbert.training.state.Progress` (what changes every step), then alternates
``train_step`` (gradient accumulation, clipping, AdamW with the lr computed from the config at
every step, autocast, DDP ``no_sync``)
with log points, held-out evaluations and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import torch

from zhbert import history_schema as H
from zhbert.config import TrainConfig
from zhbert.errors import UserError
from zhbert.training import distributed as D
from zhbert.training import setup as S
from zhbert.training.build import build
from zhbert.training.checkpoint import rotate, save_checkpoint
from zhbert.training.evaluate import evaluate
from zhbert.training.monitor import Monitor
from zhbert.training.schedule import advance, plan_steps, scheduled_lr, set_lr
from zhbert.training.setup import Setup
from zhbert.training.state import Interval, Progress, checkpoint_state, weights_finite


def _micro_step(s: Setup, p: Progress, micro: int) -> None:
    """Forward + backward of one micro-batch; metrics accumulate on the device (no sync)."""
    t = time.perf_counter()
    batch = next(s.stream)
    p.interval.data_wait += time.perf_counter() - t
    b = batch.to(s.device)
    accum = s.cfg.optim.grad_accum
    last = micro == accum - 1
    sync = s.ddp.no_sync() if (s.dist.enabled and not last) else contextlib.nullcontext()
    with sync:
        with s.autocast() if s.autocast else contextlib.nullcontext():
            out = s.fwd(b.input_ids, attention_mask=None if s.packed else b.attention_mask,
                        token_type_ids=b.token_type_ids, mlm_labels=b.mlm_labels,
                        nsp_labels=b.nsp_labels, layout=b.layout)
        loss = out.loss / accum
        (s.scaler.scale(loss) if s.scaler else loss).backward()
    p.interval.add_micro(out, batch.n_tokens)


def train_step(s: Setup, p: Progress) -> None:
    """One optimizer step over ``grad_accum`` micro-batches.

    A step whose gradient norm is not finite is skipped (no update, counted, logged); after
    ``optim.max_skipped_steps`` consecutive ones the run stops with an error. Checking the norm
    is the step's one host-device synchronisation (GradScaler makes the same one for fp16).
    """
    for micro in range(s.cfg.optim.grad_accum):
        _micro_step(s, p, micro)
    opt, clip = s.optimizer, s.cfg.optim.clip_norm
    if s.scaler:
        s.scaler.unscale_(opt)
    norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), clip if clip > 0 else math.inf)
    finite = bool(torch.isfinite(norm))
    if p.position is not None:  # a time-budget run follows the schedule at the planned rate
        p.position = advance(p.position, p.step, p.planned_steps, s.cfg.run.max_steps)
    p.last_lr = scheduled_lr(s.cfg, p.step, p.position)  # from the config every step
    set_lr(opt, p.last_lr)
    if finite:
        s.scaler.step(opt) if s.scaler else opt.step()
    if s.scaler:
        s.scaler.update()  # lowers the loss scale after a non-finite step
    opt.zero_grad(set_to_none=True)
    p.step += 1
    p.interval.add_step(norm, finite)
    _skip_rule(s, p, norm, finite)


def _skip_rule(s: Setup, p: Progress, norm: torch.Tensor, finite: bool) -> None:
    """Count consecutive non-finite steps and stop the run after ``optim.max_skipped_steps``.

    Under fp16 a skipped step is normal while GradScaler searches for its scale; it counts
    towards the stop rule only once the scale is at most 1 (the gradient overflows unscaled).
    """
    if finite:
        p.skip_streak = 0
        return
    if s.scaler and s.scaler.get_scale() * 2 > 1.0:  # update() has halved it already
        return
    p.skip_streak += 1
    s.log.info("step %d: gradient norm is %s; update skipped (%d in a row)", p.step,
               float(norm), p.skip_streak)
    limit = s.cfg.optim.max_skipped_steps
    if p.skip_streak >= limit:
        raise UserError(f"training diverged: the gradient was not finite in {limit} consecutive "
                        f"steps (up to step {p.step}); lower optim.lr or use "
                        "run.precision=fp32; no checkpoint was written after the last good step")


def log_point(s: Setup, p: Progress, monitor: Monitor) -> dict:
    """Reduce the interval's sums over ranks, append a history row, start a new interval."""
    iv = p.interval
    vals = iv.reduced(s.dist)
    busy = iv.busy_seconds()
    n_norms = int(iv.local("n_steps"))  # steps with a finite gradient norm
    p.tokens_seen += int(vals["tokens"])
    row = {H.STEPS: p.step, H.MLM_ACC: vals["mlm_correct"] / max(vals["mlm_count"], 1.0),
           H.LOSS: vals["loss_sum"] / max(vals["n_micro"], 1.0), H.LR: p.last_lr,
           H.TOKENS_SEEN: p.tokens_seen, H.ELAPSED_S: round(p.elapsed(), 3),
           H.TOKENS_PER_S: round(vals["tokens"] / busy, 1),
           H.GRAD_NORM: iv.local("grad_norm_sum") / n_norms if n_norms else None,
           H.SKIPPED_STEPS: int(iv.local("skipped")),
           H.DATA_WAIT_FRAC: round(iv.data_wait / busy, 4)}
    if s.history.nsp:
        row[H.NSP_ACC] = vals["nsp_correct"] / max(vals["nsp_count"], 1.0)
    s.history.add_train(row)
    monitor.on_train(row)
    p.interval = Interval(s.device)
    return row


def _log_line(s: Setup, row: dict) -> None:
    """One train log line (console above the bar, and RUN/train.log)."""
    nsp = f" nsp {row[H.NSP_ACC]:.3f}" if H.NSP_ACC in row else ""
    grad = "-" if row[H.GRAD_NORM] is None else f"{row[H.GRAD_NORM]:.3f}"
    skipped = f" skipped {row[H.SKIPPED_STEPS]}" if row[H.SKIPPED_STEPS] else ""
    s.log.info("step %d: loss %.4f mlm_acc %.4f%s lr %.3g grad %s%s tok/s %.0f "
               "data_wait %.1f%%", row[H.STEPS], row[H.LOSS], row[H.MLM_ACC], nsp, row[H.LR],
               grad, skipped, row[H.TOKENS_PER_S], 100 * row[H.DATA_WAIT_FRAC])


def eval_point(s: Setup, p: Progress, monitor: Monitor) -> dict:
    """Held-out evaluation, the live forecast, one history row (and its TensorBoard mirror)."""
    t = time.perf_counter()
    res = evaluate(s.model, s.eval_set, s.device, s.autocast, s.dist, packed=s.packed)
    row = {k: res.get(k, math.nan) for k in s.history.eval_keys
           if k != H.EVAL_STEPS and k not in H.FORECAST_KEYS}
    row[H.EVAL_STEPS] = p.step
    row.update(monitor.forecast(row))
    s.history.add_eval(row)
    monitor.on_eval(row)
    p.interval.overhead += time.perf_counter() - t
    return row


def save_point(s: Setup, p: Progress) -> None:
    """Checkpoint (rank 0 writes; every rank contributes its RNG state), then rotate.

    Never on a broken model: after a skipped (non-finite) step, or with non-finite weights, the
    save is left out and older checkpoints stay; at the last step that is an error.
    """
    t = time.perf_counter()
    problem = (f"the last {p.skip_streak} step(s) had a non-finite gradient"
               if p.skip_streak else None if weights_finite(s.model) else
               "the weights are not finite")
    if problem:
        if p.step == p.planned_steps:
            raise UserError(f"step {p.step}: {problem}; not saving or exporting this model "
                            "(older checkpoints are kept)")
        s.log.info("step %d: checkpoint left out: %s", p.step, problem)
        return
    state = checkpoint_state(s, p)  # collective: gathers per-rank RNG states
    if s.dist.is_main:
        path = save_checkpoint(s.run_dir, p.step, s.model, s.cfg.to_dict(), state, s.info.path)
        removed = rotate(s.run_dir, s.cfg.run.keep_last, s.cfg.run.milestones)
        s.log.info("step %d: checkpoint %s%s", p.step, path,
                   f" (removed {len(removed)} old)" if removed else "")
    D.barrier(s.dist)
    p.interval.overhead += time.perf_counter() - t


def _stop_diverged(s: Setup, p: Progress, row: dict) -> None:
    """A non-finite interval loss ends the run with a UserError (non-zero exit).

    The history is saved first (non-finite values as ``null``); no checkpoint holds the
    diverged weights, so ``--resume`` with a lower ``optim.lr`` starts from the last good one.
    """
    if s.dist.is_main:
        s.history.save()
    raise UserError(f"training diverged: the loss is not finite ({row[H.LOSS]}) at step "
                    f"{p.step}; lower optim.lr (now {s.cfg.optim.lr:g}) and --resume from the "
                    "last checkpoint")


def replan(s: Setup, p: Progress) -> None:
    """Plan a time-budget run's length (``run.time_budget_s``) from its pace so far.

    Called before the first step, then at steps 2, 4, 8, ... and at every log point until the
    plan is reached (a reached plan is final); the pace is measured from the end of the
    session's first step (start-up excluded). Rank 0 decides for every rank. The run keeps a
    schedule position (:func:`~zhbert.training.schedule.advance`) that only moves forward, so a
    new plan changes how fast the lr follows the schedule, never sends it back up.
    ``meta.time_budget`` records the budget, the plan and the ``(step, position)`` knots at
    which the plan changed, from which the analysis rebuilds the lr of every step. A run that
    once had a budget keeps this mode; without a budget its plan is ``run.max_steps``.
    """
    budget, max_steps = s.cfg.run.time_budget_s, s.cfg.run.max_steps
    meta = s.history.data[H.META_KEY]
    if p.position is None:
        if not budget:
            return
        p.position = float(p.step)  # the run so far followed the plain schedule
        meta[H.META_TIME_BUDGET] = {"budget_s": budget, "planned_steps": max_steps,
                                    "max_steps": max_steps,
                                    "knots": [[0, 0.0]] + ([[p.step, p.position]] if p.step else [])}
    if p.step >= p.planned_steps:
        return
    if p.position >= max_steps:  # the schedule has ended (run.max_steps lowered on resume)
        planned = p.step
        s.log.info("step %d: the time-budget schedule is at its end (run.max_steps=%d): "
                   "nothing more to train", p.step, max_steps)
    elif budget:
        planned = plan_steps(p.step, p.elapsed(), budget, max_steps, p.pace_mark)
    else:
        planned = max_steps
    p.planned_steps = int(D.broadcast_object(planned, s.dist))
    block = meta[H.META_TIME_BUDGET]
    if (p.planned_steps, max_steps) != (block["planned_steps"], block["max_steps"]):
        block["knots"].append([p.step, p.position])  # the line to the old end stops here
    block.update(budget_s=budget, planned_steps=p.planned_steps, max_steps=max_steps)


def _points(s: Setup, p: Progress, monitor: Monitor, bar) -> None:
    """Log / eval / save as due at the current step; the history is rewritten when it changed.

    A time budget may end the run at a log point (:func:`replan`): that step is then the last.
    """
    r = s.cfg.run
    changed = False
    measured = p.pace_mark is not None and p.step > p.pace_mark[0]  # a step after the first
    if p.position is not None and measured and (p.step % r.log_interval == 0
                                                or p.step & (p.step - 1) == 0):
        replan(s, p)
        bar.total = p.planned_steps
    if p.step % r.log_interval == 0 or p.step == p.planned_steps:
        row = log_point(s, p, monitor)
        changed = True
        if not math.isfinite(row[H.LOSS]):
            _stop_diverged(s, p, row)
        s.log.debug("train %s", row)
        post = {"loss": f"{row[H.LOSS]:.3f}", "acc": f"{row[H.MLM_ACC]:.3f}",
                "eval": p.last_eval, "final": monitor.bar_text(),
                "tok_s": f"{row[H.TOKENS_PER_S]:.0f}"}
        bar.set_postfix({k: v for k, v in post.items() if v is not None}, refresh=False)
        _log_line(s, row)
    last = p.step == p.planned_steps
    milestone = p.step in r.milestones  # saved and evaluated, so each has its held-out point
    if p.step % r.eval_interval == 0 or last or milestone:
        ev = eval_point(s, p, monitor)
        changed = True
        p.last_eval = f"{ev[H.EVAL_MLM_ACC]:.4f}"
        s.log.info("step %d: held-out MLM acc %.4f ± %.4f, loss %.4f%s", p.step,
                   ev[H.EVAL_MLM_ACC], ev[H.EVAL_STDERR], ev[H.EVAL_LOSS], monitor.describe())
    if changed and s.dist.is_main:
        s.history.save()
    if p.step % r.save_interval == 0 or last or milestone:
        save_point(s, p)


def _progress_bar(s: Setup, p: Progress):
    """tqdm bar on rank 0 (disabled elsewhere or with run.progress=false)."""
    from tqdm import tqdm

    return tqdm(total=p.planned_steps, initial=p.step, unit="step", dynamic_ncols=True,
                disable=not (s.dist.is_main and s.cfg.run.progress), file=sys.stderr)


def _finish(s: Setup, p: Progress) -> dict:
    """Export RUN/final/ (transformers format) on rank 0; return a summary."""
    final = None
    if s.dist.is_main and s.cfg.run.export_final:
        from zhbert.export import export_hf

        final = export_hf(s.model, s.info.path, s.run_dir / "final")
        s.log.info("exported %s", final)
    D.barrier(s.dist)
    acc = s.history.data[H.EVAL_MLM_ACC]
    return {"run_dir": str(s.run_dir), "steps": p.step, "final": str(final),
            H.EVAL_MLM_ACC: acc[-1] if acc else None, "elapsed_s": round(p.elapsed(), 1)}


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          overwrite: bool = False, echo=print) -> dict:
    """Train (or resume) a run in ``run_dir``; returns a small summary dict.

    Rank 0 holds the run directory's lock for the whole run: a second trainer is refused.
    """
    with S.run_dir_lock(Path(run_dir), enabled=int(os.environ.get("RANK", "0")) == 0):
        return _train(cfg, Path(run_dir), resume=resume, overwrite=overwrite, echo=echo)


def _train(cfg: TrainConfig, run_dir: Path, *, resume: bool, overwrite: bool, echo) -> dict:
    """Build the run, train it to ``run.max_steps`` and export (under the run-dir lock)."""
    s, p = build(cfg, run_dir, resume=resume, overwrite=overwrite, echo=echo)
    monitor = bar = None
    try:
        monitor = Monitor(s, p)
        bar = _progress_bar(s, p)
        p.interval.restart_clock()  # the sums may come from a checkpoint; the clock starts now
        replan(s, p)  # a resumed time-budget run continues from its pace so far
        bar.total = p.planned_steps
        while p.step < p.planned_steps:
            train_step(s, p)
            if p.pace_mark is None:  # the budget's pace is measured after the first step
                p.pace_mark = (p.step, p.elapsed())
            bar.update(1)
            _points(s, p, monitor, bar)
        bar.close()
        s.stream.close()
        return _finish(s, p)
    finally:
        if monitor is not None:
            monitor.close()
        if bar is not None:
            bar.close()
        s.close()
