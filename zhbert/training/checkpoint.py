"""Checkpoints ``RUN/checkpoints/step_<N>/``: weights, resolved config, training state, tokenizer.

Each checkpoint is written into a temporary directory and renamed (``zhbert.io_utils.atomic_dir``)
so a crash never leaves a half-written ``step_<N>``. ``state.pt`` holds only tensors, dicts,
lists, numbers and strings, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

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


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


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
    with atomic_dir(final) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        atomic_write_json(tmp / "config.json", {**config, "step": step})
        torch.save(state, tmp / "state.pt")
        for name in TOKENIZER_FILES:
            src = Path(tokenizer_dir) / name
            if src.is_file():
                shutil.copyfile(src, tmp / name)
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
    """Remove temporary directories left by a crash during a checkpoint write."""
    root = checkpoint_root(run_dir)
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".") and p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


def load_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file: a user-fixable problem
        raise UserError(f"cannot read checkpoint state {path / 'state.pt'}: {exc}") from None


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
