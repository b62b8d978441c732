"""A set of named training runs on the demo corpus, each trained once and reused while its
settings hold: the shared part of ``calibration_runs.py`` and ``demo_tuning.py``.

A run is ``main_train.py --preset PRESET --run-dir RUNS/NAME --set ... --overwrite``; it is
reused when its history finished ``run.max_steps`` with the same config (keys the trainer takes
from the corpus excepted), and its history is then copied into a committed folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from zhbert import history_schema as H  # noqa: E402
from zhbert.config import build_config, config_changes  # noqa: E402
from zhbert.errors import UserError  # noqa: E402
from zhbert.io_utils import atomic_write_bytes, read_json  # noqa: E402

#: config keys the trainer takes from the corpus: not settings
CORPUS_KEYS = {"model.vocab_size", "model.pad_token_id"}


def train_command(preset: str, run_dir: Path, overrides: list[str]) -> list[str]:
    """The ``main_train.py`` command of one run (from scratch: ``--overwrite``)."""
    cmd = [sys.executable, "main_train.py", "--preset", preset, "--run-dir", str(run_dir)]
    for item in overrides:
        cmd += ["--set", item]
    return cmd + ["--overwrite"]


def shown(cmd: list[str]) -> str:
    """The command as a user types it (``python`` for this interpreter)."""
    return " ".join(["python", *cmd[1:]])


def finished(run_dir: Path, preset: str, overrides: list[str]) -> str | None:
    """Why the run in ``run_dir`` cannot be reused (None when it finished with these settings)."""
    path = run_dir / H.HISTORY_NAME
    if not path.is_file():
        return "no history yet"
    h = read_json(path, "a training history", obj=True)
    saved = h.get(H.META_KEY, {}).get(H.META_CONFIG)
    if not isinstance(saved, dict):
        return "its history has no meta.config"
    wanted = build_config(preset, None, overrides).to_dict()
    changes = [c for c in config_changes(saved, wanted) if c.split(":", 1)[0] not in CORPUS_KEYS]
    if changes:
        return "other settings: " + "; ".join(changes)
    steps = h.get(H.STEPS) or [0]
    if steps[-1] < wanted["run"]["max_steps"]:
        return f"stopped at step {steps[-1]} of {wanted['run']['max_steps']}"
    return None


def ensure_corpus(corpus: Path) -> None:
    """Prepare the demo corpus when it is missing."""
    if corpus.exists() and not corpus.is_dir():
        raise UserError(f"--corpus {corpus}: is a file, expected a prepared corpus directory")
    if (corpus / "dataset_stats.json").exists():
        return
    cmd = [sys.executable, "examples/prepare_dataset.py", "--source", "demo", "--out-dir",
           str(corpus)]
    print("==> " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        raise UserError(f"preparing the demo corpus in {corpus} failed")


def train_run(name: str, preset: str, run_dir: Path, overrides: list[str], redo: bool) -> dict:
    """Train one run unless a finished one with these settings is there; its record."""
    cmd = train_command(preset, run_dir, overrides)
    why = "--redo" if redo else finished(run_dir, preset, overrides)
    if why is None:
        print(f"==> [{name}] reusing finished run {run_dir}", flush=True)
        return {"command": shown(cmd), "reused": True, "wall_s": None}
    print(f"==> [{name}] ({why})\n{shown(cmd)}", flush=True)
    start = time.perf_counter()
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        raise UserError(f"training {name} failed (command above)")
    return {"command": shown(cmd), "reused": False, "wall_s": round(time.perf_counter() - start, 1)}


def copy_history(run_dir: Path, dst: Path) -> Path:
    """Copy the run's history to ``dst`` (atomically)."""
    atomic_write_bytes(dst, (run_dir / H.HISTORY_NAME).read_bytes())
    return dst
