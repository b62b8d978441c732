"""Readers of other tools' training logs: a file's content -> *scalars* (name -> steps, values).

Used by :mod:`zhbert.analysis.sources`, which chooses the analysed series; see there for the
formats. :func:`read_scalars` tells the format by the content (an event file's first record, a
JSON object's keys, else a CSV header), never by the file name.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from zhbert import history_schema as H
from zhbert.errors import UserError
from zhbert.io_utils import read_json

Scalars = dict[str, tuple[np.ndarray, np.ndarray]]

#: History.format of each foreign format
TRAINER_STATE, TENSORBOARD = "trainer_state", "tensorboard"
CSV_WANDB, CSV_STEP_VALUE, CSV_LIGHTNING, CSV_TABLE = ("csv_wandb", "csv_step_value",
                                                       "csv_lightning", "csv_table")
LABELS = {TRAINER_STATE: "trainer_state.json", TENSORBOARD: "TensorBoard log",
          CSV_WANDB: "W&B CSV export", CSV_STEP_VALUE: "Step,Value CSV export",
          CSV_LIGHTNING: "Lightning metrics.csv", CSV_TABLE: "CSV table"}
#: Hugging Face Trainer: the list of log entries and each entry's step
HF_LOG, HF_STEP = "log_history", "step"
#: CSV step columns (compared lower-cased), in order of preference
CSV_STEP_NAMES = ("step", "steps", "global_step", "trainer/global_step", "_step", "iteration",
                  "iter")
#: W&B: a metric column is "<run> - <metric>"; these suffixes are its min/max band columns
WANDB_SEPARATOR, WANDB_BANDS = " - ", ("__MIN", "__MAX")
#: an event file's first record names the event format
EVENT_MAGIC = b"brain.Event:"


def _collect(points: dict[str, list[tuple[float, float]]]) -> Scalars:
    return {k: (np.array([p[0] for p in v], np.float64), np.array([p[1] for p in v], np.float64))
            for k, v in points.items()}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_trainer_state(path: Path, data: dict) -> Scalars:
    """Every numeric key of ``log_history`` as a series over the entries' ``step``."""
    log = data.get(HF_LOG)
    if not isinstance(log, list):
        raise UserError(f"{path}: '{HF_LOG}' must be a list of log entries")
    points: dict[str, list[tuple[float, float]]] = {}
    for i, entry in enumerate(log):
        if not isinstance(entry, dict) or not _number(entry.get(HF_STEP)):
            raise UserError(f"{path}: {HF_LOG}[{i}] is not a log entry with a numeric "
                            f"'{HF_STEP}'")
        for key, value in entry.items():
            if key != HF_STEP and _number(value):
                points.setdefault(key, []).append((float(entry[HF_STEP]), float(value)))
    return _collect(points)


def _event_files(path: Path) -> dict[str, list[Path]]:
    """Event files under a run directory, by run (its subdirectory; "" for the directory)."""
    from tensorboard.backend.event_processing import io_wrapper

    runs: dict[str, list[Path]] = {}
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            if io_wrapper.IsTensorFlowEventsFile(name):
                run = Path(root).relative_to(path).as_posix()
                runs.setdefault("" if run == "." else run, []).append(Path(root) / name)
    if not runs:
        raise UserError(f"{path}: is a directory, read as a TensorBoard run, but it holds no "
                        f"event files (events.out.tfevents.*); for a history or another log "
                        f"give the file")
    return runs


def _event_scalars(files: list[Path], prefix: str, points: dict) -> None:
    """Add the scalars of one run's event files (TensorBoard's reader, in file order)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    plugin: dict[str, str] = {}
    for f in files:
        try:
            for event in EventFileLoader(str(f)).Load():
                for value in event.summary.value:
                    name = value.metadata.plugin_data.plugin_name
                    kind = plugin.setdefault(value.tag, name) or name
                    if kind != "scalars" or not value.HasField("tensor"):
                        continue
                    x = tensor_util.make_ndarray(value.tensor)
                    if x.size == 1:
                        points.setdefault(prefix + value.tag, []).append(
                            (float(event.step), float(x.reshape(-1)[0])))
        except Exception as e:  # a corrupt record: TensorBoard's reader raises several kinds
            raise UserError(f"{f}: not a readable TensorBoard event file ({e})") from None


def read_tensorboard(path: Path) -> Scalars:
    """The scalars of a run directory (tags of a subdirectory prefixed ``sub/``) or event file."""
    runs = _event_files(path) if path.is_dir() else {"": [path]}
    points: dict[str, list[tuple[float, float]]] = {}
    for run, files in runs.items():
        _event_scalars(files, f"{run}/" if run else "", points)
    if not points:
        raise UserError(f"{path}: the TensorBoard log holds no scalars")
    return _collect(points)


def _csv_kind(header: list[str]) -> str:
    if any(WANDB_SEPARATOR in h or h.endswith(WANDB_BANDS) for h in header):
        return CSV_WANDB
    lowered = [h.lower() for h in header]
    if "value" in lowered and "step" in lowered and len(header) <= 3:
        return CSV_STEP_VALUE
    return CSV_LIGHTNING if "epoch" in lowered else CSV_TABLE


def _float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_csv(path: Path, text: str) -> tuple[str, Scalars]:
    """The CSV's kind and its numeric columns as series over its step column; an empty cell is
    a point not logged on that row (Lightning), a column holding text is left out."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise UserError(f"{path}: not a recognised log (no JSON object, no TensorBoard event "
                        f"file, and not a CSV table with a header and data rows)")
    header = [h.strip() for h in rows[0]]
    by_lower = {h.lower(): i for i, h in enumerate(header)}
    step_names = [n for n in CSV_STEP_NAMES if n in by_lower]
    if not step_names:
        raise UserError(f"{path}: CSV without a step column (one of {', '.join(CSV_STEP_NAMES)}); "
                        f"its columns: {', '.join(header)}")
    at = by_lower[step_names[0]]
    kind = _csv_kind(header)
    points: dict[str, list[tuple[float, float]]] = {}
    text_cols: set[int] = set()
    for line, row in enumerate(rows[1:], start=2):
        if at >= len(row) or not row[at].strip():
            continue
        step = _float(row[at])
        if step is None:
            raise UserError(f"{path}: line {line}: step {row[at]!r} is not a number")
        for i, cell in enumerate(row[:len(header)]):
            if i == at or i in text_cols or not cell.strip() or header[i].endswith(WANDB_BANDS):
                continue
            value = _float(cell)
            if value is None:
                text_cols.add(i)
                points.pop(header[i], None)
                continue
            points.setdefault(header[i], []).append((step, value))
    points = {k: v for k, v in points.items() if k.lower() not in CSV_STEP_NAMES}
    return kind, _collect(points)


def read_scalars(path: Path) -> tuple[str, Scalars | None]:
    """``(format, scalars)`` of a log; scalars None for this project's (or the original
    study's) history, which :func:`load_history` reads."""
    if path.is_dir():
        return TENSORBOARD, read_tensorboard(path)
    if not path.is_file():
        raise UserError(f"{path}: file or directory not found (a training log)")
    head = path.read_bytes()[:4096]
    if not head.strip():
        raise UserError(f"{path}: the file is empty")
    if EVENT_MAGIC in head[:128]:
        return TENSORBOARD, read_tensorboard(path)
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        data = read_json(path, "a JSON log")
        if isinstance(data, dict) and HF_LOG in data:
            return TRAINER_STATE, read_trainer_state(path, data)
        if isinstance(data, dict) and H.STEPS in data:
            return "history", None
        keys = ", ".join(list(data)[:8]) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: a JSON file that is neither a training history ('{H.STEPS}', "
                        f"'{H.MLM_ACC}') nor a trainer_state.json ('{HF_LOG}'); it holds: {keys}")
    if b"\0" in head:
        raise UserError(f"{path}: not a recognised log (binary, and not a TensorBoard event file)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a recognised log (not UTF-8 text)") from None
    return read_csv(path, text)
