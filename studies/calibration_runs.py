#!/usr/bin/env python
"""Calibration of the forecast intervals over every history the project has, from one command.

    python studies/calibration_runs.py                # train (or reuse) the runs, calibrate
    python studies/calibration_runs.py --skip-train   # calibrate the committed copies only
    python studies/calibration_runs.py --skip-train --update-docs docs/ANALYSIS.md
    python studies/calibration_runs.py --dry-run      # print the training commands, stop

1. Trains three short CPU runs on the demo corpus with different schedules (``RUNS``: smoke
   preset widened to hidden 128, 2 layers, seq 64, batch 32, sinusoidal positions, 15 % masks,
   a held-out evaluation every 1/40 of the run), one at a time, each with the printed
   ``main_train.py`` command, into ``--runs-dir``. A finished run with the same settings is
   reused; anything else there is retrained from scratch. Training is deterministic (every batch
   a pure function of seed and index, one CPU thread), so a rerun gives the same histories.
2. Copies each run's history into ``--out-dir`` (committed), beside the earlier BERT demo's
   history (``git show e8cbc7e:results/training_history.json``, written once).
3. Backtests every history (``studies/forecast_calibration.py``'s functions): the short runs,
   the earlier BERT demo, the committed modern demo (``results/training_history.json``), the
   study's original-recipe arm (``results/study/history_original.json``) and ``--synthetic``
   histories with known truth; writes ``OUT/calibration.json``: every row, the (source, series,
   cut) table, a compact per-source table, and pooled figures over all histories and per group.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the repository root: `studies` (and zhbert without pip install -e)
    sys.path.insert(0, str(ROOT))

from studies import forecast_calibration as fc  # noqa: E402
from studies import run_set as rs  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import (  # noqa: E402
    atomic_write_bytes,
    atomic_write_json,
    replace_marked_block,
)

PRESET = "smoke"
#: settings every short run shares (on top of the smoke preset)
SHARED = ["model.hidden_size=128", "model.num_heads=2", "model.intermediate_size=256",
          "model.max_position_embeddings=64", "model.position_init=sinusoidal",
          "model.dropout=0.0", "model.attention_dropout=0.0", "data.seq_len=64",
          "data.batch_size=32", "data.mask_rate=0.15", "data.eval_min_masked=4000",
          "data.eval_max_sequences=1024", "optim.grad_accum=1", "run.log_interval=5",
          "run.save_interval=100000", "run.milestones=[]", "run.num_threads=1",
          "run.tensorboard=false", "run.export_final=false", "run.progress=false"]
#: the short runs: schedule, peak lr, warmup steps, steps, seed
RUNS: dict[str, dict] = {
    "run_a": {"schedule": "cosine", "lr": "3e-3", "warmup": 60, "steps": 1200, "seed": 42},
    "run_b": {"schedule": "linear", "lr": "4e-3", "warmup": 40, "steps": 480, "seed": 1},
    "run_c": {"schedule": "constant", "lr": "2e-3", "warmup": 40, "steps": 480, "seed": 2},
}
#: evaluations per run (run.eval_interval = steps / EVALS)
EVALS = 40
BERT_DEMO_COMMIT = "e8cbc7e"
BERT_DEMO_NAME = "bert_demo_history.json"
#: committed histories calibrated as they are: (label, group, path relative to the repository)
COMMITTED = [("modern demo", "demo and study", "results/training_history.json"),
             ("study original arm", "demo and study", "results/study/history_original.json")]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    rs.add_args(p, names=list(RUNS), names_flag="--runs", runs_dir="runs/calibration",
                out_dir="results/calibration", record="calibration.json")
    fc.add_calibration_args(p, synthetic=60)
    p.add_argument("--update-docs", type=Path, default=None, metavar="DOC.md",
                   help="also write both tables into DOC.md's calibration-sources and "
                        "calibration-pooled blocks (docs/ANALYSIS.md)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- training


def run_overrides(name: str, corpus: Path) -> list[str]:
    """Every ``--set`` of short run ``name``: corpus, shared settings, then its schedule."""
    r = RUNS[name]
    return [f"data.corpus_dir={corpus}", *SHARED, f"optim.schedule={r['schedule']}",
            f"optim.lr={r['lr']}", f"optim.warmup_steps={r['warmup']}",
            f"run.max_steps={r['steps']}", f"run.eval_interval={r['steps'] // EVALS}",
            f"run.seed={r['seed']}"]


def train_command(name: str, corpus: Path, runs_dir: Path) -> list[str]:
    """The ``main_train.py`` command of short run ``name`` (from scratch: ``--overwrite``)."""
    return rs.train_command(PRESET, runs_dir / name, run_overrides(name, corpus))


# --------------------------------------------------------------------------- histories


def bert_demo_history(out_dir: Path) -> Path:
    """The earlier BERT demo's history in ``out_dir``, written from git once when missing."""
    path = out_dir / BERT_DEMO_NAME
    if not path.is_file():
        spec = f"{BERT_DEMO_COMMIT}:results/training_history.json"
        res = subprocess.run(["git", "show", spec], cwd=ROOT, capture_output=True)
        if res.returncode != 0:
            raise UserError(f"{path} is missing and `git show {spec}` failed")
        atomic_write_bytes(path, res.stdout)
    return path


def run_label(name: str) -> str:
    """``run_a (cosine, lr 3e-3, 1200 steps)``."""
    r = RUNS[name]
    return f"{name} ({r['schedule']}, lr {r['lr']}, {r['steps']} steps)"


def collect_histories(names: list[str], out_dir: Path) -> list[tuple[str, str, Path]]:
    """``(label, group, path)`` of every history to calibrate; UserError for a missing one."""
    found = [(run_label(n), "short runs", out_dir / f"{n}_history.json") for n in names]
    found.append(("BERT demo (earlier)", "demo and study", bert_demo_history(out_dir)))
    found += [(label, group, ROOT / rel) for label, group, rel in COMMITTED]
    for _, _, path in found:
        if not path.is_file():
            raise UserError(f"{path}: history not found (train the runs first, without "
                            f"--skip-train)")
    return found


# --------------------------------------------------------------------------- tables


def _cell(rs: list[dict]) -> str:
    """``covered/forecasts, MAE`` of one (source, series, cut), or why there is no forecast."""
    done = [r for r in rs if r["covered"] is not None]
    if not done:
        return f"— (0/{len(rs)} forecast)"
    mae = sum(abs(r["error"]) for r in done) / len(done) * 100
    return f"{sum(r['covered'] for r in done)}/{len(done)}, {mae:.1f}"


def source_table(rows: list[dict], cuts) -> list[dict]:
    """One line per (source, series): per cut ``covered/forecasts, MAE`` and the pooled figures."""
    sources = list(dict.fromkeys(r["source"] for r in rows))  # histories in the order given
    synthetic = sorted({r["source"] for r in rows if r.get("group") == "synthetic"})
    order = [s for s in sources if s not in synthetic] + synthetic
    keys = [(s, series) for s in order for series in ("train", "eval")
            if any(r["source"] == s and r["series"] == series for r in rows)]
    out = []
    for source, series in keys:
        rs = [r for r in rows if r["source"] == source and r["series"] == series]
        out.append({"source": source, "series": series, "group": rs[0].get("group"),
                    "cuts": {f"{q:.0%}": _cell([r for r in rs if abs(r["cut"] - q) < 1e-9])
                             for q in cuts},
                    **fc.pooled(rs)})
    return out


def _num(v, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def source_markdown(table: list[dict], cuts) -> str:
    """The docs' per-source table."""
    heads = [f"{q:.0%} cut" for q in cuts]
    lines = ["| source | series | " + " | ".join(heads) + " | coverage | median width | MAE |",
             "|---|---|" + "---|" * (len(heads) + 3)]
    for t in table:
        lines.append(f"| {t['source']} | {t['series']} | " + " | ".join(t["cuts"].values())
                     + f" | {t['n_covered']}/{t['n_forecasts']} | "
                     f"{_num(t['median_width_points'], '.1f')} | {_num(t['mae_points'], '.2f')} |")
    return "\n".join(lines)


def group_pooled(rows: list[dict]) -> dict[str, dict]:
    """Pooled figures over every history, the real ones, and each group."""
    groups = {"all": rows, "real": [r for r in rows if r["group"] != "synthetic"]}
    for g in dict.fromkeys(r["group"] for r in rows):
        groups[g] = [r for r in rows if r["group"] == g]
    return {g: fc.pooled(rs) for g, rs in groups.items()}


def pooled_markdown(pooled: dict[str, dict]) -> str:
    """The docs' pooled table (cuts of 20 % and later)."""
    lines = ["| histories | intervals covered | coverage | median width | MAE | 50 %-cut "
             "held-out error: mean / worst |", "|---|---|---|---|---|---|"]
    for g, p in pooled.items():
        lines.append(f"| {g} | {p['n_covered']}/{p['n_forecasts']} | "
                     f"{_num(p['coverage_cuts_from_20pct'], '.1%')} | "
                     f"{_num(p['median_width_points'], '.1f')} | {_num(p['mae_points'], '.2f')} | "
                     f"{_num(p['mae_50pct_eval_points'], '.2f')} / "
                     f"{_num(p['max_abs_error_50pct_eval_points'], '.2f')} ({p['n_eval_50pct']}) |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def calibrate(histories: list[tuple[str, str, Path]], args: argparse.Namespace) -> list[dict]:
    """Backtest rows of every history and of the synthetic ones, each tagged with its group."""
    rows = []
    for label, group, path in histories:
        print(f"==> backtesting {label}: {_rel(path)}", flush=True)
        rows += [{**r, "group": group, "history": _rel(path)}
                 for r in fc.history_rows(path, args.cuts, args.n_boot, source=label)]
    rows += [{**r, "group": "synthetic"}
             for r in fc.synthetic_rows(args.synthetic, args.seed, args.cuts, args.n_boot)]
    return rows


def _rel(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or reuse) the short runs, then calibrate and write calibration.json."""
    args = parse_args(argv)
    if not all(0 < c < 1 for c in args.cuts):
        raise UserError(f"--cuts must be fractions in (0, 1) (got {args.cuts})")
    if args.synthetic < 0 or args.n_boot < 10:
        raise UserError("--synthetic must be >= 0 and --n-boot >= 10")
    rs.check_dirs(args)
    if args.dry_run:
        for name in args.runs:
            print(rs.shown(train_command(name, args.corpus, args.runs_dir)))
        return 0
    start = time.perf_counter()
    runs, _ = rs.train_set(args, args.runs, PRESET, lambda n: run_overrides(n, args.corpus),
                           what="the committed calibration")
    rs.keep_wall_times(runs, rs.previous_record(args.out_dir / "calibration.json"))
    histories = collect_histories(args.runs, args.out_dir)
    t0 = time.perf_counter()
    rows = calibrate(histories, args)
    calib_s = round(time.perf_counter() - t0, 1)
    table, compact, pooled = fc.summarise(rows), source_table(rows, args.cuts), group_pooled(rows)
    print(source_markdown(compact, args.cuts) + "\n\n" + pooled_markdown(pooled))
    atomic_write_json(args.out_dir / "calibration.json", {
        "command": "python studies/calibration_runs.py",
        "settings": {"cuts": args.cuts, "n_boot": args.n_boot, "synthetic": args.synthetic,
                     "seed": args.seed},
        "runs": runs, "histories": [{"source": s, "group": g, "path": _rel(p)}
                                    for s, g, p in histories],
        "pooled": pooled, "source_table": compact, "table": table,
        "calibration_s": calib_s, "total_s": round(time.perf_counter() - start, 1),
        "rows": rows})
    print(f"\nwrote {args.out_dir / 'calibration.json'} (calibration {calib_s:.0f} s)")
    if args.update_docs is not None:
        replace_marked_block(args.update_docs, "calibration-sources",
                             source_markdown(compact, args.cuts))
        replace_marked_block(args.update_docs, "calibration-pooled", pooled_markdown(pooled))
    return 0


if __name__ == "__main__":
    run_cli(main)
