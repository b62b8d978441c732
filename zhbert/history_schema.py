"""The one owner of ``training_history.json``: every key it may hold, with one name per quantity.

The trainer writes the file (:mod:`zhbert.training.history`), the analysis reads it
(:mod:`zhbert.analysis.history`), the plots and the examples read the analysis' frames; all of
them take the key names from here, and the names are the same everywhere: in the JSON file, in the
trainer's row dicts, in the analysis' ``train`` / ``eval`` data frames and in summaries. Held-out
accuracy is ``eval_mlm_acc`` wherever it appears.

Layout of the file (a JSON object)::

    {"steps": [...], "mlm_acc": [...], ...,            # train series: one value per log point
     "eval_steps": [...], "eval_mlm_acc": [...], ...,  # eval series: one value per evaluation
     "meta": {...}}                                     # run description (see META)

Contract: every train column has ``len(steps)`` values and every eval column ``len(eval_steps)``.
A value that is not a finite number is written as ``null`` (strict JSON has no NaN), never as a
bare ``NaN``. Eval keys start with :data:`EVAL_PREFIX`; train keys never do.

The original study's files hold only :data:`ORIGINAL_KEYS` (train series, no ``meta``); the
analysis accepts them too.

How to add a key
----------------
* A new column: add a name constant below, then a :class:`Column` to :data:`COLUMNS` (``series``
  ``"train"`` or ``"eval"``; an eval key must start with ``eval_``; ``core=True`` only when the
  analysis must drop a row where the value is NaN; ``nsp=True`` when it exists only with NSP).
  The trainer must then put it in every row it logs: :func:`check_row` refuses a row with a
  missing or an unregistered key, so a key cannot be written that is not declared here. Readers
  find the new column in ``History.train`` / ``History.eval`` under the same name; older files
  simply lack it (readers must allow that).
* A new ``meta`` entry: add it to :data:`META` with a one-line description; :func:`check_meta`
  refuses unregistered meta keys when the trainer saves.
* Document user-visible keys in docs/TRAINING.md ("What a run writes").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HISTORY_NAME = "training_history.json"
EVAL_PREFIX = "eval_"
META_KEY = "meta"

# train series (one value per log point; sums over the steps since the previous log point)
STEPS = "steps"
MLM_ACC = "mlm_acc"
NSP_ACC = "nsp_acc"
LOSS = "loss"
LR = "lr"
TOKENS_SEEN = "tokens_seen"
ELAPSED_S = "elapsed_s"
TOKENS_PER_S = "tokens_per_s"
GRAD_NORM = "grad_norm"
SKIPPED_STEPS = "skipped_steps"
DATA_WAIT_FRAC = "data_wait_frac"
# eval series (one value per held-out evaluation)
EVAL_STEPS = "eval_steps"
EVAL_MLM_ACC = "eval_mlm_acc"
EVAL_LOSS = "eval_loss"
EVAL_STDERR = "eval_stderr"
EVAL_NSP_ACC = "eval_nsp_acc"
# the live forecast made at each evaluation (zhbert/training/monitor.py); None until enough points
EVAL_FORECAST_STEP = "eval_forecast_step"
EVAL_FORECAST_ACC = "eval_forecast_acc"
EVAL_FORECAST_LOW = "eval_forecast_low"
EVAL_FORECAST_HIGH = "eval_forecast_high"
EVAL_ETA_S = "eval_eta_s"
FORECAST_KEYS = (EVAL_FORECAST_STEP, EVAL_FORECAST_ACC, EVAL_FORECAST_LOW, EVAL_FORECAST_HIGH,
                 EVAL_ETA_S)


@dataclass(frozen=True)
class Column:
    """One column of the history: its key, its series, what it means."""

    key: str
    series: str  # "train" or "eval"
    doc: str
    core: bool = False  # the analysis drops rows where this is not finite
    nsp: bool = False  # present only when the model has the NSP head


COLUMNS: tuple[Column, ...] = (
    Column(STEPS, "train", "optimizer steps done at the log point", core=True),
    Column(MLM_ACC, "train", "masked-token accuracy on the interval's training batches", core=True),
    Column(LOSS, "train", "mean training loss over the interval's micro-batches", core=True),
    Column(LR, "train", "learning rate of the interval's last step", core=True),
    Column(TOKENS_SEEN, "train", "non-padding tokens consumed so far (all ranks)"),
    Column(ELAPSED_S, "train", "wall seconds of training so far, resumed sessions included"),
    Column(TOKENS_PER_S, "train", "throughput over the interval, evaluation/checkpoints excluded"),
    Column(GRAD_NORM, "train", "mean pre-clipping gradient norm over the interval's steps "
           "with a finite norm (null if none)"),
    Column(SKIPPED_STEPS, "train", "steps of the interval skipped for a non-finite gradient"),
    Column(DATA_WAIT_FRAC, "train", "fraction of the interval spent waiting for batches"),
    Column(NSP_ACC, "train", "next-sentence accuracy on the interval's batches", core=True,
           nsp=True),
    Column(EVAL_STEPS, "eval", "optimizer steps done at the evaluation", core=True),
    Column(EVAL_MLM_ACC, "eval", "held-out masked-token accuracy (fixed masks)", core=True),
    Column(EVAL_LOSS, "eval", "held-out MLM loss per masked token", core=True),
    Column(EVAL_STDERR, "eval", "binomial standard error of eval_mlm_acc"),
    Column(EVAL_NSP_ACC, "eval", "held-out next-sentence accuracy", nsp=True),
    Column(EVAL_FORECAST_STEP, "eval", "the planned final step the live forecast is for"),
    Column(EVAL_FORECAST_ACC, "eval", "live forecast of eval_mlm_acc at eval_forecast_step"),
    Column(EVAL_FORECAST_LOW, "eval", "lower end of the live forecast's 95% interval"),
    Column(EVAL_FORECAST_HIGH, "eval", "upper end of the live forecast's 95% interval"),
    Column(EVAL_ETA_S, "eval", "wall seconds left at the pace since the previous evaluation"),
)
BY_KEY: dict[str, Column] = {c.key: c for c in COLUMNS}

#: the original study's history: train series only
ORIGINAL_KEYS = frozenset({STEPS, MLM_ACC, NSP_ACC, LOSS, LR})

#: meta entry holding the resolved TrainConfig as a dict (the analysis reads the lr schedule there)
META_CONFIG = "config"
#: meta entry of the count-table baselines (zhbert/baselines.py; also a key of the analysis JSON)
META_BASELINES = "baselines"
#: meta entry of a time-budget run (run.time_budget_s): the budget and the re-planned length
META_TIME_BUDGET = "time_budget"

META: dict[str, str] = {
    META_CONFIG: "the resolved TrainConfig (of the latest session)",
    "preset": "the preset the config started from",
    "parameters": "number of model parameters",
    "dataset": "corpus path, fingerprint and statistics",
    "torch_version": "PyTorch version",
    "python_version": "Python version",
    "device": "device name",
    "precision": "resolved precision (fp32, bf16, fp16)",
    "precision_choice": "how run.precision resolved: precision, requested, reason, and on a CPU "
                        "bf16_speedup (the probe's fp32/bf16 time ratio at the model's matmul "
                        "shape) and any warning",
    "world_size": "number of processes of the first session",
    "process_group": "torch.distributed backend of the first session (nccl, gloo) or null",
    "global_batch": "sequences per optimizer step (all ranks, all micro-batches)",
    "tokens_per_sequence": "sequence length",
    "seed": "run seed",
    "start_time": "UTC start of the first session",
    "git_commit": "commit of the code that started the run",
    "git_dirty": "true when tracked files differed from git_commit (uncommitted code ran)",
    "eval": "held-out set as built: sequences, masked_tokens, min_masked_requested, capped "
            "(stopped by eval_max_sequences or the val split), stderr_max, mask rate, seed",
    "resumed": "one entry per resumption: step, time, world size, config changes applied",
    META_TIME_BUDGET: "runs that had run.time_budget_s: budget_s, planned_steps (the last "
                      "plan: the final step once the run ends), max_steps, knots ([step, "
                      "schedule position] where the plan changed; zhbert.analysis.schedule)",
    META_BASELINES: "count-table baselines on the held-out set: acc, stderr, correct, n_masked, "
                    "train tokens counted, neighbour rule (zhbert/baselines.py)",
}


def series_of(key: str) -> str:
    """``"eval"`` for an ``eval_`` key, else ``"train"`` (also for keys not registered here)."""
    return "eval" if key.startswith(EVAL_PREFIX) else "train"


def keys(series: str, *, nsp: bool) -> tuple[str, ...]:
    """The registered keys of one series, in file order; NSP keys only when ``nsp``."""
    return tuple(c.key for c in COLUMNS if c.series == series and (nsp or not c.nsp))


def core_keys(series: str) -> tuple[str, ...]:
    """Keys whose non-finite values make the analysis drop the row."""
    return tuple(c.key for c in COLUMNS if c.series == series and c.core)


def step_key(series: str) -> str:
    """The step column of a series."""
    return EVAL_STEPS if series == "eval" else STEPS


def acc_key(series: str) -> str:
    """The masked-LM accuracy column of a series."""
    return EVAL_MLM_ACC if series == "eval" else MLM_ACC


def finite_or_none(value: Any) -> Any:
    """A float that is NaN or infinite becomes ``None`` (JSON ``null``); anything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_row(series: str, row: Mapping[str, Any], *, nsp: bool) -> None:
    """Refuse a row whose keys are not exactly the registered keys of ``series`` (a code bug)."""
    expected = set(keys(series, nsp=nsp))
    missing, extra = expected - set(row), set(row) - expected
    if missing or extra:
        raise ValueError(f"{series} history row: missing {sorted(missing)}, unregistered "
                         f"{sorted(extra)} (declare new keys in zhbert/history_schema.py)")


def check_meta(meta: Mapping[str, Any]) -> None:
    """Refuse meta keys that are not registered in :data:`META` (a code bug)."""
    extra = set(meta) - set(META)
    if extra:
        raise ValueError(f"history meta: unregistered key(s) {sorted(extra)} "
                         "(declare them in zhbert/history_schema.py)")
