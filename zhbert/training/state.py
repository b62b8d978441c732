"""The :class:`Run` object the loop works on, and how it is built fresh or from a checkpoint."""

from __future__ import annotations

import datetime as dt
import functools
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zhbert.baselines import BASELINES_KEY, corpus_baselines
from zhbert.config import TrainConfig
from zhbert.corpus.binary import CorpusInfo, load_split
from zhbert.data import (
    STREAM_DROPOUT,
    STREAM_DROPOUT_RESHARDED,
    BatchBuilder,
    BatchStream,
    build_eval_set,
    eval_cap_warning,
    eval_set_record,
    prepare_batch,
    stream_seed,
)
from zhbert.errors import UserError
from zhbert.history_schema import EVAL_MLM_ACC, HISTORY_NAME
from zhbert.layout import IGNORE_INDEX
from zhbert.model import build_model
from zhbert.provenance import git_state
from zhbert.training import distributed as D
from zhbert.training import setup as S
from zhbert.training.checkpoint import (
    clean_partial,
    latest_checkpoint,
    load_state,
    load_weights,
    rng_state,
    set_rng_state,
)
from zhbert.training.history import HistoryWriter
from zhbert.training.optim import load_optimizer_state, make_optimizer

# Interval sums: REDUCED_KEYS differ per rank and are summed over ranks at a log point; the
# others are the same on every rank (gradient norm after the all-reduce, skipped steps).
REDUCED_KEYS = ("mlm_correct", "mlm_count", "loss_sum", "n_micro", "tokens", "nsp_correct",
                "nsp_count")
ACC_KEYS = REDUCED_KEYS + ("grad_norm_sum", "n_steps", "skipped")


@dataclass
class Run:
    """Everything one training process holds; the loop functions mutate it."""

    cfg: TrainConfig
    run_dir: Path
    dist: D.DistInfo
    device: torch.device
    log: Any
    info: CorpusInfo
    model: torch.nn.Module  # the plain module: checkpoints and eval use it
    ddp: torch.nn.Module  # DDP wrapper (or the model itself)
    fwd: Callable  # what the step calls (compiled or not)
    optimizer: torch.optim.Optimizer
    scaler: Any
    autocast: Callable | None
    precision: str
    stream: BatchStream
    eval_batches: list
    history: HistoryWriter
    packed: bool
    step: int = 0
    tokens_seen: int = 0
    elapsed_before: float = 0.0
    last_lr: float = 0.0
    last_eval: str = "-"
    skip_streak: int = 0  # consecutive steps skipped for a non-finite gradient
    acc: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    bar: Any = None

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.model

    def elapsed(self) -> float:
        """Wall seconds of training so far, including earlier (resumed) sessions."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def reset_interval(self, values: dict[str, float] | None = None) -> None:
        self.acc = {k: torch.tensor(float((values or {}).get(k, 0.0)), dtype=torch.float64,
                                    device=self.device) for k in ACC_KEYS}
        self.reset_timing()

    def reset_timing(self) -> None:
        self.timing = {"start": time.perf_counter(), "overhead": 0.0, "data_wait": 0.0}

    def log_line(self, row: dict) -> None:
        """One train log line (console above the bar, and RUN/train.log)."""
        nsp = f" nsp {row['nsp_acc']:.3f}" if "nsp_acc" in row else ""
        grad = "-" if row["grad_norm"] is None else f"{row['grad_norm']:.3f}"
        skipped = f" skipped {row['skipped_steps']}" if row["skipped_steps"] else ""
        self.log.info("step %d: loss %.4f mlm_acc %.4f%s lr %.3g grad %s%s tok/s %.0f "
                      "data_wait %.1f%%", row["steps"], row["loss"], row["mlm_acc"], nsp,
                      row["lr"], grad, skipped, row["tokens_per_s"],
                      100 * row["data_wait_frac"])

    def finish(self) -> dict:
        """Export RUN/final/ (transformers format) on rank 0; return a summary."""
        final = None
        if self.dist.is_main and self.cfg.run.export_final:
            from zhbert.export import export_hf

            final = export_hf(self.model, self.info.path, self.run_dir / "final")
            self.log.info("exported %s", final)
        D.barrier(self.dist)
        h = self.history.data
        return {"run_dir": str(self.run_dir), "steps": self.step, "final": str(final),
                EVAL_MLM_ACC: h[EVAL_MLM_ACC][-1] if h[EVAL_MLM_ACC] else None,
                "elapsed_s": round(self.elapsed(), 1)}

    def close(self) -> None:
        self.stream.close()
        if self.bar is not None:
            self.bar.close()
        S.close_logger(self.log)
        D.cleanup()


def make_progress(run: Run):
    """tqdm bar on rank 0 (disabled elsewhere or with run.progress=false)."""
    from tqdm import tqdm

    return tqdm(total=run.cfg.run.max_steps, initial=run.step, unit="step", dynamic_ncols=True,
                disable=not (run.dist.is_main and run.cfg.run.progress), file=sys.stderr)


def reduced_interval(run: Run) -> dict[str, float]:
    """The interval's REDUCED_KEYS summed over ranks (collective under DDP)."""
    values = D.all_reduce_sum([float(run.acc[k]) for k in REDUCED_KEYS], run.device, run.dist)
    return dict(zip(REDUCED_KEYS, values, strict=True))


def weights_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite (one host-device synchronisation)."""
    return bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all())


def checkpoint_state(run: Run) -> dict[str, Any]:
    """The ``state.pt`` content (collective under DDP: RNG states are gathered, the interval's
    sums reduced over ranks; a resume restores them on rank 0 only)."""
    rngs = D.all_gather_objects(rng_state(), run.dist)
    interval = {k: float(v) for k, v in run.acc.items()}
    interval.update(reduced_interval(run))
    return {
        "step": run.step,
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler else {},
        "rng": rngs,
        "sampler": run.stream.state_dict(),
        "history_len": run.history.lengths,
        "history_json": json.dumps(run.history.data, ensure_ascii=False),
        "interval": interval,
        "tokens_seen": run.tokens_seen,
        "elapsed_s": run.elapsed(),
        "last_lr": run.last_lr,
        "world_size": run.dist.world_size,
    }


def _meta(cfg: TrainConfig, info: CorpusInfo, model, dist: D.DistInfo, device, precision,
          n_eval: int, eval_masked: int) -> dict[str, Any]:
    git = git_state()
    return {
        "config": cfg.to_dict(),
        "preset": cfg.preset,
        "parameters": model.num_parameters(),
        "dataset": {"path": str(info.path), "fingerprint": info.fingerprint, "stats": info.stats},
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": precision,
        "world_size": dist.world_size,
        "global_batch": cfg.data.batch_size * dist.world_size * cfg.optim.grad_accum,
        "tokens_per_sequence": cfg.data.seq_len,
        "seed": cfg.run.seed,
        "start_time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git.commit,
        "git_dirty": git.dirty,
        "eval": eval_set_record(cfg.data, n_eval, eval_masked),
        "resumed": [],
    }


def _find_resume(run_dir: Path, resume: bool, dist: D.DistInfo, log) -> Path | None:
    """The newest checkpoint that reads (rank 0 looks, every rank gets the path)."""
    ckpt = None
    if dist.is_main and resume:
        clean_partial(run_dir)
        skipped = []
        ckpt = latest_checkpoint(run_dir, on_skip=lambda p, why: skipped.append(f"{p.name}: {why}"))
        if ckpt is None and skipped:
            raise UserError(f"no usable checkpoint in {run_dir} ({'; '.join(skipped)}); "
                            "remove the damaged ones or start again with --overwrite")
        for line in skipped:
            log.warning("warning: skipping damaged checkpoint %s", line)
    found = D.broadcast_object(None if ckpt is None else str(ckpt), dist)
    return None if found is None else Path(found)


def batch_preparer(cfg: TrainConfig, device: torch.device) -> Callable:
    """What the prefetch thread does to each batch: trim, lay out, pin (``prepare_batch``).

    On a GPU or under ``torch.compile`` the trimmed length is rounded up to a multiple of 8
    (aligned attention kernels, few distinct shapes); on the eager CPU path exact trimming is
    faster.
    """
    aligned = device.type == "cuda" or cfg.run.compile
    return functools.partial(prepare_batch, with_cls=cfg.model.use_nsp,
                             packed=cfg.data.format == "packed", multiple=8 if aligned else 1,
                             pin=device.type == "cuda")


def build_run(cfg: TrainConfig, run_dir: Path, *, resume: bool, overwrite: bool,
              echo=print) -> Run:
    """Set up device, corpus, model, optimizer, data and history; restore a checkpoint."""
    device_kind = "cuda" if cfg.run.device == "cuda" or (
        cfg.run.device == "auto" and torch.cuda.is_available()) else "cpu"
    dist = D.setup(device_kind)
    device = S.resolve_device(cfg, dist.local_rank)
    if dist.is_main:
        S.prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    D.barrier(dist)
    log = S.make_logger(run_dir, dist.is_main)
    info = S.load_corpus(cfg, allow_prepare=dist.is_main, log=log,
                         barrier=lambda: D.barrier(dist))
    cfg.model.vocab_size, cfg.model.pad_token_id = info.vocab_size, info.pad_id
    ckpt = _find_resume(run_dir, resume, dist, log)
    if resume and ckpt is None:
        log.info("--resume: no complete checkpoint in %s, starting from step 0", run_dir)
    changes = []
    if ckpt is not None:
        saved = json.loads((ckpt / "config.json").read_text(encoding="utf-8"))
        changes = S.check_compatible(saved, cfg, ckpt)
        for change in changes:
            log.info("config changed since the checkpoint (applied from now on): %s", change)
    if dist.is_main:
        echo("resolved config:\n" + cfg.to_json())
    S.configure_backends(cfg, device)
    precision = S.resolve_precision(cfg, device)
    torch.manual_seed(cfg.run.seed)  # identical initialisation on every rank
    model = build_model(cfg.model).to(device)
    optimizer = make_optimizer(model, cfg.optim, device)
    train_split = load_split(info.path, "train")
    builder = BatchBuilder(train_split, info, cfg.data, seed=cfg.run.seed, rank=dist.rank,
                           world_size=dist.world_size)
    raw_eval = build_eval_set(load_split(info.path, "val"), info, cfg.data)
    prepare = batch_preparer(cfg, device)
    eval_batches = [prepare(b) for b in raw_eval]
    n_masked = sum(int((b.mlm_labels != IGNORE_INDEX).sum()) for b in eval_batches)
    n_eval = sum(len(b.input_ids) for b in eval_batches)
    if dist.is_main and n_masked < cfg.data.eval_min_masked:
        log.warning("warning: %s", eval_cap_warning(cfg.data, n_eval, n_masked))
    history = HistoryWriter(run_dir / HISTORY_NAME, nsp=cfg.model.use_nsp,
                      meta=_meta(cfg, info, model, dist, device, precision, n_eval, n_masked))
    if dist.is_main:  # counted once, on the held-out set just built (well under a second)
        block = corpus_baselines(train_split, info, raw_eval, cfg.data.format)
        history.data["meta"][BASELINES_KEY] = block
        log.info("count-table baselines on the held-out set: %s", ", ".join(
            f"{k} {100 * v:.2f}%" for k, v in block["acc"].items()))
    run = Run(cfg=cfg, run_dir=run_dir, dist=dist, device=device, log=log, info=info,
              model=model, ddp=model, fwd=model, optimizer=optimizer,
              scaler=S.make_scaler(precision, device), autocast=S.autocast_factory(precision,
                                                                                   device),
              precision=precision, stream=BatchStream(builder, cfg.data.prefetch, prepare=prepare),
              eval_batches=eval_batches, history=history, packed=cfg.data.format == "packed")
    run.reset_interval()
    if ckpt is not None:
        _restore(run, ckpt, changes)
    else:
        # dropout differs per rank
        torch.manual_seed(stream_seed(cfg.run.seed, STREAM_DROPOUT, dist.rank))
    _wrap(run)
    log.info("parameters: %d | device %s | precision %s | world %d | global batch %d | "
             "held-out %d sequences, %d masked tokens", model.num_parameters(), device,
             precision, dist.world_size, history.data["meta"]["global_batch"], n_eval, n_masked)
    return run


def _restore(run: Run, ckpt: Path, changes: list[str]) -> None:
    """Load weights and training state from ``ckpt``; the current config's settings apply.

    The optimizer keeps its configured hyper-parameters (only moments and step counts are
    restored) and the lr is recomputed from the config at every step, so ``changes`` (the
    config keys that differ from the checkpoint's) all take effect; they are recorded in
    ``meta.resumed`` and ``meta.config`` becomes the current config.
    """
    load_weights(run.model, ckpt)
    state = load_state(ckpt)
    try:
        load_optimizer_state(run.optimizer, state["optimizer"])
        if run.scaler and state["scaler"]:
            run.scaler.load_state_dict(state["scaler"])
    except (KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"checkpoint {ckpt} does not fit this config: {exc}") from None
    run.stream.load_state_dict(state["sampler"])
    saved = json.loads(state["history_json"])
    fresh = run.history.data["meta"]
    meta = saved.get("meta", fresh)
    if BASELINES_KEY in fresh:  # a run started before the baselines existed gets them now
        meta.setdefault(BASELINES_KEY, fresh[BASELINES_KEY])
    meta["config"] = run.cfg.to_dict()
    meta.setdefault("resumed", []).append(
        {"step": int(state["step"]), "time": dt.datetime.now(dt.timezone.utc).isoformat(
            timespec="seconds"), "world_size": run.dist.world_size, "config_changes": changes})
    run.history.data = {**saved, "meta": meta}
    run.history.truncate(state["history_len"])
    run.step, run.tokens_seen = int(state["step"]), int(state["tokens_seen"])
    run.elapsed_before, run.last_lr = float(state["elapsed_s"]), float(state["last_lr"])
    interval = dict(state["interval"])
    if not run.dist.is_main:  # rank 0 holds the whole world's sums; the log point adds them up
        interval.update(dict.fromkeys(REDUCED_KEYS, 0.0))
    run.reset_interval(interval)
    rngs = state["rng"]
    if len(rngs) == run.dist.world_size:
        set_rng_state(rngs[run.dist.rank])
    else:
        run.log.info("note: world size changed (%d -> %d); data order and dropout differ from "
                     "an uninterrupted run", len(rngs), run.dist.world_size)
        torch.manual_seed(stream_seed(run.cfg.run.seed, STREAM_DROPOUT_RESHARDED, run.dist.rank,
                                      run.step))
    run.log.info("resumed from %s at step %d", ckpt, run.step)


def _wrap(run: Run) -> None:
    """DDP (gradient all-reduce) and optional torch.compile; ``run.model`` stays plain."""
    if run.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [run.device.index] if run.device.type == "cuda" else None
        run.ddp = DDP(run.model, device_ids=ids)
    run.fwd = run.ddp
    if run.cfg.run.compile:
        run.fwd = torch.compile(run.ddp)
