"""The hand-written pretraining loop (no Trainer, no accelerate).

:func:`train` builds a :class:`Run` (see :mod:`zhbert.training.state`) and then alternates
``train_step`` (gradient accumulation, clipping, AdamW with the lr computed from the config at
every step, autocast, DDP ``no_sync``)
with log points, held-out evaluations and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path

import torch

from zhbert import history_schema as H
from zhbert.config import TrainConfig
from zhbert.errors import UserError
from zhbert.training import distributed as D
from zhbert.training import setup as S
from zhbert.training.checkpoint import rotate, save_checkpoint
from zhbert.training.evaluate import evaluate
from zhbert.training.monitor import Monitor
from zhbert.training.schedule import scheduled_lr, set_lr
from zhbert.training.state import (
    Run,
    build_run,
    checkpoint_state,
    make_progress,
    reduced_interval,
    weights_finite,
)


def _micro_step(run: Run, micro: int) -> None:
    """Forward + backward of one micro-batch; metrics accumulate on the device (no sync)."""
    t = time.perf_counter()
    batch = next(run.stream)
    run.timing["data_wait"] += time.perf_counter() - t
    b = batch.to(run.device)
    accum = run.cfg.optim.grad_accum
    last = micro == accum - 1
    sync = run.ddp.no_sync() if (run.dist.enabled and not last) else contextlib.nullcontext()
    with sync:
        with run.autocast() if run.autocast else contextlib.nullcontext():
            out = run.fwd(b.input_ids, attention_mask=None if run.packed else b.attention_mask,
                          token_type_ids=b.token_type_ids, mlm_labels=b.mlm_labels,
                          nsp_labels=b.nsp_labels, layout=b.layout)
        loss = out.loss / accum
        (run.scaler.scale(loss) if run.scaler else loss).backward()
    acc = run.acc
    acc["mlm_correct"] += out.mlm_correct
    acc["mlm_count"] += out.mlm_count
    acc["loss_sum"] += out.loss.detach().double()
    acc["n_micro"] += 1
    acc["tokens"] += batch.n_tokens
    if out.nsp_correct is not None:
        acc["nsp_correct"] += out.nsp_correct
        acc["nsp_count"] += out.nsp_count


def train_step(run: Run) -> None:
    """One optimizer step over ``grad_accum`` micro-batches.

    A step whose gradient norm is not finite is skipped (no update, counted, logged); after
    ``optim.max_skipped_steps`` consecutive ones the run stops with an error. Checking the norm
    is the step's one host-device synchronisation (GradScaler makes the same one for fp16).
    """
    for micro in range(run.cfg.optim.grad_accum):
        _micro_step(run, micro)
    opt, clip = run.optimizer, run.cfg.optim.clip_norm
    if run.scaler:
        run.scaler.unscale_(opt)
    norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), clip if clip > 0 else math.inf)
    finite = bool(torch.isfinite(norm))
    run.last_lr = scheduled_lr(run.cfg, run.step)  # from the config every step (resume-safe)
    set_lr(opt, run.last_lr)
    if finite:
        run.scaler.step(opt) if run.scaler else opt.step()
    if run.scaler:
        run.scaler.update()  # lowers the loss scale after a non-finite step
    opt.zero_grad(set_to_none=True)
    run.step += 1
    _count_step(run, norm, finite)
    if run.cfg.run.step_delay_s:
        time.sleep(run.cfg.run.step_delay_s)


def _count_step(run: Run, norm: torch.Tensor, finite: bool) -> None:
    """Interval sums of the gradient norm (finite ones only) and skipped steps; the stop rule.

    Under fp16 a skipped step is normal while GradScaler searches for its scale; it counts
    towards the stop rule only once the scale is at most 1 (the gradient overflows unscaled).
    """
    if finite:
        run.acc["grad_norm_sum"] += norm.detach().double()
        run.acc["n_steps"] += 1
        run.skip_streak = 0
        return
    run.acc["skipped"] += 1
    if run.scaler and run.scaler.get_scale() * 2 > 1.0:  # update() has halved it already
        return
    run.skip_streak += 1
    run.log.info("step %d: gradient norm is %s; update skipped (%d in a row)", run.step,
                 float(norm), run.skip_streak)
    limit = run.cfg.optim.max_skipped_steps
    if run.skip_streak >= limit:
        raise UserError(f"training diverged: the gradient was not finite in {limit} consecutive "
                        f"steps (up to step {run.step}); lower optim.lr or use "
                        "run.precision=fp32; no checkpoint was written after the last good step")


def log_point(run: Run, monitor: Monitor) -> dict:
    """Reduce the interval's sums over ranks, append a history row, reset the interval."""
    vals = reduced_interval(run)
    now = time.perf_counter()
    busy = max(now - run.timing["start"] - run.timing["overhead"], 1e-9)
    n_norms = int(run.acc["n_steps"])  # steps with a finite gradient norm
    run.tokens_seen += int(vals["tokens"])
    row = {H.STEPS: run.step, H.MLM_ACC: vals["mlm_correct"] / max(vals["mlm_count"], 1.0),
           H.LOSS: vals["loss_sum"] / max(vals["n_micro"], 1.0), H.LR: run.last_lr,
           H.TOKENS_SEEN: run.tokens_seen, H.ELAPSED_S: round(run.elapsed(), 3),
           H.TOKENS_PER_S: round(vals["tokens"] / busy, 1),
           H.GRAD_NORM: float(run.acc["grad_norm_sum"]) / n_norms if n_norms else None,
           H.SKIPPED_STEPS: int(run.acc["skipped"]),
           H.DATA_WAIT_FRAC: round(run.timing["data_wait"] / busy, 4)}
    if run.history.nsp:
        row[H.NSP_ACC] = vals["nsp_correct"] / max(vals["nsp_count"], 1.0)
    run.history.add_train(row)
    monitor.on_train(row)
    run.reset_interval()
    return row


def eval_point(run: Run, monitor: Monitor) -> dict:
    """Held-out evaluation, the live forecast, one history row (and its TensorBoard mirror)."""
    t = time.perf_counter()
    res = evaluate(run.eval_model, run.eval_batches, run.device, run.autocast, run.dist,
                   packed=run.packed)
    row = {k: res.get(k, math.nan) for k in run.history.eval_keys
           if k != H.EVAL_STEPS and k not in H.FORECAST_KEYS}
    row[H.EVAL_STEPS] = run.step
    row.update(monitor.forecast(row))
    run.history.add_eval(row)
    monitor.on_eval(row)
    run.timing["overhead"] += time.perf_counter() - t
    return row


def save_point(run: Run) -> None:
    """Checkpoint (rank 0 writes; every rank contributes its RNG state), then rotate.

    Never on a broken model: after a skipped (non-finite) step, or with non-finite weights, the
    save is left out and older checkpoints stay; at the last step that is an error.
    """
    t = time.perf_counter()
    problem = (f"the last {run.skip_streak} step(s) had a non-finite gradient"
               if run.skip_streak else None if weights_finite(run.model) else
               "the weights are not finite")
    if problem:
        if run.step == run.cfg.run.max_steps:
            raise UserError(f"step {run.step}: {problem}; not saving or exporting this model "
                            "(older checkpoints are kept)")
        run.log.info("step %d: checkpoint left out: %s", run.step, problem)
        return
    state = checkpoint_state(run)  # collective: gathers per-rank RNG states
    if run.dist.is_main:
        path = save_checkpoint(run.run_dir, run.step, run.model, run.cfg.to_dict(), state,
                               run.info.path)
        removed = rotate(run.run_dir, run.cfg.run.keep_last, run.cfg.run.milestones)
        run.log.info("step %d: checkpoint %s%s", run.step, path,
                     f" (removed {len(removed)} old)" if removed else "")
    D.barrier(run.dist)
    run.timing["overhead"] += time.perf_counter() - t


def _stop_diverged(run: Run, row: dict) -> None:
    """A non-finite interval loss ends the run with a UserError (non-zero exit).

    The history is saved first (non-finite values as ``null``); no checkpoint holds the
    diverged weights, so ``--resume`` with a lower ``optim.lr`` starts from the last good one.
    """
    if run.dist.is_main:
        run.history.save()
    raise UserError(f"training diverged: the loss is not finite ({row[H.LOSS]}) at step "
                    f"{run.step}; lower optim.lr (now {run.cfg.optim.lr:g}) and --resume from the "
                    "last checkpoint")


def _points(run: Run, monitor: Monitor) -> None:
    """Log / eval / save as due at the current step; the history is rewritten when it changed."""
    r, last = run.cfg.run, run.step == run.cfg.run.max_steps
    changed = False
    if run.step % r.log_interval == 0 or last:
        row = log_point(run, monitor)
        changed = True
        if not math.isfinite(row[H.LOSS]):
            _stop_diverged(run, row)
        run.log.debug("train %s", row)
        post = {"loss": f"{row[H.LOSS]:.3f}", "acc": f"{row[H.MLM_ACC]:.3f}",
                "eval": run.last_eval, "final": monitor.bar_text(),
                "tok_s": f"{row[H.TOKENS_PER_S]:.0f}"}
        run.bar.set_postfix({k: v for k, v in post.items() if v is not None}, refresh=False)
        run.log_line(row)
    if run.step % r.eval_interval == 0 or last:
        ev = eval_point(run, monitor)
        changed = True
        run.last_eval = f"{ev[H.EVAL_MLM_ACC]:.4f}"
        run.log.info("step %d: held-out MLM acc %.4f ± %.4f, loss %.4f%s", run.step,
                     ev[H.EVAL_MLM_ACC], ev[H.EVAL_STDERR], ev[H.EVAL_LOSS], monitor.describe())
    if changed and run.dist.is_main:
        run.history.save()
    if run.step % r.save_interval == 0 or last:
        save_point(run)


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          overwrite: bool = False, echo=print) -> dict:
    """Train (or resume) a run in ``run_dir``; returns a small summary dict.

    Rank 0 holds the run directory's lock for the whole run: a second trainer is refused.
    """
    with S.run_dir_lock(Path(run_dir), enabled=int(os.environ.get("RANK", "0")) == 0):
        return _train(cfg, Path(run_dir), resume=resume, overwrite=overwrite, echo=echo)


def _train(cfg: TrainConfig, run_dir: Path, *, resume: bool, overwrite: bool, echo) -> dict:
    """Build the run, train it to ``run.max_steps`` and export (under the run-dir lock)."""
    run = build_run(cfg, run_dir, resume=resume, overwrite=overwrite, echo=echo)
    monitor = None
    try:
        monitor = Monitor(run)
        run.bar = make_progress(run)
        run.reset_timing()  # the interval's sums may come from a checkpoint; its clock starts now
        while run.step < cfg.run.max_steps:
            train_step(run)
            run.bar.update(1)
            _points(run, monitor)
        run.bar.close()
        run.stream.close()
        summary = run.finish()
    finally:
        if monitor is not None:
            monitor.close()
        run.close()
    return summary
