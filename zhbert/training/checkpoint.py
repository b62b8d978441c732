"""Checkpoints ``RUN/checkpoints/step_<N>/``: weights, resolved config, training state, tokenizer.

Each checkpoint is written into a temporary directory and renamed (``zhbert.io_utils.atomic_dir``)
so a crash never leaves a half-written ``step_<N>``. ``state.pt`` holds only tensors, dicts,
lists, numbers and strings, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from zhbert.config import SECTIONS
from zhbert.errors import UserError
from zhbert.io_utils import atomic_dir, atomic_write_json

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json")
_STEP_RE = re.compile(r"^step_(\d+)$")


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as ``(step, path)`` sorted by step (temp dirs are ignored)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and (p / "state.pt").is_file() and (p / "model.safetensors").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def _short(exc: BaseException) -> str:
    """An exception as one short line (PyTorch's messages run to several paragraphs)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:120]}" if first else type(exc).__name__


def _safetensors_problem(file: Path) -> str | None:
    """Check the header and that the file holds every byte the header promises."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n)) if 0 < n <= size - 8 else None
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, struct.error, AttributeError, KeyError, TypeError) as exc:
        return f"{file.name} is unreadable ({_short(exc)})"
    expected = 8 + n + max(ends, default=0)
    if expected != size:
        return f"{file.name} is truncated ({size} bytes, its header says {expected})"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from (a damaged or incomplete file), or None."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "config.json is missing"
    except (OSError, ValueError, RecursionError) as exc:
        return f"config.json is unreadable ({_short(exc)})"
    if not isinstance(config, dict):
        return "config.json is not a JSON object"
    wrong = [k for k in SECTIONS if not isinstance(config.get(k, {}), dict)]
    if wrong:
        return f"config.json: section {wrong[0]!r} is not a JSON object"
    problem = _safetensors_problem(path / "model.safetensors")
    if problem:
        return problem
    try:  # mmap: checks the archive without reading the tensors
        torch.load(path / "state.pt", map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # any failure means: not a readable training state
        return f"state.pt is unreadable ({_short(exc)})"
    return None


def latest_checkpoint(run_dir: str | Path, on_skip=None) -> Path | None:
    """The newest checkpoint that reads; damaged newer ones are reported to ``on_skip``."""
    for _, path in reversed(list_checkpoints(run_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        if on_skip is not None:
            on_skip(path, problem)
    return None


# ----------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """torch/CUDA/numpy/python RNG state as plain data (weights_only-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(np_state[0]), "keys": [int(x) for x in np_state[1]],
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": [int(x) for x in py_state[1]],
                   "gauss_next": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


# ----------------------------------------------------------------------------- save / load


def save_checkpoint(run_dir: str | Path, step: int, model: nn.Module, config: dict[str, Any],
                    state: dict[str, Any], tokenizer_dir: str | Path) -> Path:
    """Write ``step_<step>`` atomically; ``model`` must be the uncompiled, unwrapped module."""
    final = checkpoint_root(run_dir) / f"step_{step}"
    try:
        with atomic_dir(final) as tmp:
            save_model(model, str(tmp / "model.safetensors"))
            atomic_write_json(tmp / "config.json", {**config, "step": step})
            torch.save(state, tmp / "state.pt")
            for name in TOKENIZER_FILES:
                src = Path(tokenizer_dir) / name
                if src.is_file():
                    shutil.copyfile(src, tmp / name)
    except (OSError, RuntimeError) as exc:  # a full disk surfaces as either
        raise UserError(f"cannot write checkpoint {final}: {_short(exc)} (disk full?); the "
                        "previous checkpoints are intact, free space and --resume") from None
    return final


def rotate(run_dir: str | Path, keep_last: int, milestones: list[int]) -> list[Path]:
    """Delete all but the last ``keep_last`` checkpoints and the milestone steps."""
    found = list_checkpoints(run_dir)
    keep = {s for s, _ in found[-keep_last:]} | set(milestones)
    removed = []
    for s, p in found:
        if s not in keep:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def clean_partial(run_dir: str | Path) -> None:
    """Remove temporary directories left by a crash during a checkpoint write or final export."""
    root = checkpoint_root(run_dir)
    leftovers = [p for p in root.iterdir() if p.name.startswith(".")] if root.is_dir() else []
    leftovers += [p for p in Path(run_dir).glob(".final.*") if p.name.endswith((".tmp", ".old"))]
    for p in leftovers:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def load_state(path: Path) -> dict[str, Any]:
    """``state.pt`` of checkpoint ``path`` (tensors and plain data only)."""
    try:
        return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: a user-fixable problem
        raise UserError(f"cannot read checkpoint state {path / 'state.pt'}: {_short(exc)}") from None


def load_weights(model: nn.Module, path: Path) -> None:
    """Load ``model.safetensors`` into ``model``; a shape/key mismatch is a UserError."""
    file = path / "model.safetensors"
    try:
        missing, unexpected = load_model(model, str(file), strict=False)
    except (RuntimeError, ValueError, OSError) as exc:
        msg = " ".join(str(exc).split())[:300]
        raise UserError(f"checkpoint {file} does not fit the configured model: {msg}") from None
    if missing or unexpected:
        raise UserError(f"checkpoint {file} does not fit the configured model "
                        f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")
