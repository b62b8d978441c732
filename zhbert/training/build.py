"""What a training process builds once: device, corpus, model, optimizer, data, history.

:func:`build` returns a :class:`zhbert.training.setup.Setup` (fixed for the whole session) and
the loop's :class:`zhbert.training.state.Progress`, restored from the newest readable checkpoint
on ``--resume``.
"""

from __future__ import annotations

import datetime as dt
import functools
import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from zhbert.baselines import BASELINES_KEY, corpus_baselines
from zhbert.config import TrainConfig
from zhbert.corpus.binary import CorpusInfo, load_split
from zhbert.data import (
    STREAM_DROPOUT,
    BatchBuilder,
    BatchStream,
    EvalSet,
    build_eval_set,
    prepare_batch,
    stream_seed,
)
from zhbert.errors import UserError
from zhbert.history_schema import HISTORY_NAME
from zhbert.io_utils import read_json
from zhbert.models import build_model
from zhbert.provenance import git_state
from zhbert.training import distributed as D
from zhbert.training import setup as S
from zhbert.training.checkpoint import clean_partial, latest_checkpoint
from zhbert.training.history import HistoryWriter
from zhbert.training.optim import make_optimizer
from zhbert.training.precision import PrecisionChoice
from zhbert.training.setup import Setup
from zhbert.training.state import Interval, Progress, restore


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


def _meta(cfg: TrainConfig, info: CorpusInfo, model, dist: D.DistInfo, device, precision: PrecisionChoice,
          eval_set: EvalSet) -> dict[str, Any]:
    git = git_state()
    return {
        "config": cfg.to_dict(),
        "preset": cfg.preset,
        "parameters": model.num_parameters(),
        "dataset": {"path": str(info.path), "fingerprint": info.fingerprint, "stats": info.stats},
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "precision": precision.precision,
        "precision_choice": precision.record(),
        "world_size": dist.world_size,
        "process_group": dist.backend,
        "global_batch": cfg.data.batch_size * dist.world_size * cfg.optim.grad_accum,
        "tokens_per_sequence": cfg.data.seq_len,
        "seed": cfg.run.seed,
        "start_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git.commit,
        "git_dirty": git.dirty,
        "eval": eval_set.record(cfg.data),
        "resumed": [],
    }


def _find_resume(run_dir: Path, resume: bool, dist: D.DistInfo, log) -> Path | None:
    """The newest checkpoint that reads (rank 0 looks, every rank gets the path); None when
    the run directory holds no run yet. A history without a checkpoint is refused."""
    ckpt = None
    if dist.is_main and resume:
        clean_partial(run_dir)
        skipped = []
        ckpt = latest_checkpoint(run_dir, on_skip=lambda p, why: skipped.append(f"{p.name}: {why}"))
        if ckpt is None and skipped:
            raise UserError(f"no usable checkpoint in {run_dir} ({'; '.join(skipped)}); "
                            "remove the damaged ones or start again with --overwrite")
        if ckpt is None and (run_dir / HISTORY_NAME).exists():
            raise UserError(f"--resume: {run_dir} has a {HISTORY_NAME} but no checkpoint to "
                            "resume from; start again with --overwrite (it replaces the history)")
        for line in skipped:
            log.warning("warning: skipping damaged checkpoint %s", line)
    found = D.broadcast_object(None if ckpt is None else str(ckpt), dist)
    return None if found is None else Path(found)


def _wrap(model: torch.nn.Module, cfg: TrainConfig, dist: D.DistInfo,
          device: torch.device) -> tuple[torch.nn.Module, Callable]:
    """DDP (gradient all-reduce) and optional torch.compile; ``model`` stays plain."""
    ddp = model
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    return ddp, (torch.compile(ddp) if cfg.run.compile else ddp)


def _held_out(cfg: TrainConfig, info: CorpusInfo, train_split, prepare, dist, log) -> tuple:
    """The fixed held-out set (prepared like training batches) and the count-table baselines
    on it (rank 0 only; well under a second)."""
    raw = build_eval_set(load_split(info.path, "val"), info, cfg.data)
    if dist.is_main and raw.capped:
        log.warning("warning: %s", raw.cap_warning(cfg.data))
    baselines = None
    if dist.is_main:
        baselines = corpus_baselines(train_split, info, raw, cfg.data.format)
        log.info("count-table baselines on the held-out set: %s", ", ".join(
            f"{k} {100 * v:.2f}%" for k, v in baselines["acc"].items()))
    return raw.mapped(prepare), baselines


def build(cfg: TrainConfig, run_dir: Path, *, resume: bool, overwrite: bool,
          echo=print) -> tuple[Setup, Progress]:
    """Set up device, corpus, model, optimizer, data and history; restore a checkpoint."""
    kind = S.device_kind(cfg)
    dist = D.setup(kind)
    device = torch.device(kind, dist.local_rank) if kind == "cuda" else torch.device("cpu")
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
        saved = read_json(ckpt / "config.json", "a checkpoint config", obj=True)
        changes = S.check_compatible(saved, cfg, ckpt)
        for change in changes:
            log.info("config changed since the checkpoint (applied from now on): %s", change)
    if dist.is_main:
        echo("resolved config:\n" + cfg.to_json())
    S.configure_backends(cfg, device)
    # rank 0 probes and decides for every rank
    choice = D.broadcast_object(S.resolve_precision(cfg, device) if dist.is_main else None, dist)
    precision = choice.precision
    log.info("precision %s: %s", precision, choice.reason)
    if choice.warning and dist.is_main:
        log.warning("%s", choice.warning)
    torch.manual_seed(cfg.run.seed)  # identical initialisation on every rank
    model = build_model(cfg.model).to(device)
    optimizer = make_optimizer(model, cfg.optim, device)
    train_split = load_split(info.path, "train")
    builder = BatchBuilder(train_split, info, cfg.data, seed=cfg.run.seed, rank=dist.rank,
                           world_size=dist.world_size)
    prepare = batch_preparer(cfg, device)
    eval_set, baselines = _held_out(cfg, info, train_split, prepare, dist, log)
    history = HistoryWriter(run_dir / HISTORY_NAME, nsp=cfg.model.use_nsp,
                            meta=_meta(cfg, info, model, dist, device, choice, eval_set))
    if baselines is not None:
        history.data["meta"][BASELINES_KEY] = baselines
    s = Setup(cfg=cfg, run_dir=run_dir, dist=dist, device=device, log=log, info=info,
              model=model, ddp=model, fwd=model, optimizer=optimizer,
              scaler=S.make_scaler(precision, device),
              autocast=S.autocast_factory(precision, device), precision=precision,
              stream=BatchStream(builder, cfg.data.prefetch, prepare=prepare),
              eval_set=eval_set, history=history)
    p = Progress(interval=Interval(device), planned_steps=cfg.run.max_steps)
    if ckpt is not None:
        restore(s, p, ckpt, changes)
    else:  # dropout differs per rank
        torch.manual_seed(stream_seed(cfg.run.seed, STREAM_DROPOUT, dist.rank))
    ddp, fwd = _wrap(model, cfg, dist, device)  # after the restore, as DDP broadcasts weights
    s = replace(s, ddp=ddp, fwd=fwd)
    log.info("parameters: %d | device %s | precision %s | world %d | global batch %d | "
             "held-out %d sequences, %d masked tokens", model.num_parameters(), device,
             precision, dist.world_size, history.data["meta"]["global_batch"],
             eval_set.n_sequences, eval_set.n_masked)
    return s, p
