"""Read the curves users have: any supported training log, its format told by its content.

    h = load_source(path, metric=None, lr_metric=None, direction=None)   # a History

Formats (recognised by what the file holds, never by its name):

* this project's ``training_history.json`` and the original study's: read by
  :func:`zhbert.analysis.history.load_history`, unchanged (``metric`` None: masked-LM accuracy,
  the held-out series when present; ``metric`` names any of its columns, e.g. ``eval_loss``);
* a Hugging Face Trainer ``trainer_state.json``: every numeric key of its ``log_history``
  entries is a series over their ``step`` (train entries: ``loss``, ``learning_rate``; eval
  entries: ``eval_loss``, ``eval_accuracy``, ...);
* a TensorBoard run directory (every event file under it; a subdirectory's tags are named
  ``sub/tag``) or one event file, read with TensorBoard's own reader: the scalars by tag;
* CSV: TensorBoard's and W&B's exports (``Step,Value``; ``Step``, ``<run> - <metric>``,
  ``..__MIN``/``..__MAX``), Lightning's ``metrics.csv`` (empty cells where a row logged other
  metrics) and any table with a step column (``step,lr,loss``).

Every format is first read into *scalars* (name -> steps, values). The analysed series is
``metric`` or, when omitted, the only candidate: a series whose name says it is a loss or an
accuracy (:func:`higher_is_better`), else the only series at all (lr, epoch, time and throughput
columns are never candidates). The lr series is ``lr_metric`` or the only series named like an
lr; the schedule is inferred from it (:func:`zhbert.analysis.schedule.history_schedule`). A name
not there, or a choice left ambiguous, is a UserError listing what the file holds.

A metric is accuracy-like (higher is better; fractions, or percent read as fractions as in
:func:`~zhbert.analysis.history.in_percent`) or loss-like (lower is better: loss, perplexity,
error; analysed as is), from its name or ``direction`` (``"max"`` / ``"min"``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd

from zhbert import history_schema as H
from zhbert.analysis.history import (
    MAX_NONFINITE_FRACTION,
    History,
    Series,
    check_accuracy_range,
    in_percent,
    load_history,
)
from zhbert.analysis.readers import LABELS, WANDB_SEPARATOR, Scalars, read_scalars
from zhbert.errors import UserError

#: name parts of series that are never candidate metrics (bookkeeping, not a learning curve)
BOOKKEEPING = ("epoch", "runtime", "per_second", "flos", "grad_norm", "wall", "time",
               "tokens_seen", "throughput", "memory", "samples")
#: a name holding one of these is loss-like (lower is better) / accuracy-like; the short forms
#: count as whole name parts only ("err" in "val_err", not in "ferret")
LOWER_WORDS, LOWER_PARTS = ("loss", "perplexity", "error"), (
    "ppl", "nll", "err", "mse", "mae", "rmse", "wer", "cer", "bpc", "bpb")
HIGHER_WORDS, HIGHER_PARTS = ("accuracy", "bleu", "rouge", "exact_match", "precision", "recall"), (
    "acc", "f1", "auc", "em", "top1", "top5")
#: an lr series' name holds LR_WORD or has the part LR_PART
LR_WORD, LR_PART = "learning_rate", "lr"
#: name parts of a held-out series (else it is a training series)
EVAL_PARTS = ("eval", "val", "valid", "validation", "test", "dev")
#: series that are the training loss (drawn and summarised as ``loss`` beside any metric)
TRAIN_LOSS_NAMES = ("loss", "train_loss", "train/loss", "training_loss")
DIRECTIONS = ("max", "min")
#: points a metric read from another tool's log needs: a Trainer that evaluates once per epoch
#: logs a handful, and three already carry a trend and (with a known schedule) a loss forecast;
#: the sections that need more say so themselves (a forecast's refusal names its own minimum)
MIN_SERIES_POINTS = 3


def _parts(name: str) -> list[str]:
    """Lower-cased parts of the metric's name (a W&B column's run name left out).

    >>> _parts("test-run - eval/top1_acc")
    ['eval', 'top1', 'acc']
    """
    return [p for p in re.split(r"[^a-z0-9]+", _own(name).lower()) if p]


def _own(name: str) -> str:
    """The metric's own name: a W&B column ``<run> - <metric>`` without its run."""
    return name.rsplit(WANDB_SEPARATOR, 1)[-1]


def direction_by_name(name: str) -> bool | None:
    """True (higher is better) / False (lower is better) by the name, None when it does not say.

    >>> [direction_by_name(n) for n in ("eval_loss", "val/acc", "valid_ppl", "grad_norm")]
    [False, True, False, None]
    """
    low, parts = _own(name).lower(), _parts(name)
    if any(w in low for w in LOWER_WORDS) or any(p in LOWER_PARTS for p in parts):
        return False
    if (any(w in low for w in HIGHER_WORDS) or any(p in HIGHER_PARTS for p in parts)
            or any(p.startswith("acc") for p in parts)):
        return True
    return None


def is_perplexity(name: str | None) -> bool:
    """Whether a metric's name says perplexity (``perplexity``, or a name part ``ppl``).

    >>> [is_perplexity(n) for n in ("eval/perplexity", "run - valid_ppl", "eval_loss", None)]
    [True, True, False, False]
    """
    return bool(name) and ("perplexity" in _own(name).lower() or "ppl" in _parts(name))


def higher_is_better(name: str, direction: str | None = None) -> bool:
    """The metric's direction: ``direction`` ("max" / "min") when given, else by its name; a
    name that does not say is a UserError asking for ``--direction``."""
    if direction is not None:
        if direction not in DIRECTIONS:
            raise UserError(f"--direction must be max or min (got {direction!r})")
        return direction == "max"
    by_name = direction_by_name(name)
    if by_name is None:
        raise UserError(f"cannot tell from its name whether higher or lower is better for "
                        f"{name!r}; pass --direction max (accuracy-like) or --direction min "
                        f"(loss-like)")
    return by_name


def is_lr(name: str) -> bool:
    """Whether a series is named like a learning rate (``lr``, ``learning_rate``, ``lr-AdamW``).

    >>> [is_lr(n) for n in ("learning_rate", "lr-AdamW/pg1", "train/lr", "val_loss")]
    [True, True, True, False]
    """
    return LR_WORD in _own(name).lower() or LR_PART in _parts(name)


def is_eval(name: str) -> bool:
    """Whether a series is a held-out one by its name (``eval_loss``, ``val/acc``, ``test_f1``)."""
    return any(p in EVAL_PARTS for p in _parts(name))


def candidates(scalars: Scalars) -> list[str]:
    """The series that may be the analysed metric (see the module docstring), sorted."""
    names = sorted(n for n, (s, _) in scalars.items() if s.size >= 2 and not is_lr(n)
                   and not any(b in _own(n).lower() for b in BOOKKEEPING))
    named = [n for n in names if direction_by_name(n) is not None]
    return named or names


def _lookup(path: Path, label: str, scalars: Scalars, name: str, flag: str) -> str:
    """``name`` itself, or the one W&B column ``<run> - name``; else a UserError listing all."""
    if name in scalars:
        return name
    hits = [n for n in scalars if n.endswith(WANDB_SEPARATOR + name)]
    if len(hits) == 1:
        return hits[0]
    raise UserError(f"{path}: {flag} {name!r} is not in this {label}; it has: "
                    f"{', '.join(sorted(scalars)) or 'no series'}")


def choose_metric(path: Path, label: str, scalars: Scalars, metric: str | None) -> str:
    """The analysed series' name: ``metric``, or the only candidate."""
    if metric is not None:
        return _lookup(path, label, scalars, metric, "--metric")
    found = candidates(scalars)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UserError(f"{path}: this {label} has no series to analyse (it has: "
                        f"{', '.join(sorted(scalars)) or 'nothing'}); pick one with --metric")
    raise UserError(f"{path} ({label}) has several candidate metrics: {', '.join(found)}; "
                    f"pick one with --metric")


def choose_lr(path: Path, label: str, scalars: Scalars, lr_metric: str | None) -> str | None:
    """The lr series' name: ``lr_metric``, or the only lr-like series, or None when there is none."""
    if lr_metric is not None:
        return _lookup(path, label, scalars, lr_metric, "--lr-metric")
    found = sorted(n for n in scalars if is_lr(n))
    if len(found) > 1:
        raise UserError(f"{path} ({label}) has several lr series: {', '.join(found)}; pick one "
                        f"with --lr-metric")
    return found[0] if found else None


# -- the chosen series as a History ---------------------------------------------------------------

def clean(path: Path, name: str, steps: np.ndarray, values: np.ndarray,
          warnings: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    """One series sorted by step, the last value kept for a repeated step (a resumed run
    logs its steps again) and non-finite points dropped: few with a warning, many refused.
    Returns the steps, the values and the number of points dropped.

    >>> clean(Path("x"), "loss", np.array([1., 2, 2, 3]), np.array([5., 4, 3.5, 3]), [])
    (array([1., 2., 3.]), array([5. , 3.5, 3. ]), 0)
    """
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    last = np.append(steps[1:] != steps[:-1], True)
    if not last.all():
        warnings.append(f"{path}: {name}: {int((~last).sum())} repeated step(s); the last value "
                        f"logged at each is used")
    steps, values = steps[last], values[last]
    bad = ~(np.isfinite(values) & np.isfinite(steps))
    if bad.sum() > MAX_NONFINITE_FRACTION * len(values):
        raise UserError(f"{path}: {int(bad.sum())} of {len(values)} {name} points are NaN/inf "
                        f"(more than {MAX_NONFINITE_FRACTION:.0%}); refusing to analyse")
    if bad.any():
        warnings.append(f"{path}: dropped {int(bad.sum())} {name} point(s) holding NaN/inf")
    return steps[~bad], values[~bad], int(bad.sum())


def metric_series(path: Path, name: str, steps: np.ndarray, values: np.ndarray, kind: str,
                  higher: bool, warnings: list[str]) -> Series:
    """The analysed :class:`Series`: at least ``MIN_SERIES_POINTS`` points at steps >= 0; an
    accuracy-like one in [0, 1], or in percent (read as fractions, with a warning)."""
    if values.size < MIN_SERIES_POINTS:
        raise UserError(f"{path}: only {values.size} {name} points; at least "
                        f"{MIN_SERIES_POINTS} are needed")
    if steps[0] < 0:
        raise UserError(f"{path}: {name} steps must not be negative (found {steps[0]:g})")
    if higher:
        percent = in_percent(values)
        check_accuracy_range(path, name, steps, values, kind, percent)
        if percent:
            warnings.append(f"{path}: {name} values {values.min():g}..{values.max():g} read as "
                            f"percentages (divided by 100)")
            values = values / 100.0
    return Series(kind=kind, steps=steps, acc=values, metric=name, higher_is_better=higher)


def _train_frame(path: Path, scalars: Scalars, series: Series, lr_name: str | None,
                 warnings: list[str]) -> pd.DataFrame:
    """``steps`` and ``lr`` of the lr series (else the metric's steps), and ``loss`` when the
    log's training loss was logged at those steps."""
    if lr_name is not None:
        steps, lr, _ = clean(path, lr_name, *scalars[lr_name], warnings)
        frame = pd.DataFrame({H.STEPS: steps, H.LR: lr})
    else:
        frame = pd.DataFrame({H.STEPS: series.steps})
    for name in TRAIN_LOSS_NAMES:
        if name in scalars:
            s, v, _ = clean(path, name, *scalars[name], [])
            if np.array_equal(s, frame[H.STEPS].to_numpy()):
                frame[H.LOSS] = v
            break
    return frame


def _from_scalars(path: Path, fmt: str, scalars: Scalars, metric: str | None,
                  lr_metric: str | None, direction: str | None) -> History:
    label = LABELS[fmt]
    name = choose_metric(path, label, scalars, metric)
    higher = higher_is_better(name, direction)
    lr_name = choose_lr(path, label, scalars, lr_metric)
    warnings: list[str] = []
    steps, values, dropped = clean(path, name, *scalars[name], warnings)
    series = metric_series(path, name, steps, values, "eval" if is_eval(name) else "train",
                           higher, warnings)
    train = _train_frame(path, scalars, series, lr_name, warnings)
    return History(train=train, eval=None, meta={}, path=path, format=fmt, warnings=warnings,
                   dropped_nonfinite=dropped, metric_series=series)


def _native_metric(history: History, metric: str, direction: str | None) -> History:
    """This project's history analysed on one of its columns (``eval_loss``, ``loss``, ...)."""
    frames = {"train": history.train, "eval": history.eval}
    names = {c: k for k, f in frames.items() if f is not None for c in f.columns
             if c not in (H.STEPS, H.EVAL_STEPS)}
    if metric not in names:
        raise UserError(f"{history.path}: --metric {metric!r} is not a column of this history; "
                        f"it has: {', '.join(sorted(names))}")
    kind = names[metric]
    frame = frames[kind]
    steps = frame[H.step_key(kind)].to_numpy(np.float64)
    warnings = list(history.warnings)
    steps, values, _ = clean(history.path, metric, steps, frame[metric].to_numpy(np.float64),
                             warnings)
    series = metric_series(history.path, metric, steps, values, kind,
                           higher_is_better(metric, direction), warnings)
    return dataclasses.replace(history, metric_series=series, warnings=warnings)


def load_source(path: str | Path, metric: str | None = None, lr_metric: str | None = None,
                direction: str | None = None) -> History:
    """Read any supported log (see the module docstring) as a :class:`History` whose series is
    chosen; this project's history without ``metric`` is exactly :func:`load_history`'s."""
    path = Path(path)
    fmt, scalars = read_scalars(path)
    if scalars is None:
        history = load_history(path)
        if lr_metric not in (None, H.LR):
            raise UserError(f"{path}: this project's history has one lr column, '{H.LR}' "
                            f"(got --lr-metric {lr_metric!r})")
        if metric is None:
            if direction not in (None, "max"):
                raise UserError(f"{path}: --direction {direction} contradicts the masked-LM "
                                f"accuracy analysed by default; pick a loss with --metric")
            return history
        return _native_metric(history, metric, direction)
    return _from_scalars(path, fmt, scalars, metric, lr_metric, direction)


__all__ = ["candidates", "direction_by_name", "higher_is_better", "is_lr", "is_perplexity",
           "load_source", "read_scalars"]
