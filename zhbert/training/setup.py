"""Everything the loop needs before step 1: device, precision, corpus, run directory, logging,
and :class:`Setup`, which holds what a training process builds once
(:func:`zhbert.training.build.build` fills it; :mod:`zhbert.training.state` and the loop read it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import logging
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from zhbert.config import TrainConfig, config_changes
from zhbert.errors import UserError
from zhbert.history_schema import HISTORY_NAME
from zhbert.io_utils import require_file
from zhbert.model_config import BertConfig
from zhbert.training import distributed as D
from zhbert.training.monitor import TB_DIR
from zhbert.training.precision import PrecisionChoice, choose_precision

if TYPE_CHECKING:
    from zhbert.corpus.binary import CorpusInfo
    from zhbert.data import BatchStream, EvalSet
    from zhbert.training.history import HistoryWriter

LOG_NAME = "train.log"
# BertConfig keys a resume may change: regularisation, and initialisation (which the restored
# weights replace). Every other model key shapes the weights or changes what they compute.
RESUMABLE_MODEL_KEYS = ("dropout", "attention_dropout", "initializer_range", "position_init")


@dataclass(frozen=True)
class Setup:
    """Everything one training process builds once and does not replace while training."""

    cfg: TrainConfig
    run_dir: Path
    dist: D.DistInfo
    device: torch.device
    log: logging.Logger  # console on rank 0, RUN/train.log
    info: CorpusInfo
    model: torch.nn.Module  # the plain module: checkpoints and eval use it
    ddp: torch.nn.Module  # DDP wrapper (or the model itself)
    fwd: Callable  # what the step calls (compiled or not)
    optimizer: torch.optim.Optimizer
    scaler: Any  # torch.amp.GradScaler for fp16, else None
    autocast: Callable | None
    precision: str
    stream: BatchStream
    eval_set: EvalSet
    history: HistoryWriter

    @property
    def packed(self) -> bool:
        """Packed batches have no padding: the model gets no attention mask."""
        return self.cfg.data.format == "packed"

    def close(self) -> None:
        self.stream.close()
        close_logger(self.log)
        D.cleanup()


def device_kind(cfg: TrainConfig) -> str:
    """``run.device`` resolved to ``"cuda"`` or ``"cpu"`` (auto picks CUDA when available)."""
    kind = cfg.run.device
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError("run.device=cuda but no CUDA device is available")
    return kind


def resolve_precision(cfg: TrainConfig, device: torch.device) -> PrecisionChoice:
    """``run.precision`` on ``device`` (:func:`zhbert.training.precision.choose_precision`):
    ``auto`` is bf16 on Ampere+ GPUs, fp16 (+ GradScaler) on older ones, and on a CPU bf16 only
    where it is native and measured faster than fp32 at the model's shapes, else fp32.

    An explicit ``fp16`` also runs on the CPU (autocast + ``GradScaler("cpu")``): slower than
    fp32 there, but it exercises the older GPUs' path without one.
    """
    tokens = cfg.data.batch_size * cfg.data.seq_len
    return choose_precision(cfg.run.precision, device, cfg.model, tokens)


def autocast_factory(precision: str, device: torch.device) -> Callable | None:
    """A zero-argument factory of the autocast context (None for fp32)."""
    if precision == "fp32":
        return None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return functools.partial(torch.autocast, device_type=device.type, dtype=dtype)


def make_scaler(precision: str, device: torch.device):
    """GradScaler for fp16 only (bf16 and fp32 need none)."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def configure_backends(cfg: TrainConfig, device: torch.device) -> None:
    """Threads on CPU; TF32 matmuls on Ampere+ GPUs."""
    if cfg.run.num_threads:
        torch.set_num_threads(cfg.run.num_threads)
    if device.type == "cuda" and cfg.run.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# ----------------------------------------------------------------------------- corpus


def _auto_prepare(corpus_dir: Path, log: logging.Logger) -> None:
    """Build the bundled demo corpus into ``corpus_dir`` with zhbert.corpus.prepare_corpus."""
    from zhbert.corpus import PrepareOptions, prepare_corpus

    log.info("corpus %s is missing: preparing the demo corpus (about a minute)", corpus_dir)
    stats = prepare_corpus("demo", out_dir=corpus_dir, options=PrepareOptions(overwrite=True),
                           progress=False)
    log.info("prepared %s: %s sentences, %s train tokens, vocabulary %s", corpus_dir,
             stats.get("num_sentences"), stats.get("train_tokens"), stats.get("vocab_size"))


def load_corpus(cfg: TrainConfig, *, allow_prepare: bool, log: logging.Logger, barrier):
    """CorpusInfo of ``data.corpus_dir``; auto-prepared on rank 0 when configured."""
    from zhbert.corpus.binary import load_corpus_info

    corpus = Path(cfg.data.corpus_dir)
    missing = not (corpus / "corpus_meta.json").is_file()
    if missing and cfg.data.auto_prepare and allow_prepare:
        _auto_prepare(corpus, log)
    barrier()
    if corpus.exists() and not corpus.is_dir():
        raise UserError(f"{corpus}: is a file, expected a corpus directory (data.corpus_dir)")
    if not (corpus / "corpus_meta.json").is_file():
        raise UserError(f"corpus directory {corpus} is not a prepared corpus (no corpus_meta.json);"
                        " prepare it with examples/prepare_dataset.py or set data.corpus_dir")
    info = load_corpus_info(corpus)
    check_tokenizer_files(corpus, info.vocab_size)
    return info


def check_tokenizer_files(corpus: Path, vocab_size: int) -> None:
    """UserError unless vocab.txt and tokenizer.json exist and both hold ``vocab_size`` tokens.

    Checkpoints and the final export copy these files, so a damaged one must stop the run before
    it trains, not surface when a user loads the exported model.
    """
    from zhbert.export import tokenizer_vocab_size

    vocab = require_file(corpus / "vocab.txt", "the corpus vocabulary")
    try:
        tokens = vocab.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{vocab}: unreadable ({exc}); prepare the corpus again") from None
    if len(tokens) != vocab_size or not all(t.strip() for t in tokens):
        raise UserError(f"{vocab}: {len(tokens)} lines ({sum(not t.strip() for t in tokens)} "
                        f"empty) but corpus_meta.json says {vocab_size} tokens; prepare the "
                        "corpus again")
    require_file(corpus / "tokenizer.json", "the corpus tokenizer")
    n = tokenizer_vocab_size(corpus)
    if n != vocab_size:
        raise UserError(f"{corpus / 'tokenizer.json'}: {n} tokens but corpus_meta.json says "
                        f"{vocab_size}; prepare the corpus again")


# ----------------------------------------------------------------------------- run directory


LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_dir_lock(run_dir: Path, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``RUN/.lock`` while training; refuse a second trainer.

    The lock file names its holder (pid, host, start time). The kernel drops the lock when the
    process ends, however it ends, so a dead run's lock file never blocks a new one.
    """
    if not enabled:
        yield
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} exists and is not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fh = open(run_dir / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    except OSError as exc:
        raise UserError(f"run dir {run_dir} is not writable: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise UserError(f"run dir {run_dir} is in use by {owner}; wait for it to end or "
                            "choose another --run-dir") from None
        fh.seek(0)
        fh.truncate()
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        fh.write(f"process {os.getpid()} on {socket.gethostname()} (started {started})\n")
        fh.flush()
        yield
    finally:
        fh.close()  # releases the lock


def has_run(run_dir: Path) -> bool:
    ck = run_dir / "checkpoints"
    return (run_dir / HISTORY_NAME).exists() or (ck.is_dir() and any(ck.iterdir()))


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing run unless ``--resume``/``--overwrite``; check writability."""
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"run dir {run_dir} exists and is not a directory")
    if has_run(run_dir) and not (resume or overwrite):
        raise UserError(f"run dir {run_dir} already holds a run; pass --resume to continue it or "
                        "--overwrite to start again")
    if overwrite:
        for name in (HISTORY_NAME, "checkpoints", "final", LOG_NAME, TB_DIR):
            p = run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"run dir {run_dir} is not writable: {exc.strerror or exc}") from None


def check_compatible(saved: dict, cfg: TrainConfig, path: Path) -> list[str]:
    """UserError when a model key outside ``RESUMABLE_MODEL_KEYS`` differs from the checkpoint's
    (a key it lacks counts as its default); returns every other changed key."""
    old = {**dataclasses.asdict(BertConfig()), **(saved.get("model") or {})}
    now = dataclasses.asdict(cfg.model)
    fixed = [k for k in now if k not in RESUMABLE_MODEL_KEYS and old.get(k) != now[k]]
    if fixed:
        raise UserError(f"checkpoint {path} has {', '.join(f'model.{k}={old[k]!r}' for k in fixed)}"
                        f" but the config has {', '.join(repr(now[k]) for k in fixed)}; resume "
                        "with the original config")
    return config_changes(saved, cfg.to_dict())


# ----------------------------------------------------------------------------- logging


class _TqdmHandler(logging.Handler):
    """Console lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # logging must never kill training
            self.handleError(record)


def make_logger(run_dir: Path | None, is_main: bool) -> logging.Logger:
    """``zhbert.train`` logger: console + RUN/train.log on rank 0, silent elsewhere."""
    log = logging.getLogger("zhbert.train")
    close_logger(log)
    log.setLevel(logging.INFO)
    log.propagate = False
    if not is_main:
        log.addHandler(logging.NullHandler())
        return log
    console = _TqdmHandler()
    console.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(console)
    if run_dir is not None:
        fh = logging.FileHandler(run_dir / LOG_NAME, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(fh)
    return log


def close_logger(log: logging.Logger) -> None:
    for h in list(log.handlers):
        log.removeHandler(h)
        with contextlib.suppress(Exception):
            h.close()
