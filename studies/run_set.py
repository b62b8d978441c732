"""A set of named training runs on the demo corpus, each trained once and reused while its
settings hold, their histories copied into a committed folder: the shared part of
``calibration_runs.py`` and ``demo_tuning.py`` (options, training, provenance, copies).

A run is ``main_train.py --preset PRESET --run-dir RUNS/NAME --set ... --overwrite``; it is
reused when its history finished ``run.max_steps`` with the same config (keys the trainer takes
from the corpus excepted), and its history is then copied into a committed folder.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from zhbert import history_schema as H
from zhbert.config import build_config, config_changes
from zhbert.errors import UserError
from zhbert.io_utils import atomic_write_bytes, read_json
from zhbert.provenance import check_clean, in_results

#: the repository root: the run sets call its main_train.py and examples/prepare_dataset.py
ROOT = Path(__file__).resolve().parents[1]

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
    saved = (h.get(H.META_KEY) or {}).get(H.META_CONFIG)
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


def add_args(p, *, names: list[str], names_flag: str, runs_dir: str, out_dir: str,
             record: str) -> None:
    """The options every run set shares (corpus, folders, which runs, reuse, provenance)."""
    p.add_argument("--corpus", type=Path, default=Path("data/demo"),
                   help="prepared demo corpus (built with examples/prepare_dataset.py when "
                        "missing; default data/demo)")
    p.add_argument("--runs-dir", type=Path, default=Path(runs_dir),
                   help=f"folder for the run directories (default {runs_dir})")
    p.add_argument("--out-dir", type=Path, default=Path(out_dir),
                   help=f"history copies and {record} (default {out_dir})")
    p.add_argument(names_flag, nargs="+", choices=names, default=names,
                   help="which runs to train and use (default all)")
    p.add_argument("--skip-train", action="store_true",
                   help="train nothing: use the history copies already in --out-dir")
    p.add_argument("--redo", action="store_true", help="retrain runs that already finished")
    p.add_argument("--dry-run", action="store_true", help="print the training commands and exit")
    p.add_argument("--allow-dirty", action="store_true",
                   help="write into the repository's results/ from uncommitted code, or with "
                        "histories that record it (warns loudly)")


def check_dirs(args) -> None:
    """``--runs-dir`` and ``--out-dir`` must not be files."""
    for flag, path in (("--runs-dir", args.runs_dir), ("--out-dir", args.out_dir)):
        if path.exists() and not path.is_dir():
            raise UserError(f"{flag} {path}: is a file, expected a directory")


def train_set(args, names: list[str], preset: str, overrides_of, what: str,
              ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Train (or reuse) every run, then copy its history to ``OUT/NAME_history.json``.

    Into the repository's ``results/`` only from committed code: the work tree is checked before
    any training, and every history (which records its own tree) before any copy; all runs train
    before the first copy, since a copy changes a tracked file and would mark the next run's tree
    dirty. ``overrides_of(name)`` gives a run's ``--set`` items. Returns the runs' records
    (command, reused, wall_s, train_s) and their histories.
    """
    committed = in_results(args.out_dir)
    if committed and not args.allow_dirty:
        check_clean({}, False, what=what, ignore=("results",))
    runs = {n: {"command": shown(train_command(preset, args.runs_dir / n, overrides_of(n)))}
            for n in names}
    if not args.skip_train:
        ensure_corpus(args.corpus)
        for n in names:
            runs[n] = train_run(n, preset, args.runs_dir / n, overrides_of(n), args.redo)
    source = {n: (args.out_dir / f"{n}_history.json" if args.skip_train
                  else args.runs_dir / n / H.HISTORY_NAME) for n in names}
    histories = {n: read_json(p, "a training history", obj=True) for n, p in source.items()}
    if committed:
        check_clean({n: h.get(H.META_KEY) for n, h in histories.items()}, args.allow_dirty,
                    what=what, ignore=("results",))
    if not args.skip_train:
        for n in names:
            copy_history(args.runs_dir / n, args.out_dir / f"{n}_history.json")
    for n in names:  # training seconds as the run recorded them (resumes included)
        runs[n]["train_s"] = (histories[n].get(H.ELAPSED_S) or [None])[-1]
    return runs, histories


def previous_record(path: Path) -> dict:
    """The record an earlier call wrote at ``path`` (``{}`` when there is none)."""
    return read_json(path, "a previous record", obj=True) if path.is_file() else {}


def keep_wall_times(runs: dict[str, dict], previous: dict) -> None:
    """A run not trained this time keeps the wall time measured when it was trained (from the
    previous record's ``runs``, when its command is the same)."""
    before = previous.get("runs", {})
    for name, rec in runs.items():
        old = before.get(name, {})
        if rec.get("wall_s") is None and old.get("wall_s") and old.get("command") == rec["command"]:
            rec["wall_s"] = old["wall_s"]


def run_arms(args, preset: str, arms: dict, overrides_of, what: str, record: str, row_of):
    """The tuning sets' main flow: print the commands (``--dry-run``, returns None), or train
    (or reuse) the named arms and merge them with the previous ``record`` in ``--out-dir``: an
    arm not named this time keeps its row and run record. ``arms`` maps a name to
    ``(label, overrides)``, ``row_of(history)`` gives the row's measured part. Returns
    ``(runs, rows)`` in ``arms``' order."""
    check_dirs(args)
    if args.dry_run:
        print("\n".join(shown(train_command(preset, args.runs_dir / n, overrides_of(n)))
                        for n in args.arms))
        return None
    runs, histories = train_set(args, args.arms, preset, overrides_of, what=what)
    old = previous_record(args.out_dir / record)
    keep_wall_times(runs, old)
    rows = {r["arm"]: r for r in old.get("rows", []) if r.get("arm") in arms}
    runs = {**{n: r for n, r in old.get("runs", {}).items() if n in rows}, **runs}
    for n in args.arms:
        rows[n] = {"arm": n, "label": arms[n][0], "overrides": arms[n][1],
                   **row_of(histories[n])}
    return {n: runs[n] for n in arms if n in runs}, [rows[n] for n in arms if n in rows]
