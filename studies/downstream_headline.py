#!/usr/bin/env python
"""The headline downstream scores (``make downstream-headline``): one longer fine-tune of the
run's final model on each task's whole train split, scored on the whole test split.

    python studies/downstream_headline.py                      # after make demo
    python studies/downstream_headline.py --tasks sentiment --out-dir /tmp/h --allow-dirty

The study (``studies/downstream_study.py``) fine-tunes every checkpoint with a small fixed
budget; this is the score a user gets from the final export with a full one (:data:`HEADLINE`).
The fine-tunes run side by side in ``--workers`` processes (one torch thread each), are recorded
in ``RUN/downstream_scores.json`` under their own budget (``headline-...``, so the study's
analysis leaves them out), kept in ``RUN/downstream_study/`` for reuse, and tabulated beside the
task's baselines (``results/downstream/baselines.json``) in ``--out-dir``: ``headline.json`` and
``headline.md``; under ``results/`` only from committed code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from studies import downstream_study as D  # noqa: E402
from zhbert import downstream_schema as S  # noqa: E402
from zhbert.downstream.finetune import FinetuneConfig  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json, atomic_write_text, read_json  # noqa: E402
from zhbert.provenance import check_clean, git_state, in_results  # noqa: E402

#: the headline budget of each task: the whole train, dev and test splits
HEADLINE: dict[str, dict] = {
    "ner": dict(epochs=2, lr=1e-3),
    "cws": dict(epochs=1, lr=1e-3),
    "sentiment": dict(epochs=3, lr=3e-4),
}
#: the published or measured anchors the table puts beside each task (other splits: see docs)
README_BLOCK = "downstream-headline"
ANCHORS = {"ner": "ALBERT-tiny 84.77 F1 on CLUE's MSRA-NER split; BERT-base about 95"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/demo"),
                   help="the pretraining run whose export RUN/final is fine-tuned (default "
                        "runs/demo)")
    p.add_argument("--tasks", nargs="+", default=list(HEADLINE), choices=list(HEADLINE),
                   help="tasks (default all: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="fine-tuning seed (default 0)")
    p.add_argument("--out-dir", type=Path, default=Path("results/downstream/headline"),
                   help="headline.json and headline.md (default results/downstream/headline)")
    p.add_argument("--baselines", type=Path, default=ROOT / "results/downstream/baselines.json",
                   help="the baselines record to tabulate beside (default the committed one)")
    p.add_argument("--no-random", dest="random", action="store_false",
                   help="skip the random-init fine-tunes of the same budget (the baseline that "
                        "says what pretraining adds; run by default)")
    D.add_worker_args(p)
    p.add_argument("--update-readme", action="store_true",
                   help="rewrite README.md's headline block from the result")
    return p.parse_args(argv)


def headline_jobs(args) -> list[dict]:
    """One fine-tune of RUN/final per task."""
    final = args.run / "final"
    if not (final / "config.json").is_file():
        raise UserError(f"{args.run}: no export {final} (train the run first: make demo)")
    jobs = []
    for task in args.tasks:
        for init in ("pretrained", *(("random",) if args.random else ())):
            cfg = replace(FinetuneConfig(**HEADLINE[task]), seed=args.seed, init=init,
                          precision=args.precision)
            what = "final" if init == "pretrained" else "random"
            jobs.append({"name": f"headline-{task}-{what}-seed{args.seed}", "task": task,
                         "step": None, "seed": args.seed, "model": str(final),
                         "config": asdict(cfg)})
    return jobs


def baseline_rows(path: Path) -> dict[str, list[dict]]:
    """``{task: [{baseline, score}, ...]}`` from the baselines record (empty when missing)."""
    if not path.is_file():
        return {}
    tasks = read_json(path, "a baselines record", obj=True).get("tasks", {})
    return {task: [{"baseline": name, "score": b["score"]} for name, b in found.items()]
            for task, found in tasks.items()}


def headline_markdown(rows: list[dict]) -> str:
    """The headline table: the fine-tuned final model beside its task's baselines."""
    lines = ["| task | metric | fine-tuned demo model (test) | same budget from random init | "
             "train / dev / test examples | epochs | updates | minutes | "
             "baselines on the same test split |",
             "|---|---|---:|---:|---|---:|---:|---:|---|"]
    for r in rows:
        ex = r["examples"]
        base = "; ".join(f"{b['baseline']} {100 * b['score']:.2f}" for b in r["baselines"])
        rnd = f"{100 * r['random_score']:.2f}" if r.get("random_score") is not None else "—"
        lines.append(f"| {r['task']} | {r['metric']} | **{100 * r['score']:.2f}** | {rnd} | "
                     f"{ex['train']:,} / {ex['dev']:,} / {ex['test']:,} | {r['epochs']} | "
                     f"{r['updates']:,} | {r['time_s'] / 60:.1f} | {base} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Fine-tune (or reuse), record, tabulate."""
    args = parse_args(argv)
    D.check_positive(args, "workers", "threads")
    if args.out_dir.exists() and not args.out_dir.is_dir():
        raise UserError(f"--out-dir {args.out_dir}: is a file, expected a directory")
    jobs = headline_jobs(args)
    if in_results(args.out_dir):
        check_clean({}, args.allow_dirty, what="the headline fine-tunes", ignore=("results",))
    S.load_scores(args.run)
    results, wall = D.run_jobs(args, jobs)
    commit = git_state().commit
    records = []
    for r in results:
        records.append(D.study_record(r, commit, prefix="headline"))
    S.save_records(args.run, records)
    base = baseline_rows(args.baselines)
    by_random = {r["task"]: r for r in results if r["init"] == "random"}
    rows = []
    for r in results:
        if r["init"] != "pretrained":
            continue
        rnd = by_random.get(r["task"])
        rows.append({"task": r["task"], "metric": r["metric"], "score": r["test"]["score"],
                     "dev_score": r["dev"]["score"], "test": r["test"],
                     "random_score": rnd["test"]["score"] if rnd else None,
                     "random_time_s": rnd["time_s"] if rnd else None,
                     "examples": r["examples"], "epochs": r["config"]["epochs"],
                     "updates": r["updates"], "pretrain_step": r["pretrain_step"],
                     "time_s": r["time_s"], "cpu_s": r["cpu_s"], "config": r["config"],
                     "anchor": ANCHORS.get(r["task"]), "baselines": base.get(r["task"], [])})
    argv_shown = " ".join(argv if argv is not None else sys.argv[1:])
    record = {"command": f"python studies/downstream_headline.py {argv_shown}".strip(),
              "run": str(args.run), "git_commit": commit, "wall_s": round(wall, 1),
              "workers": args.workers, "threads": args.threads, "precision": args.precision,
              "machine": D.machine(), "rows": rows}
    md = headline_markdown(rows)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out_dir / "headline.json", record)
    atomic_write_text(args.out_dir / "headline.md", md + "\n")
    print("\n" + md + f"\n\nwritten: {args.out_dir / 'headline.json'}")
    if args.update_readme:
        D.update_readme(ROOT / "README.md", md, block=README_BLOCK)
        print(f"updated: {ROOT / 'README.md'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
