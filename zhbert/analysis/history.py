"""Load and validate a training history (this project's format or the original study's).

Keys and layout are owned by :mod:`zhbert.history_schema` (docs/TRAINING.md, "What a run writes").
Two formats are accepted:

* ``"zhbert"``: train columns (``steps``, ``mlm_acc``, ``loss``, ``lr``, ...) plus an optional
  held-out series (``eval_steps``, ``eval_mlm_acc``, ``eval_loss``, ``eval_stderr``) and ``meta``;
* ``"original"``: the original study's subset ``{"steps", "mlm_acc", "nsp_acc", "loss", "lr"}``.

``History.train`` and ``History.eval`` are data frames whose columns carry the file's key names
(the eval frame's step column is ``eval_steps``). Rows holding a non-finite value in a core
column are dropped (counted, with a warning) when they are few, and the file is refused when
they are many: a history that is mostly NaN is broken.

Accuracies are fractions in [0, 1]. A series whose median is above 1 is read as percentages
(divided by 100, with a warning; :func:`in_percent`): the series as a whole decides, so one
stray value above 1 in a fraction series is refused, naming its key, step and value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zhbert import history_schema as H
from zhbert.errors import UserError
from zhbert.io_utils import read_json

MIN_POINTS = 10
#: History.format of the two formats read here (the others come from zhbert.analysis.sources)
NATIVE_FORMATS = ("zhbert", "original")
#: refuse a file when more than this fraction of its rows hold NaN/inf
MAX_NONFINITE_FRACTION = 0.10


@dataclass
class History:
    """A validated history: ``train`` (one row per logged step) and optional ``eval`` frames."""

    train: pd.DataFrame
    eval: pd.DataFrame | None
    meta: dict
    path: Path
    dropped_nonfinite: int = 0
    format: str = "zhbert"
    warnings: list[str] = field(default_factory=list)
    #: the series chosen from another tool's log or by ``--metric`` (:mod:`zhbert.analysis.sources`);
    #: None: this project's masked-LM accuracy, chosen by :func:`select_series`
    metric_series: Series | None = None

    @property
    def native(self) -> bool:
        """Whether the file is this project's history or the original study's."""
        return self.format in NATIVE_FORMATS


@dataclass
class Series:
    """The series one analysis runs on: ``kind`` is ``"eval"`` or ``"train"``.

    ``acc`` holds its values (the name is the accuracy's, kept for the callers; :attr:`values`
    says the same): accuracy fractions when ``higher_is_better``, else the raw values of a
    lower-is-better metric (loss, perplexity) named ``metric``.
    """

    kind: str
    steps: np.ndarray
    acc: np.ndarray
    metric: str = H.MLM_ACC
    higher_is_better: bool = True

    @property
    def n(self) -> int:
        """Number of points."""
        return int(self.steps.size)

    @property
    def values(self) -> np.ndarray:
        """The series' values (the same array as ``acc``)."""
        return self.acc

    @property
    def best_index(self) -> int:
        """Index of the best point in the metric's direction (the first one on a tie).

        >>> Series("eval", np.array([1., 2, 3]), np.array([3., 1, 2]), "loss", False).best_index
        1
        """
        return int(np.argmax(self.acc) if self.higher_is_better else np.argmin(self.acc))


def _column(path: Path, name: str, value: Any) -> np.ndarray:
    """A JSON list of numbers (``null`` counts as NaN) as float64, or a UserError."""
    if not isinstance(value, list):
        raise UserError(f"{path}: '{name}' must be a list of numbers, got {type(value).__name__}")
    out = np.empty(len(value), dtype=np.float64)
    for i, v in enumerate(value):
        if v is None:
            out[i] = math.nan
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise UserError(f"{path}: '{name}'[{i}] is not a number ({v!r})")
    return out


def _frame(path: Path, data: dict, series: str) -> pd.DataFrame:
    """The frame of one series: every list-valued key of that series; unequal lengths refused."""
    names = [k for k, v in data.items() if k != H.META_KEY and H.series_of(k) == series
             and (isinstance(v, list) or k in H.BY_KEY)]
    cols = {k: _column(path, k, data[k]) for k in names}
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise UserError(f"{path}: {series} columns have unequal lengths ({detail})")
    frame = pd.DataFrame(cols)
    frame.attrs["core"] = [c for c in H.core_keys(series) if c in frame.columns]
    return frame


def _drop_nonfinite(path: Path, frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, int]:
    core = frame.attrs.get("core", list(frame.columns))
    bad = ~np.isfinite(frame[core].to_numpy()).all(axis=1)
    n_bad = int(bad.sum())
    if n_bad and n_bad > MAX_NONFINITE_FRACTION * len(frame):
        raise UserError(f"{path}: {n_bad} of {len(frame)} {label} rows hold NaN/inf "
                        f"(more than {MAX_NONFINITE_FRACTION:.0%}); refusing to analyse")
    return frame.loc[~bad].reset_index(drop=True), n_bad


def _check_steps(path: Path, frame: pd.DataFrame, series: str, minimum: int) -> None:
    if len(frame) < minimum:
        raise UserError(f"{path}: only {len(frame)} {series} points; at least {minimum} are needed")
    steps = frame[H.step_key(series)].to_numpy()
    if steps.size and steps.min() < 0:
        raise UserError(f"{path}: {series} steps must not be negative (found {steps.min():g})")
    diffs = np.diff(steps)
    if (diffs <= 0).any():
        i = int(np.argmax(diffs <= 0))
        raise UserError(f"{path}: {series} steps are not strictly increasing (step {steps[i]:g} "
                        f"is followed by {steps[i + 1]:g}; two runs concatenated?)")


def in_percent(values: np.ndarray) -> bool:
    """Whether a series of accuracies is given in percent: its median is above 1.

    The series as a whole decides, never one value: a fraction series with one stray value
    above 1 stays a fraction series (and that value is refused), while a percent series whose
    first points lie below 1 % is still read as percentages.

    >>> in_percent(np.array([0.2, 0.3, 1.2])), in_percent(np.array([0.5, 12.5, 40.0]))
    (False, True)
    """
    return bool(values.size) and float(np.median(values)) > 1


def _check_range(path: Path, frame: pd.DataFrame, series: str, percent: bool) -> None:
    """UserError naming the file, key, step and value of the first accuracy out of range:
    [0, 100] for a percent series, [0, 1] for a fraction series."""
    key = H.acc_key(series)
    check_accuracy_range(path, key, frame[H.step_key(series)].to_numpy(), frame[key].to_numpy(),
                         series, percent)


def check_accuracy_range(path: Path, key: str, steps: np.ndarray, acc: np.ndarray, series: str,
                         percent: bool) -> None:
    """:func:`_check_range` on arrays: ``key`` names the accuracy, ``series`` its kind."""
    top = 100.0 if percent else 1.0
    bad = np.flatnonzero((acc < 0) | (acc > top))
    if not bad.size:
        return
    i = int(bad[0])
    step = steps[i]
    more = f" ({bad.size - 1} more out of range)" if bad.size > 1 else ""
    median = float(np.median(acc))
    why = (f"read as percentages (their median {median:.4g} is above 1); accuracies must be "
           f"fractions in [0, 1] or percentages in [0, 100]" if percent else
           f"fractions (their median {median:.4g} is not above 1, so they are not read as "
           f"percentages)")
    raise UserError(f"{path}: {key} at step {step:g} is {acc[i]:g}{more}, outside "
                    f"[0, {top:g}]: the {series} accuracies are {why}")


def _percent_to_fraction(path: Path, frame: pd.DataFrame, series: str) -> str | None:
    """Check the accuracies' range and read a percent series (:func:`in_percent`) as fractions,
    with its NSP accuracy and standard error; returns the warning, or None.

    An accuracy out of range (above 1 or negative in a fraction series, above 100 or negative
    in a percent series) is a UserError naming its key, step and value.

    >>> f = pd.DataFrame({"steps": [1, 2], "mlm_acc": [12.5, 40.0]})
    >>> _percent_to_fraction(Path("h.json"), f, "train"), f["mlm_acc"].tolist()
    ('h.json: train accuracies 12.5..40 read as percentages (divided by 100)', [0.125, 0.4])
    """
    acc = frame[H.acc_key(series)].to_numpy()
    percent = in_percent(acc)
    _check_range(path, frame, series, percent)
    if not percent:
        return None
    scaled = [H.acc_key(series), H.EVAL_STDERR] if series == "eval" else [H.acc_key(series)]
    nsp = H.EVAL_NSP_ACC if series == "eval" else H.NSP_ACC
    if nsp in frame.columns and in_percent(frame[nsp].dropna().to_numpy()):
        scaled.append(nsp)  # an NSP column is scaled only when it is in percent too
    for key in scaled:
        if key in frame.columns:
            frame[key] = frame[key] / 100.0
    return (f"{path}: {series} accuracies {acc.min():g}..{acc.max():g} read as percentages "
            f"(divided by 100)")


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, with its article (``a list``, ``a string``)."""
    names = {bool: "a boolean", str: "a string", list: "a list", int: "a number",
             float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


def _meta(path: Path, data: dict, warnings: list[str]) -> dict:
    """The file's ``meta`` object; a ``meta`` (or ``meta.config``) that is not an object is
    ignored with a warning, so the analysis falls back to the columns (lr, steps) alone.
    ``null`` counts as absent."""
    meta = data.get(H.META_KEY)
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        warnings.append(f"{path}: '{H.META_KEY}' is {_json_type(meta)}, not an object; "
                        f"ignored (the run's settings are read from the columns alone)")
        return {}
    config = meta.get(H.META_CONFIG)
    if config is not None and not isinstance(config, dict):
        warnings.append(f"{path}: '{H.META_KEY}.{H.META_CONFIG}' is {_json_type(config)}, "
                        f"not an object; ignored (the lr schedule and the planned last step are "
                        f"read from the columns)")
        return {k: v for k, v in meta.items() if k != H.META_CONFIG}
    return meta


def load_history(path: str | Path) -> History:
    """Read, validate and clean a history JSON file; raise ``UserError`` on bad input."""
    path = Path(path)
    data = read_json(path, "a history JSON file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with '{H.STEPS}' and '{H.MLM_ACC}'")
    missing = [k for k in (H.STEPS, H.MLM_ACC) if k not in data]
    if missing:
        raise UserError(f"{path}: missing key(s) {', '.join(missing)}")
    train = _frame(path, data, "train")
    train, dropped = _drop_nonfinite(path, train, "train")
    warnings = [w for w in [_percent_to_fraction(path, train, "train")] if w]
    _check_steps(path, train, "train", MIN_POINTS)
    if dropped:
        warnings.append(f"{path}: dropped {dropped} train row(s) holding NaN/inf")
    evaluation = None
    if H.EVAL_STEPS in data or H.EVAL_MLM_ACC in data:
        for key in (H.EVAL_STEPS, H.EVAL_MLM_ACC):
            if key not in data:
                raise UserError(f"{path}: missing key {key} (the other eval column is present)")
        evaluation = _frame(path, data, "eval")
        evaluation, dropped_eval = _drop_nonfinite(path, evaluation, "eval")
        if dropped_eval:
            warnings.append(f"{path}: dropped {dropped_eval} eval row(s) holding NaN/inf")
        dropped += dropped_eval
        percent = _percent_to_fraction(path, evaluation, "eval")
        warnings += [percent] if percent else []
        _check_steps(path, evaluation, "eval", 1)
    meta = _meta(path, data, warnings)
    is_original = set(data) <= H.ORIGINAL_KEYS
    return History(train=train, eval=evaluation, meta=meta, path=path, dropped_nonfinite=dropped,
                   format="original" if is_original else "zhbert", warnings=warnings)


def select_series(history: History, kind: str = "auto") -> Series:
    """Choose the accuracy series: ``"eval"`` (held-out), ``"train"``, or ``"auto"``.

    ``"auto"`` takes the held-out series when it has at least ``MIN_POINTS`` points, else the
    training-batch series; asking for ``"eval"`` when it is absent or too short is a UserError.
    A history whose series was chosen by metric (``history.metric_series``) gives that one;
    asking it for the other kind is a UserError.
    """
    if kind not in ("auto", "eval", "train"):
        raise UserError(f"series must be auto, eval or train (got {kind!r})")
    chosen = history.metric_series
    if chosen is not None:
        if kind not in ("auto", chosen.kind):
            raise UserError(f"{history.path}: the metric {chosen.metric} is a {chosen.kind} "
                            f"series, not {kind}; choose the series with --metric")
        return chosen
    ev = history.eval
    has_eval = ev is not None and len(ev) >= MIN_POINTS
    if kind == "eval" and not has_eval:
        n = 0 if ev is None else len(ev)
        raise UserError(f"{history.path}: no held-out series with at least {MIN_POINTS} points "
                        f"(found {n}); use --series train")
    chosen = "eval" if (kind == "eval" or (kind == "auto" and has_eval)) else "train"
    frame = ev if chosen == "eval" else history.train
    return Series(kind=chosen, steps=frame[H.step_key(chosen)].to_numpy(dtype=np.float64),
                  acc=frame[H.acc_key(chosen)].to_numpy(dtype=np.float64),
                  metric=H.acc_key(chosen))
