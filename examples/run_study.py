"""The recipe study at CPU scale: the original study's recipe against the modern one, equal tokens.

`make study` runs this script after `make demo` has prepared the corpus. Both arms train the demo
preset's data (same corpus, sequence length, batch and number of steps, so the same tokens); they
differ only in what the issue calls the recipe:

* ``original`` — the original study's: post-LN BERT with learned absolute positions and a plain
  GELU feed-forward of 4 x hidden (as many weights as the modern arm's gated one), dropout 0.1,
  15 % masking, AdamW lr 5e-5 (β2 0.999, ε 1e-8), linear warmup over 2 % of the steps (2K of 100K
  in the original) and cosine decay to 0.
* ``modern``   — the demo preset unchanged (pre-LN rotary encoder, see zhbert/config.py).
  On another preset (``--preset``) the arm switches the architecture to ``modern``.

Then the repository's comparison analysis and figures run on the two histories, and
``study.json`` records the final held-out accuracy of each arm, the count-table baselines and the
first evaluated step at which the modern recipe reached the original's final accuracy.

    python examples/run_study.py                          # runs/study/{original,modern}, runs/study/results
    python examples/run_study.py --out-dir results/study  # refresh the committed reference results
"""

from __future__ import annotations

import argparse
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
from zhbert.io_utils import atomic_write_bytes, atomic_write_json, read_json  # noqa: E402
from zhbert.provenance import check_clean, in_results  # noqa: E402

# Overrides of the demo preset that make each arm (the demo preset itself is the modern recipe).
# Overrides of the demo preset that make each arm (the demo preset itself is the modern recipe).
ARMS: dict[str, list[str]] = {
    "original": ["model.arch=bert", "model.intermediate_size=1024", "model.position_init=normal",
                 "model.dropout=0.1",
                 "model.attention_dropout=0.1", "model.layer_norm_eps=1e-12",
                 "data.mask_rate=0.15", "optim.lr=5e-5", "optim.beta2=0.999", "optim.eps=1e-8",
                 "optim.weight_decay=0.01", "optim.schedule=cosine"],
    # The demo preset already is the modern recipe; these make the arm modern on any preset.
    "modern": ["model.arch=modern", "model.dropout=0", "model.attention_dropout=0",
               "model.layer_norm_eps=1e-5"],
}
# Both arms of the committed study train 2,000 steps of 64 x 64 tokens (equal tokens), not the
# demo preset's batch-32 run under a wall-clock budget; applied before the arms' own overrides.
PRESET_BASE: dict[str, list[str]] = {
    "demo": ["run.time_budget_s=0", "data.batch_size=64", "run.max_steps=2000",
             "run.eval_interval=100", "optim.warmup_steps=100"],
}
WARMUP_SHARE = {"original": 0.02}  # of run.max_steps; the modern arm keeps the preset's warmup


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("data/demo"),
                   help="prepared demo corpus (built when missing, as make demo does)")
    p.add_argument("--runs", type=Path, default=Path("runs/study"),
                   help="folder for the arms' run directories (default runs/study)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="histories, analysis, figures and study.json (default RUNS/results)")
    p.add_argument("--preset", default="demo", help="preset both arms start from (default demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to both arms, e.g. run.max_steps=300 (repeatable)")
    p.add_argument("--redo", action="store_true", help="retrain arms that already finished")
    p.add_argument("--update-readme", action="store_true",
                   help="also write the study table into README.md (make study-reference); "
                        "refused from uncommitted code or for arms trained from it")
    p.add_argument("--allow-dirty", action="store_true",
                   help="with --update-readme or an --out-dir under results/: go on from "
                        "uncommitted code (warns loudly)")
    return p.parse_args(argv)


def _run(cmd: list[str]) -> None:
    print("\n==> " + " ".join(cmd), flush=True)
    if subprocess.run(cmd, cwd=ROOT).returncode != 0:
        raise UserError(f"study step failed: {' '.join(cmd[1:3])}")


def arm_overrides(arm: str, preset: str, shared: list[str]) -> list[str]:
    """The arm's overrides, then the shared ones; warmup from the share of the final steps."""
    from zhbert.config import build_config

    own = PRESET_BASE.get(preset, []) + ARMS[arm] + shared
    steps = build_config(preset, overrides=own).run.max_steps
    warm = [f"optim.warmup_steps={max(1, round(WARMUP_SHARE[arm] * steps))}"] \
        if arm in WARMUP_SHARE else []
    return own + warm


def finished(arm: str, args: argparse.Namespace) -> bool:
    """Whether the arm's run finished and is reused (no --redo)."""
    return (args.runs / arm / "final" / "config.json").exists() and not args.redo


def train_arm(arm: str, args: argparse.Namespace) -> Path:
    """Train one arm (reusing a finished run unless --redo); returns its history path."""
    run_dir = args.runs / arm
    if finished(arm, args):
        print(f"==> [{arm}] reusing finished run {run_dir}")
        return run_dir / "training_history.json"
    cmd = [sys.executable, "main_train.py", "--preset", args.preset, "--run-dir", str(run_dir),
           "--set", f"data.corpus_dir={args.corpus}"]
    for item in arm_overrides(arm, args.preset, args.overrides):
        cmd += ["--set", item]
    if args.redo or not any((run_dir / "checkpoints").glob("step_*")):
        cmd.append("--overwrite")
    else:
        cmd.append("--resume")
    _run(cmd)
    return run_dir / "training_history.json"


def steps_to_reach(steps: list[int], acc: list[float], target: float) -> int | None:
    """First evaluated step whose accuracy is at least ``target`` (None if never).

    >>> steps_to_reach([100, 200, 300], [0.1, 0.25, 0.3], 0.2)
    200
    """
    return next((s for s, a in zip(steps, acc, strict=True) if a >= target), None)


def summarize(histories: dict[str, dict]) -> dict:
    """Per-arm final accuracy, and the modern arm's steps to the original's final accuracy."""
    arms = {}
    for arm, h in histories.items():
        cfg = h[H.META_KEY][H.META_CONFIG]
        arms[arm] = {"final_step": h[H.EVAL_STEPS][-1], "final_acc": h[H.EVAL_MLM_ACC][-1],
                     "final_stderr": h[H.EVAL_STDERR][-1], "tokens_seen": h[H.TOKENS_SEEN][-1],
                     "train_s": h[H.ELAPSED_S][-1], "parameters": h[H.META_KEY]["parameters"],
                     "arch": cfg["model"]["arch"], "lr": cfg["optim"]["lr"],
                     "mask_rate": cfg["data"]["mask_rate"]}
    out: dict = {"arms": arms}
    if {"original", "modern"} <= set(histories):
        m = histories["modern"]
        out["modern_steps_to_original_final"] = steps_to_reach(
            m[H.EVAL_STEPS], m[H.EVAL_MLM_ACC], arms["original"]["final_acc"])
    baselines = histories.get("modern", {}).get(H.META_KEY, {}).get(H.META_BASELINES)
    if baselines:
        out["baselines"] = {"acc": baselines["acc"], "stderr": baselines["stderr"]}
    return out


def study_table(study: dict) -> str:
    """The README's study table (markdown) from ``study.json``'s content."""
    arms = study["arms"]
    lines = ["| | original recipe | modern recipe |", "|---|---|---|"]

    def row(name: str, fmt) -> None:
        lines.append(f"| {name} | " + " | ".join(fmt(arms[a]) for a in ("original", "modern"))
                     + " |")

    row("architecture", lambda a: "post-LN BERT" if a["arch"] == "bert" else "pre-LN rotary")
    row("peak lr / training mask", lambda a: f"{a['lr']:g} / {a['mask_rate']:.0%}")
    row("final held-out MLM accuracy",
        lambda a: f"{a['final_acc']:.2%} ± {a['final_stderr']:.2%} at step {a['final_step']:,}")
    row("tokens seen / training time", lambda a: f"{a['tokens_seen']:,} / {a['train_s']:.0f} s")
    reach = study.get("modern_steps_to_original_final")
    lines.append("| steps the modern recipe needs to reach the original's final accuracy | — | "
                 + (f"{reach:,}" if reach is not None else "not reached") + " |")
    for name, acc in study.get("baselines", {}).get("acc", {}).items():
        lines.append(f"| count-table baseline: {name.replace('_', ' ')} | {acc:.2%} | {acc:.2%} |")
    return "\n".join(lines)


README_START, README_END = "<!-- study-results:start -->", "<!-- study-results:end -->"


def update_readme(readme: Path, study: dict) -> None:
    """Replace the README block between the study markers with :func:`study_table`."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise UserError(f"{readme} has no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    tail = rest.split(README_END, 1)[1]
    from zhbert.io_utils import atomic_write_text

    atomic_write_text(readme, f"{head}{README_START}\n{study_table(study)}\n{README_END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out_dir or args.runs / "results"
    for flag, path in (("--corpus", args.corpus), ("--runs", args.runs), ("--out-dir", out)):
        if path.exists() and not path.is_dir():
            raise UserError(f"{flag} {path}: is a file, expected a directory")
    # reference results (the README table, or any folder under results/) from committed code only
    reference = args.update_readme or in_results(out)
    if reference and not args.allow_dirty:  # the work tree, before any training
        check_clean({}, False, what="the study's reference results")
    started = time.perf_counter()
    if not (args.corpus / "dataset_stats.json").exists():
        _run([sys.executable, "examples/prepare_dataset.py", "--source", "demo", "--out-dir",
              str(args.corpus)])
    reused = [arm for arm in ARMS if finished(arm, args)]
    paths = {arm: train_arm(arm, args) for arm in ARMS}
    if reference:  # the arms' own trees, before anything is written into the out folder
        check_clean({f"{arm} arm": read_json(p, "a study history", obj=True).get(H.META_KEY)
                     for arm, p in paths.items()}, args.allow_dirty,
                    what="the study's reference results")
    out.mkdir(parents=True, exist_ok=True)
    copies = {}
    for arm, path in paths.items():
        copies[arm] = out / f"history_{arm}.json"
        atomic_write_bytes(copies[arm], path.read_bytes())
    labels = list(copies)
    _run([sys.executable, "analyze_100k.py", "--history", str(copies["modern"]), "--compare",
          str(copies["original"]), "--labels", "modern", "original",
          "--output", str(out / "study_analysis.json"), "--backtest"])
    _run([sys.executable, "visualize_results.py", "--history", str(copies["modern"]),
          "--compare", str(copies["original"]), "--labels", "modern", "original",
          "--analysis", str(out / "study_analysis.json"), "--out-dir", str(out)])
    histories = {arm: read_json(p, "a study history", obj=True) for arm, p in copies.items()}
    summary = summarize(histories)
    session = time.perf_counter() - started
    # a reused arm counts its recorded training time, so total_s stays the study's cost
    total = session + sum(histories[arm][H.ELAPSED_S][-1] for arm in reused)
    summary.update({"arms_order": labels, "overrides": {a: ARMS[a] for a in ARMS},
                    "shared_overrides": args.overrides, "reused": reused,
                    "session_s": round(session, 1), "total_s": round(total, 1)})
    atomic_write_json(out / "study.json", summary)
    print(study_table(summary))
    if args.update_readme:
        update_readme(ROOT / "README.md", summary)
    return 0


if __name__ == "__main__":
    run_cli(main)
