"""The main job end to end: corpus -> training -> analysis -> figures -> fill-mask.

`make demo` runs this script. Each step is one of the repository's own command-line tools, run
as a subprocess exactly as a user would type it, so the demo exercises the documented interface.
A second run reuses what is done: a prepared corpus and a finished training run are skipped
(an interrupted run is resumed) unless ``--redo`` is given.

    python examples/run_demo.py                       # the full demo (preset "demo")
    python examples/run_demo.py --preset smoke --max-documents 300 --run-dir /tmp/r --results /tmp/res
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert import history_schema as H  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402

FILL_MASK_TEXTS = ("今天天气很[MASK]。", "中国的首都是北[MASK]。", "这个手机的质量非常[MASK]。")
README_START, README_END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"


def results_table(results: Path) -> str:
    """The README's results table, computed from a demo run's files in ``results``.

    tests/test_readme.py checks that README.md holds exactly this text for the committed
    ``results/``, so every number there comes from the run.
    """
    import json

    history = json.loads((results / H.HISTORY_NAME).read_text(encoding="utf-8"))
    analysis = json.loads((results / "analysis_result.json").read_text(encoding="utf-8"))
    summary = json.loads((results / "demo_run.json").read_text(encoding="utf-8"))
    best, ext = analysis["best_fit"], analysis["extrapolation"]
    acc, err = history[H.EVAL_MLM_ACC][-1], history[H.EVAL_STDERR][-1]
    rows = [
        ("final held-out MLM accuracy (15% masks, fixed set)",
         f"{acc:.2%} ± {err:.2%} (s.e.) at step {history[H.EVAL_STEPS][-1]:,}"),
        ("best held-out MLM accuracy", f"{max(history[H.EVAL_MLM_ACC]):.2%}"),
        (f"Pearson r (step vs {analysis['series']['kind']} accuracy, n = {analysis['data_points']})",
         f"{analysis['pearson']['r']:.4f}, 95% CI [{analysis['pearson']['ci95'][0]:.3f}, "
         f"{analysis['pearson']['ci95'][1]:.3f}]"),
        ("Spearman ρ / Kendall τ",
         f"{analysis['spearman']['rho']:.4f} / {analysis['kendall']['tau']:.4f}"),
        ("best-fit learning curve (asymptote)",
         f"{best['family']} ({best['asymptote']:.2%})" if best.get("asymptote") is not None
         else f"{best['family']} (unbounded)"),
        (f"extrapolated accuracy at step {int(ext['target_step']):,} (95% block-bootstrap CI)",
         f"{ext['value']:.2%} [{ext['ci95'][0]:.2%}, {ext['ci95'][1]:.2%}]"),
        ("training loss first → last log point",
         f"{history['loss'][0]:.2f} → {history['loss'][-1]:.2f}"),
        ("parameters / tokens seen",
         f"{history['meta']['parameters']:,} / {history['tokens_seen'][-1]:,}"),
        ("wall time of `make demo` without install (prepare / train / rest)",
         f"{summary['total_s']:.0f} s ({summary['steps_s']['prepare']:.0f} / "
         f"{summary['steps_s']['train']:.0f} / "
         f"{summary['total_s'] - summary['steps_s']['prepare'] - summary['steps_s']['train']:.0f} s)"),
        ("machine", f"{summary['machine']['cpu']}, {summary['machine']['logical_cpus']} cores, "
                    f"torch {history['meta']['torch_version']}"),
    ]
    base = analysis.get(H.META_BASELINES)  # runs trained before the baselines have none
    if base:
        rows.insert(2, ("count-table baselines on the same masks: unigram / left bigram / right "
                        "bigram / gap trigram (`examples/baselines.py`)",
                        " / ".join(f"{base['acc'][k]:.2%}" for k in base["acc"])))
    lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + (
        "\n\nProduced by `make demo` (`python examples/run_demo.py`) and copied here by "
        "`python examples/run_demo.py --update-readme`; the files are in `results/`."
    )


def update_readme(readme: Path, results: Path) -> None:
    """Replace the block between the README markers with :func:`results_table`."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise UserError(f"{readme} has no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    atomic_write_text(readme, f"{head}{README_START}\n{results_table(results)}\n{README_END}{tail}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="demo", help="training preset (default: demo)")
    p.add_argument("--corpus", type=Path, default=Path("data/demo"),
                   help="prepared demo corpus directory (built when missing)")
    p.add_argument("--run-dir", type=Path, default=Path("runs/demo"), help="training run directory")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="where the history copy, analysis JSON, figures and summary go")
    p.add_argument("--max-documents", type=int, default=None,
                   help="prepare only the first N documents of the demo corpus (reduced CI budget)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra training config override, passed to main_train.py (repeatable)")
    p.add_argument("--redo", action="store_true",
                   help="rebuild the corpus and retrain from scratch even when outputs exist")
    p.add_argument("--update-readme", action="store_true",
                   help="only rewrite README.md's results table from the files in --results, then exit")
    return p.parse_args(argv)


def _run(step: str, cmd: list[str], timings: dict[str, float]) -> None:
    print(f"\n==> [{step}] {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    timings[step] = round(time.perf_counter() - start, 1)
    if proc.returncode != 0:
        raise UserError(f"demo step '{step}' failed with exit code {proc.returncode}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _train_command(args: argparse.Namespace) -> list[str]:
    """main_train.py for the preset; resumes an interrupted run, restarts one with no checkpoint."""
    run_dir = args.run_dir
    cmd = [sys.executable, "main_train.py", "--preset", args.preset, "--run-dir", str(run_dir),
           "--set", f"data.corpus_dir={args.corpus}"]
    for override in args.overrides:
        cmd += ["--set", override]
    if args.redo:
        cmd.append("--overwrite")
    elif (run_dir / "checkpoints").exists():
        cmd.append("--resume")
    elif run_dir.exists():
        cmd.append("--overwrite")  # a run that died before its first checkpoint
    return cmd


def _print_outputs(summary: dict, summary_path: Path) -> None:
    print("\n==> done in {:.0f} s. Outputs:".format(summary["total_s"]))
    for key, value in summary["outputs"].items():
        if key != "figures":
            print(f"  {key:9s} {value}")
    for fig in summary["outputs"]["figures"]:
        print(f"  figure    {fig}")
    print(f"  summary   {summary_path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.update_readme:
        update_readme(ROOT / "README.md", args.results)
        return 0
    py = sys.executable
    timings: dict[str, float] = {}
    corpus, run_dir, results = args.corpus, args.run_dir, args.results
    started = time.perf_counter()

    if args.redo or not (corpus / "dataset_stats.json").exists():
        cmd = [py, "examples/prepare_dataset.py", "--source", "demo", "--out-dir", str(corpus),
               "--overwrite"]
        if args.max_documents:
            cmd += ["--max-documents", str(args.max_documents)]
        _run("prepare", cmd, timings)
    else:
        print(f"==> [prepare] reusing {corpus} (use --redo to rebuild)")

    final = run_dir / "final"
    if args.redo or not (final / "config.json").exists():
        _run("train", _train_command(args), timings)
    else:
        print(f"==> [train] reusing finished run {run_dir} (use --redo to retrain)")

    results.mkdir(parents=True, exist_ok=True)
    history = results / H.HISTORY_NAME
    atomic_write_bytes(history, (run_dir / H.HISTORY_NAME).read_bytes())
    analysis = results / "analysis_result.json"
    _run("analyze", [py, "analyze_100k.py", "--history", str(history), "--output", str(analysis)],
         timings)
    _run("figures", [py, "visualize_results.py", "--history", str(history), "--analysis",
                     str(analysis), "--out-dir", str(results)], timings)
    fill = [py, "examples/quick_start.py", "--model", str(final), "--top-k", "5"]
    for text in FILL_MASK_TEXTS:
        fill += ["--text", text]
    _run("fill-mask", fill, timings)

    summary = {
        "preset": args.preset,
        "total_s": round(time.perf_counter() - started, 1),
        "steps_s": timings,
        "machine": {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "outputs": {"corpus": str(corpus), "run_dir": str(run_dir), "model": str(final),
                    "history": str(history), "analysis": str(analysis),
                    "figures": sorted(str(p) for p in results.glob("*.png"))},
    }
    atomic_write_json(results / "demo_run.json", summary)
    _print_outputs(summary, results / "demo_run.json")
    return 0


if __name__ == "__main__":
    run_cli(main)
