"""Training configuration: dataclasses, presets, ``key=value`` overrides and JSON round trips.

A :class:`TrainConfig` is four sections — ``model`` (:class:`zhbert.model_config.BertConfig`),
``data``, ``optim`` and ``run``. It is built from a preset, optionally updated from a JSON file
and from ``--set section.key=value`` overrides (each value is parsed and type-checked against the
field's annotation), validated, and then saved verbatim in the run's history and every
checkpoint. Importing it does not import torch.

>>> cfg = get_preset("smoke")
>>> apply_overrides(cfg, ["optim.lr=0.01", "max_steps=5"])
>>> cfg.optim.lr, cfg.run.max_steps
(0.01, 5)
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zhbert.errors import UserError
from zhbert.io_utils import read_json
from zhbert.model_config import ARCHITECTURES, BertConfig

SECTIONS = ("model", "data", "optim", "run")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DATA_FORMATS = ("pairs", "packed")
SCHEDULES = ("cosine", "linear", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DataConfig:
    """Where the prepared corpus is and how training and held-out batches are built."""

    corpus_dir: str = "data/demo"  # prepared corpus directory (see docs/DATASET.md)
    auto_prepare: bool = False  # build the bundled demo corpus into corpus_dir when it is missing
    format: str = "packed"  # "pairs": NSP sentence pairs padded to seq_len; "packed": MLM blocks
    seq_len: int = 128  # tokens per sequence, [CLS]/[SEP] included
    batch_size: int = 32  # sequences per micro-batch on each rank
    mask_rate: float = 0.15  # training MLM selection rate (80/10/10 replacement)
    whole_word_mask: bool = False  # mask whole jieba words in training (eval stays per token)
    eval_mask_rate: float = 0.15  # held-out masking rate (fixed masks, drawn once)
    eval_min_masked: int = 10000  # held-out subset grows until this many masked tokens
    eval_max_sequences: int = 4096  # upper bound on held-out sequences (small val splits)
    eval_batch_size: int = 64  # sequences per held-out forward pass
    eval_seed: int = 20240601  # seed of the held-out subset and its masks
    prefetch: int = 2  # batches built ahead in a background thread (0: build inline)


@dataclass
class OptimConfig:
    """AdamW, gradient accumulation and clipping, and the warmup + decay schedule."""

    lr: float = 5e-5  # peak learning rate (reached at the end of warmup)
    weight_decay: float = 0.01  # decoupled weight decay; never applied to biases and LayerNorm
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.999  # AdamW beta2
    eps: float = 1e-8  # AdamW epsilon
    grad_accum: int = 1  # micro-batches per optimizer step
    clip_norm: float = 1.0  # max global gradient norm (0: no clipping)
    warmup_steps: int = 0  # linear warmup from 0 to lr
    schedule: str = "cosine"  # decay after warmup: "cosine" or "linear" to 0, or "constant"
    total_steps: int = 0  # step at which the decay reaches 0 (0: run.max_steps)
    fused: str = "auto"  # AdamW implementation: "auto", "fused", "foreach" or "default"
    max_skipped_steps: int = 10  # stop after this many consecutive non-finite-gradient steps


@dataclass
class RunConfig:
    """Length of the run, logging, evaluation, checkpoints, precision and device."""

    max_steps: int = 1000  # optimizer steps to train
    time_budget_s: float = 0.0  # wall-clock budget in s (0: off): steps planned from the pace
    log_interval: int = 100  # steps between train-metric log points (history rows)
    eval_interval: int = 1000  # steps between held-out evaluations (and at the last step)
    save_interval: int = 2000  # steps between checkpoints (and at the last step)
    keep_last: int = 3  # most recent checkpoints kept
    milestones: list[int] = field(default_factory=list)  # steps saved, evaluated, never rotated away
    seed: int = 42  # seed of initialisation, data order, masks and dropout
    precision: str = "auto"  # "auto" (bf16 where supported, else fp16 on GPU), "bf16", "fp16", "fp32"
    compile: bool = False  # torch.compile the model (checkpoints keep clean names)
    device: str = "auto"  # "auto", "cpu" or "cuda"
    num_threads: int = 0  # torch CPU threads (0: torch's default)
    tf32: bool = True  # allow TF32 matmuls on Ampere+ GPUs
    progress: bool = True  # tqdm progress bar on rank 0
    tensorboard: bool = True  # mirror the history to TensorBoard event files in RUN/tensorboard
    forecast: bool = True  # at each held-out evaluation, forecast the accuracy at the last step
    export_final: bool = True  # write RUN/final/ (transformers format) at the end


@dataclass
class TrainConfig:
    """The whole resolved configuration of one training run."""

    model: BertConfig = field(default_factory=BertConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``{"model": {...}, "data": {...}, ..., "preset": ...}``)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    @property
    def total_steps(self) -> int:
        """Step where the schedule reaches its end (``optim.total_steps`` or ``run.max_steps``)."""
        return self.optim.total_steps or self.run.max_steps


# --------------------------------------------------------------------------- presets


def _paper() -> TrainConfig:
    """The original study's setup (hidden 512, 12 layers, MLM + NSP, 100K steps)."""
    return TrainConfig(
        model=BertConfig(hidden_size=512, num_layers=12, num_heads=8, intermediate_size=2048,
                         max_position_embeddings=512, dropout=0.1, attention_dropout=0.1,
                         use_nsp=True,
                         # an untied decoder: the original's 48,398,152 parameters count a
                         # separate 10,054 x 512 decoder matrix (tests/test_model.py)
                         tie_word_embeddings=False),
        data=DataConfig(corpus_dir="data/zhwiki", format="pairs", seq_len=128, batch_size=32,
                        mask_rate=0.15),
        optim=OptimConfig(lr=5e-5, weight_decay=0.01, grad_accum=4, clip_norm=1.0,
                          warmup_steps=2000, schedule="cosine", total_steps=100_000),
        run=RunConfig(max_steps=100_000, log_interval=100, eval_interval=1000,
                      save_interval=2000, keep_last=3,
                      milestones=[10_000, 25_000, 50_000, 75_000, 100_000], precision="auto"),
        preset="paper",
    )


def _efficient() -> TrainConfig:
    """The paper's scale and step budget, with the modern architecture and a 2020s recipe.

    Hidden 512, 12 layers, 8 heads as in the paper; the gated FFN's 1,344 units hold as many
    weights as the paper's 2,048-unit FFN (3 x 1344 vs 2 x 2048 columns of 512). At the original's
    10,054-token vocabulary: 42,788,678 parameters (tests/test_modern.py), 6.1M fewer than
    `paper`'s 48.9M because the decoder is tied and nothing has a bias or position table.
    """
    cfg = _paper()
    cfg.preset = "efficient"
    cfg.model = BertConfig(arch="modern", hidden_size=512, num_layers=12, num_heads=8,
                           intermediate_size=1344, max_position_embeddings=512, dropout=0.0,
                           attention_dropout=0.0, layer_norm_eps=1e-5, use_nsp=False,
                           local_window=128, global_every=3)
    cfg.data = DataConfig(corpus_dir="data/zhwiki", format="packed", seq_len=128, batch_size=32,
                          mask_rate=0.3, whole_word_mask=True)
    cfg.optim = OptimConfig(lr=5e-4, weight_decay=0.01, beta2=0.98, eps=1e-6, grad_accum=4,
                            clip_norm=1.0, warmup_steps=2000, schedule="cosine",
                            total_steps=100_000)
    return cfg


#: the demo's training budget in seconds: with corpus preparation, start-up, analysis, figures
#: and probes, ``make demo`` stays inside ten minutes of work on any 2-core CPU
DEMO_BUDGET_S = 540.0


#: checkpoints the demo keeps for the downstream study (``make downstream``): points along a run
#: of about 2,000-4,000 steps, denser early where the curve moves most
DEMO_MILESTONES = (100, 250, 500, 1000, 1500, 2000)


def _demo() -> TrainConfig:
    """The main job on a 2-core CPU: a small modern encoder trained for at most 4,000 steps of
    32 x 64 tokens or ``DEMO_BUDGET_S`` seconds of training, whichever ends first.

    Every choice is a row of docs/TRAINING.md's tuning tables ("The demo run"): the modern
    architecture (pre-LN, rotary, gated GELU) leaves the unigram plateau at once and keeps
    learning at lr 2e-3, where the post-LN BERT of the earlier demo stalled near 15 %; masking
    35 % of the training tokens (evaluation stays at 15 %) beat 25 % and 15 % at matched steps;
    batch 32 for twice the steps beat batch 64 at equal tokens, in bf16 and in fp32; a 6-layer
    or 384-wide model costs 1.65x or 2.03x the step time of 4 x 256
    (benchmarks/demo_shapes.py, results/bench_demo_shapes.json), and the step budget matters
    more here than the width.
    """
    return TrainConfig(
        model=BertConfig(arch="modern", hidden_size=256, num_layers=4, num_heads=4,
                         intermediate_size=640, max_position_embeddings=128, dropout=0.0,
                         attention_dropout=0.0, layer_norm_eps=1e-5, use_nsp=False),
        data=DataConfig(corpus_dir="data/demo", auto_prepare=True, format="packed", seq_len=64,
                        batch_size=32, mask_rate=0.35, whole_word_mask=False,
                        eval_min_masked=10000, eval_batch_size=128),
        optim=OptimConfig(lr=2e-3, weight_decay=0.01, beta2=0.98, eps=1e-6, grad_accum=1,
                          clip_norm=1.0, warmup_steps=200, schedule="cosine"),
        run=RunConfig(max_steps=4000, time_budget_s=DEMO_BUDGET_S, log_interval=10,
                      eval_interval=200, save_interval=1000, keep_last=2, precision="auto",
                      milestones=list(DEMO_MILESTONES)),
        preset="demo",
    )


def _demo_fp32() -> TrainConfig:
    """The demo for a CPU without native bf16, where it trains in fp32 at well under half the
    bf16 pace, under the same budget. The fp32 tuning (docs/TRAINING.md, "How the fp32 demo was
    tuned") found the same recipe best as in bf16, so today the settings are ``demo``'s; the
    preset is its own name so that its reference run has its own record."""
    cfg = _demo()
    cfg.preset = "demo_fp32"
    return cfg


def _smoke() -> TrainConfig:
    """Tiny and fast (seconds on a CPU): for tests; pass data.corpus_dir explicitly."""
    return TrainConfig(
        model=BertConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                         max_position_embeddings=64, dropout=0.1, attention_dropout=0.1,
                         use_nsp=False),
        data=DataConfig(corpus_dir="data/smoke", format="packed", seq_len=32, batch_size=8,
                        eval_min_masked=200, eval_max_sequences=64, eval_batch_size=32,
                        prefetch=2),
        optim=OptimConfig(lr=1e-3, grad_accum=2, warmup_steps=4, schedule="cosine"),
        run=RunConfig(max_steps=20, log_interval=2, eval_interval=5, save_interval=5,
                      keep_last=2, milestones=[10], precision="fp32", num_threads=1,
                      progress=False, tensorboard=False),
        preset="smoke",
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "smoke": _smoke, "demo": _demo, "demo_fp32": _demo_fp32, "paper": _paper,
    "efficient": _efficient,
}


def get_preset(name: str) -> TrainConfig:
    """A fresh copy of preset ``name``; UserError for an unknown name."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()


# --------------------------------------------------------------------------- values & types


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp)


def coerce_value(tp: Any, value: Any, where: str) -> Any:
    """Check/convert ``value`` (from JSON or a parsed string) to annotation ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce_value(arg, value, where)
            except UserError:
                pass
        raise UserError(f"{where}: {value!r} is not a {_type_name(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [coerce_value(item, v, f"{where}[]") for v in value]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise UserError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise UserError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise UserError(f"{where}: expected a string, got {value!r}")
    raise UserError(f"{where}: unsupported type {_type_name(tp)}")


def parse_text(tp: Any, text: str, where: str) -> Any:
    """Parse the right-hand side of ``key=value``: JSON first, a bare string for str fields."""
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "yes", "on"):
        value: Any = True
    elif lowered in ("false", "no", "off"):
        value = False
    else:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        except (ValueError, RecursionError):  # an integer of thousands of digits, deep nesting
            raise UserError(f"{where}: {text[:40]!r}... is too long or too deeply nested to "
                            "be a value") from None
    if tp is str and not isinstance(value, str):
        value = text  # e.g. data.corpus_dir=123 is a directory name, not a number
    origin = typing.get_origin(tp)
    if origin in (list, tuple) and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if origin in (list, tuple) and isinstance(value, str):
        parts = [p for p in value.split(",") if p.strip()]
        value = [json.loads(p) if p.strip().lstrip("-").replace(".", "", 1).isdigit() else p
                 for p in parts]
    return coerce_value(tp, value, where)


def _resolve_key(cfg: TrainConfig, key: str) -> tuple[Any, str]:
    """Map ``section.key`` or a bare unique ``key`` to (section object, field name)."""
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise UserError(f"unknown config section {section!r} in {key!r}; "
                            f"sections: {', '.join(SECTIONS)}")
        obj = getattr(cfg, section)
        if name not in _field_types(obj):
            raise UserError(f"unknown config key {key!r}; {section} keys: "
                            f"{', '.join(_field_types(obj))}")
        return obj, name
    owners = [s for s in SECTIONS if key in _field_types(getattr(cfg, s))]
    if not owners:
        raise UserError(f"unknown config key {key!r} (use section.key; see docs/TRAINING.md)")
    if len(owners) > 1:
        raise UserError(f"ambiguous config key {key!r}: use one of "
                        f"{', '.join(f'{s}.{key}' for s in owners)}")
    return getattr(cfg, owners[0]), key


def set_value(cfg: TrainConfig, key: str, value: Any, *, from_text: bool = False) -> None:
    """Set one field; the value is type-checked against the field's annotation."""
    obj, name = _resolve_key(cfg, key)
    tp = _field_types(obj)[name]
    where = f"config key {key!r}"
    value = parse_text(tp, value, where) if from_text else coerce_value(tp, value, where)
    setattr(obj, name, value)


def apply_overrides(cfg: TrainConfig, overrides: Iterable[str]) -> None:
    """Apply ``key=value`` strings in order (later ones win)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        set_value(cfg, key.strip(), value, from_text=True)


def update_from_dict(cfg: TrainConfig, data: dict[str, Any], source: str = "config") -> None:
    """Update ``cfg`` from a (possibly partial) nested dict as written by :meth:`to_dict`."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object")
    for section, values in data.items():
        if section == "preset":
            cfg.preset = str(values)
            continue
        if section in ("step",):  # checkpoint config.json carries the step too
            continue
        if section not in SECTIONS:
            raise UserError(f"{source}: unknown config section {section!r}")
        if not isinstance(values, dict):
            raise UserError(f"{source}: section {section!r} must be an object")
        for key, value in values.items():
            set_value(cfg, f"{section}.{key}", value)


def from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """A config from a full dict (missing keys take the dataclass defaults)."""
    cfg = TrainConfig()
    update_from_dict(cfg, data, source)
    return cfg


def config_changes(saved: dict, current: dict,
                   sections: tuple[str, ...] = ("model", "data", "optim", "run")) -> list[str]:
    """``section.key: old -> new`` for every setting in which ``current`` differs from ``saved``
    (both ``TrainConfig.to_dict()`` forms). A key the saved dict lacks (added to the config
    since) counts as its default; a key the config no longer has (removed since) is ignored.

    >>> old = TrainConfig().to_dict()
    >>> del old["run"]["seed"]; old["run"]["gone"] = 1; old["optim"]["lr"] = 0.5
    >>> config_changes(old, TrainConfig().to_dict())
    ['optim.lr: 0.5 -> 5e-05']
    """
    defaults = TrainConfig().to_dict()
    out = []
    for section in sections:
        now = current.get(section) or {}
        old = {**defaults.get(section, {}), **(saved.get(section) or {})}
        out += [f"{section}.{key}: {old.get(key)!r} -> {value!r}" for key, value in now.items()
                if old.get(key) != value]
    return out


def load_json(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file (UserError when missing or malformed)."""
    return read_json(path, "a config file", obj=True)


def build_config(preset: str, config_file: str | Path | None = None,
                 overrides: Iterable[str] = ()) -> TrainConfig:
    """Preset, then JSON file, then ``key=value`` overrides; validated."""
    cfg = get_preset(preset)
    if config_file is not None:
        update_from_dict(cfg, load_json(config_file), str(config_file))
    apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise UserError(f"invalid config: {message}")


INT64_MAX = 2**63 - 1  # every integer setting must fit torch's and numpy's int64


@dataclass(frozen=True)
class Range:
    """The allowed values of one numeric setting: ``low`` to ``high``, each end open or closed."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        """Whether ``value`` lies in the range."""
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return (f"in {'(' if self.low_open else '['}{self.low}, "
                f"{self.high}{')' if self.high_open else ']'}")


_POSITIVE, _NON_NEGATIVE, _AT_LEAST_1 = Range(0, low_open=True), Range(0), Range(1)
_FRACTION, _OPEN_FRACTION = Range(0, 1, high_open=True), Range(0, 1, True, True)

# The range of every numeric setting (int, float or list of int); validate() checks each value.
RANGES: dict[str, Range] = {
    **dict.fromkeys(("model.vocab_size", "model.hidden_size", "model.num_layers",
                     "model.num_heads", "model.intermediate_size",
                     "model.max_position_embeddings", "model.type_vocab_size",
                     "model.global_every"), _AT_LEAST_1),
    "model.dropout": _FRACTION, "model.attention_dropout": _FRACTION,
    "model.layer_norm_eps": _POSITIVE, "model.initializer_range": _POSITIVE,
    "model.rope_theta": _POSITIVE, "model.pad_token_id": _NON_NEGATIVE,
    "model.local_window": _NON_NEGATIVE,
    "data.seq_len": Range(8), "data.mask_rate": _OPEN_FRACTION,
    "data.eval_mask_rate": _OPEN_FRACTION, "data.eval_seed": _NON_NEGATIVE,
    "data.prefetch": _NON_NEGATIVE,
    **dict.fromkeys(("data.batch_size", "data.eval_min_masked", "data.eval_max_sequences",
                     "data.eval_batch_size"), _AT_LEAST_1),
    "optim.lr": _POSITIVE, "optim.eps": _POSITIVE, "optim.beta1": _FRACTION,
    "optim.beta2": _FRACTION, "optim.grad_accum": _AT_LEAST_1,
    "optim.max_skipped_steps": _AT_LEAST_1,
    **dict.fromkeys(("optim.weight_decay", "optim.clip_norm", "optim.warmup_steps",
                     "optim.total_steps"), _NON_NEGATIVE),
    **dict.fromkeys(("run.max_steps", "run.log_interval", "run.eval_interval",
                     "run.save_interval", "run.keep_last", "run.milestones"), _AT_LEAST_1),
    "run.time_budget_s": _NON_NEGATIVE, "run.seed": _NON_NEGATIVE,
    "run.num_threads": _NON_NEGATIVE,
}


def numeric_keys(cfg: TrainConfig) -> list[str]:
    """``section.key`` of every setting annotated int, float or a list of them."""
    keys = []
    for section in SECTIONS:
        for name, tp in _field_types(getattr(cfg, section)).items():
            item = (typing.get_args(tp) or (None,))[0] if typing.get_origin(tp) is list else tp
            if item in (int, float):
                keys.append(f"{section}.{name}")
    return keys


def _check_number(key: str, value: int | float) -> None:
    """UserError unless ``value`` is finite (an int: fits int64) and in ``RANGES[key]``."""
    if isinstance(value, int):
        _check(abs(value) <= INT64_MAX, f"{key}={value} does not fit a 64-bit integer")
    else:
        _check(math.isfinite(value), f"{key}={value!r} is not a finite number")
    _check(RANGES[key].holds(value), f"{key}={value!r} must be {RANGES[key]}")


def check_ranges(cfg: TrainConfig) -> None:
    """Check every numeric setting (each item of a list) against its range in ``RANGES``."""
    for key in numeric_keys(cfg):
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        for item in value if isinstance(value, list) else [value]:
            _check_number(key, item)


def validate(cfg: TrainConfig) -> None:
    """Reject values that cannot work (one-line UserError naming the key)."""
    check_ranges(cfg)
    m, d, o, r = cfg.model, cfg.data, cfg.optim, cfg.run
    _check(m.hidden_size % m.num_heads == 0,
           f"model.hidden_size={m.hidden_size} is not divisible by model.num_heads={m.num_heads}")
    _check(m.pad_token_id < m.vocab_size,
           f"model.pad_token_id={m.pad_token_id} is not below model.vocab_size={m.vocab_size}")
    _check(d.format in DATA_FORMATS, f"data.format={d.format!r}; choose {DATA_FORMATS}")
    _check(not m.use_nsp or d.format == "pairs", "model.use_nsp=true needs data.format=pairs")
    _check(m.arch in ARCHITECTURES, f"model.arch={m.arch!r}; choose {ARCHITECTURES}")
    _check(m.arch == "bert" or not m.use_nsp, "model.arch=modern has no NSP head (use_nsp=false)")
    _check(d.seq_len <= m.max_position_embeddings,
           f"data.seq_len={d.seq_len} exceeds model.max_position_embeddings="
           f"{m.max_position_embeddings}")
    _check(o.schedule in SCHEDULES, f"optim.schedule={o.schedule!r}; choose {SCHEDULES}")
    _check(o.fused in ("auto", "fused", "foreach", "default"),
           f"optim.fused={o.fused!r}; choose auto, fused, foreach or default")
    _check(r.precision in PRECISIONS, f"run.precision={r.precision!r}; choose {PRECISIONS}")
    _check(r.device in DEVICES, f"run.device={r.device!r}; choose {DEVICES}")
    _check(cfg.total_steps >= r.max_steps or o.schedule == "constant",
           f"optim.total_steps={o.total_steps} is before run.max_steps={r.max_steps}")
    try:  # the model config's own checks (every key), re-run on the values after the overrides
        dataclasses.replace(m)
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid config: model: {exc}") from None
