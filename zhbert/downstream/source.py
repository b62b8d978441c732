"""What a fine-tune starts from: a run's export or one of its staged checkpoints, as transformers
loads it.

``--model`` names either an export (``RUN/final``: a transformers folder written by
:func:`zhbert.export.export_hf`, BERT or ModernBERT) or a checkpoint (``RUN/checkpoints/step_N``:
our weights and resolved config, :mod:`zhbert.training.checkpoint`). A checkpoint is converted
to a transformers folder in a temporary directory with the same export code, so both load through
``AutoModelFor...Classification.from_pretrained`` exactly as a user would load them.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from zhbert.errors import UserError
from zhbert.export import export_hf, import_hf, tokenizer_vocab_size
from zhbert.history_schema import HISTORY_NAME, STEPS
from zhbert.io_utils import read_json, require_dir
from zhbert.model_config import BertConfig
from zhbert.predict import load_checkpoint_model

#: parameters a classification model may lack in a pretraining export (its new task head; the
#: BERT pooler, which a masked-LM export does not have)
NEW_HEAD_PREFIXES = ("classifier.", "bert.pooler.")


@dataclass(frozen=True)
class ModelSource:
    """A model folder resolved for fine-tuning."""

    path: Path  # what --model named
    hf_dir: Path  # a transformers folder: the export itself, or the converted checkpoint
    kind: str  # "export" or "checkpoint"
    step: int | None  # pretraining step of the weights, when known
    config: BertConfig  # our view of the architecture (arch, sizes)


def export_step(directory: Path) -> int | None:
    """The pretraining step of an export ``RUN/final``: the last step of ``RUN``'s history
    (written when training ended), or None when there is no history beside it."""
    history = directory.parent / HISTORY_NAME
    if not history.is_file():
        return None
    steps = read_json(history, "a training history", obj=True).get(STEPS) or []
    return int(steps[-1]) if steps and isinstance(steps[-1], int | float) else None


def _check_vocab(directory: Path, vocab_size: int, what: str) -> None:
    n = tokenizer_vocab_size(directory)
    if n != vocab_size:
        raise UserError(f"{directory}: the tokenizer has {n} tokens but the {what} has "
                        f"{vocab_size} embedding rows (a different vocabulary)")


@contextlib.contextmanager
def open_source(path: str | Path) -> Iterator[ModelSource]:
    """Resolve ``path`` (an export or a checkpoint) for the duration of the block; a checkpoint's
    converted folder is deleted afterwards. UserError for anything that cannot be fine-tuned."""
    directory = require_dir(path, "a model: an export such as RUN/final, or a checkpoint "
                                  "RUN/checkpoints/step_N")
    config_json = read_json(directory / "config.json", "a model config", obj=True)
    if "model_type" in config_json:
        model = import_hf(directory)  # validates the kind, the config and every tensor
        _check_vocab(directory, model.config.vocab_size, "model")
        yield ModelSource(directory, directory, "export", export_step(directory), model.config)
        return
    if "model" not in config_json:
        raise UserError(f"{directory / 'config.json'}: neither a transformers config "
                        "(model_type) nor a training checkpoint config (model)")
    model = load_checkpoint_model(directory, config_json)
    _check_vocab(directory, model.config.vocab_size, "checkpoint")
    step = config_json.get("step")
    with tempfile.TemporaryDirectory(prefix="zhbert-finetune-") as tmp:
        hf_dir = export_hf(model, directory, Path(tmp) / "hf")
        yield ModelSource(directory, hf_dir, "checkpoint",
                          step if isinstance(step, int) else None, model.config)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars (the missing keys are checked here)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()


def load_task_model(source: ModelSource, kind: str, labels: tuple[str, ...], init: str,
                    seed: int, pooling: str = "cls") -> torch.nn.Module:
    """``AutoModelForTokenClassification`` (``kind="token"``) or ``...SequenceClassification``
    from ``source``: its weights (``init="pretrained"``) or the same architecture freshly
    initialised (``init="random"``). The new head is initialised from ``seed``. ``pooling`` is
    ModernBERT's ``classifier_pooling`` of a sequence task ("cls" or "mean")."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    cls = AutoModelForTokenClassification if kind == "token" else AutoModelForSequenceClassification
    names = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                 label2id={name: i for i, name in enumerate(labels)})
    if kind == "sequence" and source.config.arch == "modern":
        names["classifier_pooling"] = pooling
    torch.manual_seed(seed)
    with quiet_transformers():
        if init == "random":
            return cls.from_config(AutoConfig.from_pretrained(source.hf_dir, **names))
        model, info = cls.from_pretrained(source.hf_dir, output_loading_info=True, **names)
    lost = sorted(k for k in info["missing_keys"] if not k.startswith(NEW_HEAD_PREFIXES))
    if lost or info["mismatched_keys"]:
        raise UserError(f"{source.path}: transformers did not find these weights of the "
                        f"encoder: {(lost or sorted(info['mismatched_keys']))[:3]}")
    return model


def load_tokenizer(source: ModelSource):
    """The export's tokenizer, as ``AutoTokenizer`` loads it."""
    from transformers import AutoTokenizer

    with quiet_transformers():
        return AutoTokenizer.from_pretrained(source.hf_dir)


__all__ = ["ModelSource", "export_step", "quiet_transformers", "load_task_model", "load_tokenizer", "open_source"]
