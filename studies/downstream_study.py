#!/usr/bin/env python
"""The downstream study (``make downstream``): how task quality grows along a pretraining run.

Fine-tunes the run's staged checkpoints (``RUN/checkpoints/step_N``: the demo preset's milestones
and its last checkpoint) and the same architecture from random initialisation (step 0) on every
task, with one fixed small budget per task (:data:`BUDGETS`) and several seeds; records every
test score in the run's ``RUN/downstream_scores.json`` (:mod:`zhbert.downstream_schema`), then
analyses them against the pretraining step and the run's held-out MLM accuracy
(:func:`zhbert.analysis.downstream.downstream_analysis`) and draws ``downstream.png``.

    python studies/downstream_study.py                        # make downstream (after make demo)
    python studies/downstream_study.py --dry-run              # list the fine-tunes and stop
    python studies/downstream_study.py --tasks cws --seeds 0 --out-dir /tmp/s --allow-dirty

Every fine-tune runs in one of ``--workers`` worker processes (one torch thread each by default)
that loop over the jobs, so the task data is read once per worker. A finished fine-tune's
result is kept in ``RUN/downstream_study/`` and reused by a later call with the same budget
(``--redo`` runs it again), so an interrupted study resumes. ``--out-dir`` receives
``study.json`` (budgets, jobs, times, the analysis), ``study.md`` (the tables), ``downstream.png``,
and copies of the run's history and scores file, from which the analysis can be redone; under
the repository's ``results/`` only from committed code (``--allow-dirty`` overrides).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert import downstream_schema as S  # noqa: E402
from zhbert import history_schema as H  # noqa: E402
from zhbert.downstream.finetune import FinetuneConfig  # noqa: E402
from zhbert.downstream.record import score_record  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import (  # noqa: E402
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
    replace_marked_block,
)
from zhbert.provenance import check_clean, git_state, in_results  # noqa: E402

#: the fixed fine-tuning budget of each task: FinetuneConfig fields (the same for every
#: checkpoint and seed; the headline fine-tunes of the final model are downstream_headline.py's)
BUDGETS: dict[str, dict] = {
    "ner": dict(train_limit=2000, dev_limit=500, test_limit=1000, epochs=1, lr=1e-3),
    "cws": dict(train_limit=1000, dev_limit=300, test_limit=1000, epochs=1, lr=1e-3),
    "sentiment": dict(train_limit=2000, dev_limit=500, test_limit=1000, epochs=3, lr=3e-4),
}
#: the study's name for its budget in the scores file (``budget`` key)
BUDGET_PREFIX = "study"
JOBS_DIR = "downstream_study"
README_BLOCK = "downstream-study"


def add_worker_args(p: argparse.ArgumentParser) -> None:
    """The options this study and the headline fine-tunes share: how the jobs run and reuse."""
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes fine-tuning side by side (default 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker (default 1)")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32",
                   help="fine-tuning precision; pinned (default fp32) so that a timing probe "
                        "cannot change it between fine-tunes")
    p.add_argument("--redo", action="store_true",
                   help="fine-tune again what an earlier call already did")
    p.add_argument("--allow-dirty", action="store_true",
                   help="write into the repository's results/ from uncommitted code (warns)")


def check_positive(args, *names: str) -> None:
    """UserError for an option among ``names`` below 1."""
    for name in names:
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(args, name)})")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"),
                   help="the pretraining run whose checkpoints are fine-tuned (default runs/demo, "
                        "what make demo writes)")
    p.add_argument("--tasks", nargs="+", default=list(BUDGETS), choices=list(BUDGETS),
                   help="tasks to fine-tune on (default all: %(default)s)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="fine-tuning seeds of every checkpoint (default 0 1 2)")
    p.add_argument("--steps", nargs="+", type=int, default=None,
                   help="pretraining steps to fine-tune (default: the run's milestones, "
                        "run.milestones of its config, else every checkpoint in "
                        "RUN/checkpoints); step 0 is the random init, always included")
    p.add_argument("--out-dir", type=Path, default=Path("results/downstream/study"),
                   help="study.json, study.md, downstream.png and the copies (default "
                        "results/downstream/study)")
    add_worker_args(p)
    p.add_argument("--dry-run", action="store_true", help="print the fine-tunes and stop")
    p.add_argument("--update-readme", action="store_true",
                   help="rewrite README.md's study block from the result")
    p.add_argument("--n-boot", type=int, default=2000,
                   help="bootstrap resamples of the Spearman interval (default 2000)")
    return p.parse_args(argv)


def run_checkpoints(run: Path) -> dict[int, Path]:
    """``{step: RUN/checkpoints/step_N}`` of every checkpoint the run kept.

    >>> run_checkpoints(Path("/nonexistent"))
    Traceback (most recent call last):
    ...
    zhbert.errors.UserError: /nonexistent: no checkpoints (RUN/checkpoints/step_N); train the run first (make demo)
    """
    found = {}
    folder = run / "checkpoints"
    for d in sorted(folder.glob("step_*")) if folder.is_dir() else []:
        m = re.fullmatch(r"step_(\d+)", d.name)
        if m and (d / "config.json").is_file():
            found[int(m.group(1))] = d
    if not found:
        raise UserError(f"{run}: no checkpoints (RUN/checkpoints/step_N); train the run first "
                        "(make demo)")
    return dict(sorted(found.items()))


def job_name(task: str, step: int, seed: int) -> str:
    """The file name of one fine-tune's result.

    >>> job_name("ner", 0, 2), job_name("cws", 1500, 0)
    ('ner-random-seed2', 'cws-step1500-seed0')
    """
    return f"{task}-{'random' if step == 0 else f'step{step}'}-seed{seed}"


def job_config(task: str, seed: int, step: int, precision: str) -> FinetuneConfig:
    """The FinetuneConfig of one fine-tune: the task's budget, the seed, random init at step 0."""
    return replace(FinetuneConfig(**BUDGETS[task]), seed=seed, data_seed=0, precision=precision,
                   init="random" if step == 0 else "pretrained")


def run_milestones(history: dict, checkpoints: dict[int, Path]) -> list[int]:
    """The milestone steps of the run's config that it has checkpoints of (all of its
    checkpoints when it names none).

    >>> ck = {100: Path("a"), 250: Path("b"), 300: Path("c")}
    >>> run_milestones({"meta": {"config": {"run": {"milestones": [100, 250, 500]}}}}, ck)
    [100, 250]
    >>> run_milestones({}, ck)
    [100, 250, 300]
    """
    config = (history.get(H.META_KEY) or {}).get(H.META_CONFIG) or {}
    wanted = (config.get("run") or {}).get("milestones") or []
    chosen = [s for s in checkpoints if s in set(wanted)]
    return chosen or list(checkpoints)


def plan(args, checkpoints: dict[int, Path], history: dict) -> list[dict]:
    """Every fine-tune of the study."""
    steps = args.steps if args.steps is not None else run_milestones(history, checkpoints)
    missing = sorted(set(steps) - set(checkpoints) - {0})
    if missing:
        raise UserError(f"--steps {missing}: no such checkpoint in {args.run}/checkpoints "
                        f"(it has {sorted(checkpoints)})")
    points = [0, *sorted(set(steps) - {0})]
    last = checkpoints[max(checkpoints)]  # the random init takes its architecture
    jobs = []
    for task in args.tasks:
        for step in points:
            for seed in args.seeds:
                cfg = job_config(task, seed, step, args.precision)
                jobs.append({"name": job_name(task, step, seed), "task": task, "step": step,
                             "seed": seed, "model": str(checkpoints.get(step, last)),
                             "config": asdict(cfg)})
    return jobs


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_job(job: dict) -> dict:
    """Fine-tune one checkpoint (in a worker): the result dict, without the model."""
    import dataclasses

    from zhbert.downstream.finetune import finetune
    from zhbert.downstream.source import open_source
    from zhbert.downstream.tasks import get_task

    cfg = FinetuneConfig(**job["config"])
    with open_source(job["model"]) as source:
        if cfg.init == "random":
            source = dataclasses.replace(source, step=0)
        _, _, result = finetune(get_task(job["task"]), source, cfg)
    result.pop("dev_curve", None)
    return {"model": job["model"], "job_config": job["config"], **result}


def _done(path: Path, job: dict) -> dict | None:
    """The result an earlier call kept for ``job`` when its settings are the same."""
    if not path.is_file():
        return None
    old = read_json(path, "a study result", obj=True)
    same = old.get("job_config") == job["config"] and old.get("model") == job["model"]
    return old if same else None


def run_jobs(args, jobs: list[dict]) -> tuple[list[dict], float]:
    """Run (or reuse) every job; returns the results in ``jobs`` order and the wall seconds."""
    folder = args.run / JOBS_DIR
    results: dict[str, dict] = {}
    todo = []
    for job in jobs:
        old = None if args.redo else _done(folder / f"{job['name']}.json", job)
        if old is not None:
            results[job["name"]] = old
        else:
            todo.append(job)
    print(f"==> {len(jobs)} fine-tunes: {len(jobs) - len(todo)} reused, {len(todo)} to run on "
          f"{args.workers} worker(s) x {args.threads} thread(s)", flush=True)
    # the longest fine-tunes first, so that the workers end together
    todo.sort(key=lambda j: -j["config"]["epochs"] * (j["config"]["train_limit"] or 10**9))
    t0 = time.perf_counter()

    def keep(k: int, job: dict, result: dict) -> None:
        atomic_write_json(folder / f"{job['name']}.json", result)
        results[job["name"]] = result
        print(f"[{k}/{len(todo)}] {job['name']}: test {result['test']['score']:.4f} "
              f"(dev {result['dev']['score']:.4f}), {result['time_s']:.0f} s, "
              f"{time.perf_counter() - t0:.0f} s so far", flush=True)

    if todo and args.workers == 1:  # in this process (no worker start-up)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        try:
            for k, job in enumerate(todo, 1):
                keep(k, job, run_job(job))
        finally:
            torch.set_num_threads(threads)
    elif todo:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(args.threads,)) as pool:
            futures = {pool.submit(run_job, job): job for job in todo}
            for k, fut in enumerate(as_completed(futures), 1):
                keep(k, futures[fut], fut.result())
    return [results[j["name"]] for j in jobs], time.perf_counter() - t0


def study_record(result: dict, commit: str | None, prefix: str = BUDGET_PREFIX) -> dict:
    """The scores-file record of one fine-tune, its budget named ``PREFIX-...``."""
    rec = score_record({**result, "git_commit": commit} if commit else result)
    rec["budget"] = f"{prefix}-{rec['budget']}"
    return rec


def analyse(history_path: Path, scores_path: Path, n_boot: int) -> tuple:
    """``(history, analysis)``: the copied history and the downstream analysis of the copied
    scores against it."""
    from zhbert.analysis.downstream import downstream_analysis, history_mlm
    from zhbert.analysis.downstream_record import load_record
    from zhbert.analysis.sources import load_source

    history = load_source(history_path)
    record = load_record(scores_path)
    steps, acc = history_mlm(history)
    return history, downstream_analysis(record.table, steps, acc, n_boot=n_boot, seed=0,
                                        notes=record.notes, record=str(scores_path))


def budget_rows(jobs: list[dict], results: list[dict]) -> list[dict]:
    """Per task: the budget, its examples, updates and the median wall seconds of a fine-tune."""
    import statistics

    rows = []
    for task in dict.fromkeys(j["task"] for j in jobs):
        rs = [r for j, r in zip(jobs, results, strict=True) if j["task"] == task]
        cfg = rs[0]["config"]
        rows.append({"task": task, "metric": rs[0]["metric"],
                     **{k: cfg[k] for k in ("epochs", "max_steps", "batch_size", "lr")},
                     "examples": rs[0]["examples"], "updates": rs[0]["updates"],
                     "fine_tunes": len(rs),
                     "median_s": round(statistics.median(r["time_s"] for r in rs), 1),
                     "sum_s": round(sum(r["time_s"] for r in rs), 1)})
    return rows


def budget_markdown(rows: list[dict]) -> str:
    """The budgets table (markdown)."""
    lines = ["| task | metric | train / dev / test examples | epochs | updates | lr | "
             "fine-tunes | median s per fine-tune |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        ex = r["examples"]
        lines.append(f"| {r['task']} | {r['metric']} | {ex['train']:,} / {ex['dev']:,} / "
                     f"{ex['test']:,} | {r['epochs']} | {r['updates']} | {r['lr']:g} | "
                     f"{r['fine_tunes']} | {r['median_s']:.0f} |")
    return "\n".join(lines)


def study_markdown(record: dict) -> str:
    """study.md: how the study ran, then the analysis' two tables."""
    from zhbert.analysis.downstream_report import steps_markdown, summary_markdown

    block = record["analysis"]
    return "\n\n".join([
        f"Command: `{record['command']}`; {record['n_fine_tunes']} fine-tunes in "
        f"{record['wall_s'] / 60:.1f} min on {record['machine']['cpu']} ({record['workers']} "
        f"workers x {record['threads']} thread, {record['precision']}); run `{record['run']}`.",
        budget_markdown(record["budgets"]), summary_markdown(block), steps_markdown(block)])


def update_readme(readme: Path, md: str, figure: str | None = None,
                  block: str = README_BLOCK) -> None:
    """Replace README.md's ``block`` with ``md`` (and the figure)."""
    shown = f"\n\n![downstream study]({figure})" if figure else ""
    replace_marked_block(readme, block, f"{md}{shown}")


def machine() -> dict:
    """The CPU and precision facts a timing needs beside it."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "bf16_native": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main(argv: Sequence[str] | None = None) -> int:
    """Plan, fine-tune (or reuse), record, analyse, write."""
    args = parse_args(argv)
    check_positive(args, "workers", "threads", "n_boot")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise UserError(f"--out-dir {args.out_dir}: is a file, expected a directory")
    history_file = args.run / H.HISTORY_NAME
    if not history_file.is_file():
        raise UserError(f"{args.run}: no {H.HISTORY_NAME}; train the run first (make demo)")
    jobs = plan(args, run_checkpoints(args.run),
                read_json(history_file, "a training history", obj=True))
    if args.dry_run:
        for j in jobs:
            print(f"{j['name']}: {j['model']} {'(random init)' if j['step'] == 0 else ''}")
        return 0
    committed = in_results(args.out_dir)
    if committed:
        check_clean({}, args.allow_dirty, what="the downstream study", ignore=("results",))
    S.load_scores(args.run)  # a malformed scores file fails before any fine-tune
    results, wall = run_jobs(args, jobs)
    commit = git_state().commit
    S.save_records(args.run, [study_record(r, commit) for r in results])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    history_copy = args.out_dir / H.HISTORY_NAME
    scores_copy = args.out_dir / S.SCORES_NAME
    atomic_write_bytes(history_copy, history_file.read_bytes())
    study = [study_record(r, commit) for r in results]
    atomic_write_json(scores_copy, {"format_version": S.FORMAT_VERSION, "records": study})
    history, block = analyse(history_copy, scores_copy, args.n_boot)
    from zhbert.plots import FIGURES

    figure = FIGURES["downstream"](history, {"downstream": block}, args.out_dir / "downstream.png")
    argv_shown = " ".join(argv if argv is not None else sys.argv[1:])
    record = {
        "command": f"python studies/downstream_study.py {argv_shown}".strip(),
        "run": str(args.run), "git_commit": commit, "n_fine_tunes": len(jobs),
        "wall_s": round(wall, 1), "workers": args.workers, "threads": args.threads,
        "precision": args.precision, "machine": machine(), "seeds": args.seeds,
        "budgets": budget_rows(jobs, results), "analysis": block,
    }
    md = study_markdown(record)
    atomic_write_json(args.out_dir / "study.json", record)
    atomic_write_text(args.out_dir / "study.md", md + "\n")
    print("\n" + md)
    print(f"\nwritten: {args.out_dir / 'study.json'}, {args.out_dir / 'study.md'}, {figure}")
    if args.update_readme:
        readme = ROOT / "README.md"
        update_readme(readme, md, os.path.relpath(figure, ROOT))
        print(f"updated: {readme}")
    return 0


if __name__ == "__main__":
    run_cli(main)
