"""The main job end to end: corpus -> training -> analysis -> figures -> fill-mask.

`make demo` runs this script. Each step is one of the repository's own command-line tools, run
as a subprocess exactly as a user would type it, so the demo exercises the documented interface.
Everything a run produces goes into the run directory (the analysis, figures and summary into
``RUN/results/``, or ``--out-dir``); the repository's tracked files are never touched. A second
run reuses what is done: a prepared corpus and a finished training run are skipped (an
interrupted run is resumed) unless ``--redo`` is given. A finished run whose settings differ from
the ones asked for is refused with the differing keys (retrain it with ``--redo``, or pick
another ``--run-dir``).

``--preset auto`` (the default) trains the ``demo`` preset where the machine computes bf16
natively and faster than fp32, and ``demo_fp32`` (the recipe tuned for fp32 speed) elsewhere;
both stop at their step bound or after ``run.time_budget_s`` seconds of training, whichever
comes first, so the demo ends in about ten minutes on any 2-core CPU. The choice and its reason
are printed and kept in the summary (``preset_choice``).

The committed reference results (``results/`` and README.md's results table) change only with
the explicit ``--update-reference`` (``make reference``), which refuses a run made from, or a
work tree holding, uncommitted code.

    python examples/run_demo.py                                 # the full demo (preset "auto")
    python examples/run_demo.py --set run.max_steps=3000 --run-dir runs/demo3000
    python examples/run_demo.py --update-reference              # make reference
    python examples/run_demo.py --preset smoke --max-documents 300 --run-dir /tmp/r
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert import history_schema as H  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import (  # noqa: E402
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_json,
)
from zhbert.provenance import check_clean  # noqa: E402

FILL_MASK_TEXTS = ("今天天气很[MASK]。", "中国的首都是北[MASK]。", "这个手机的质量非常[MASK]。")
README_START, README_END = "<!-- demo-results:start -->", "<!-- demo-results:end -->"
#: where ``make reference`` keeps each demo preset's committed run, and its README block
REFERENCES = {"demo": ("results/demo_bf16", "demo-results"),
              "demo_fp32": ("results/demo_fp32", "demo-fp32-results")}


def readme_markers(block: str) -> tuple[str, str]:
    """The README's start and end markers of results block ``block``.

    >>> readme_markers("demo-fp32-results")[0]
    '<!-- demo-fp32-results:start -->'
    """
    return f"<!-- {block}:start -->", f"<!-- {block}:end -->"
# Config keys taken from the corpus at run time: not a setting the user chose.
CORPUS_KEYS = {"model.vocab_size", "model.pad_token_id"}


# --------------------------------------------------------------------------- README table


def _read_json(path: Path) -> dict:
    return read_json(path, "a demo result", obj=True,
                     hint="run the demo and `make reference` first")


def _code_state(meta: dict) -> str:
    """The commit a history was trained from, and whether the work tree was clean."""
    state = {False: "clean work tree", True: "UNCOMMITTED CHANGES"}.get(
        meta.get("git_dirty"), "work-tree state not recorded")
    return f"commit {str(meta.get('git_commit'))[:7]} ({state})"


def _precision_row(summary: dict, meta: dict) -> str:
    """``demo, bf16 (CPU with native bf16, ...)``: which recipe ran, in which precision, why."""
    reason = (meta.get("precision_choice") or {}).get("reason")
    pace = summary.get("median_tokens_per_s")
    return (f"`{summary.get('preset', meta.get('preset'))}`, {meta.get('precision')}"
            + (f" ({reason})" if reason else "")
            + (f"; median {pace:,.0f} training tokens/s" if pace else ""))


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def results_table(results: Path) -> str:
    """The README's results table, computed from the reference files in ``results``.

    tests/test_readme.py checks that README.md holds exactly this text for the committed
    ``results/``, so every number there comes from the run.
    """
    history = _read_json(results / H.HISTORY_NAME)
    analysis = _read_json(results / "analysis_result.json")
    summary = _read_json(results / "demo_run.json")
    best, ext = analysis["best_fit"], analysis["extrapolation"]
    acc, err = history[H.EVAL_MLM_ACC][-1], history[H.EVAL_STDERR][-1]
    steps = summary["steps_s"]
    rest = summary["total_s"] - steps["prepare"] - steps["train"]
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
        (f"curve-fit forecast at step {int(ext['target_step']):,} (model-averaged, 95% interval)",
         f"{ext['value']:.2%} [{ext['ci95'][0]:.2%}, {ext['ci95'][1]:.2%}]"
         if ext.get("value") is not None and None not in ext.get("ci95", [None])
         else f"no forecast ({ext.get('reason') or 'no interval'})"),
        ("training loss first → last log point",
         f"{history[H.LOSS][0]:.2f} → {history[H.LOSS][-1]:.2f}"),
        ("parameters / tokens seen",
         f"{history[H.META_KEY]['parameters']:,} / {history[H.TOKENS_SEEN][-1]:,}"),
        ("wall time of the demo without install (prepare / train / rest)",
         f"{summary['total_s']:.0f} s ({steps['prepare']:.0f} / {steps['train']:.0f} / "
         f"{rest:.0f} s)"),
        ("machine", f"{summary['machine']['cpu']}, {summary['machine']['logical_cpus']} cores, "
                    f"torch {history[H.META_KEY]['torch_version']}"),
        ("preset and precision", _precision_row(summary, history[H.META_KEY])),
        ("code", _code_state(history[H.META_KEY])),
    ]
    probes = summary.get("cloze_probes")
    if probes:
        rows.insert(2, (f"cloze probes right at top-1 (`zhbert/cloze_probes.json`, "
                        f"{probes['n']} sentences)",
                        f"{probes['top1_hits']} / {probes['n']} ({probes['top1_rate']:.0%})"))
    base = analysis.get(H.META_BASELINES)  # runs trained before the baselines have none
    if base:
        rows.insert(2, ("count-table baselines on the same masks: unigram / left bigram / right "
                        "bigram / gap trigram (`examples/baselines.py`)",
                        " / ".join(f"{base['acc'][k]:.2%}" for k in base["acc"])))
    lines = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + (
        "\n\nProduced by `make reference` (`python examples/run_demo.py --update-reference`), "
        f"which copies a finished demo run into `{_shown(results)}/` and writes this table from "
        "those files."
    )


def update_readme(readme: Path, results: Path, block: str = "demo-results") -> None:
    """Replace README block ``block`` (between its markers) with :func:`results_table`."""
    table = results_table(results)  # missing results fail first, naming the files
    start, end = readme_markers(block)
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {readme}: {exc.strerror or exc}") from None
    if start not in text or end not in text:
        raise UserError(f"{readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    atomic_write_text(readme, f"{head}{start}\n{table}\n{end}{tail}")


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--preset", default="auto",
                   help="training preset; auto (default): demo where bf16 is native and faster "
                        "than fp32 here, demo_fp32 elsewhere")
    p.add_argument("--corpus", type=Path, default=Path("data/demo"),
                   help="prepared demo corpus directory (built when missing)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="training run directory (default: runs/<preset>)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="where the analysis JSON, figures and summary go (default: RUN/results)")
    p.add_argument("--max-documents", type=int, default=None,
                   help="prepare only the first N documents of the demo corpus (reduced CI budget)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="training config override, passed to main_train.py (repeatable)")
    p.add_argument("--redo", action="store_true",
                   help="rebuild the corpus and retrain from scratch even when outputs exist")
    ref = p.add_mutually_exclusive_group()
    ref.add_argument("--update-reference", action="store_true",
                     help="after the run, copy its history, analysis, figures and summary into "
                          "--reference and rewrite README.md's results table (make reference)")
    ref.add_argument("--update-readme", action="store_true",
                     help="only rewrite README.md's results table from --reference, then exit")
    p.add_argument("--reference", type=Path, default=None,
                   help="the committed reference results folder (default: results/demo_bf16/ "
                        "for the demo preset, results/demo_fp32/ for demo_fp32)")
    p.add_argument("--readme-block", default=None,
                   help="README results block to rewrite (default: demo-results for the demo "
                        "preset, demo-fp32-results for demo_fp32)")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md",
                   help="README whose results table --update-reference/--update-readme rewrites")
    p.add_argument("--allow-dirty", action="store_true",
                   help="let --update-reference publish a run made from uncommitted code "
                        "(marked as such in the table)")
    args = p.parse_args(argv)
    if args.max_documents is not None and args.max_documents < 1:
        p.error(f"--max-documents must be >= 1 (got {args.max_documents})")
    args.preset_choice = None
    if args.preset == "auto":
        args.preset, args.preset_choice = choose_demo_preset(
            [f"data.corpus_dir={args.corpus}", *args.overrides])
    # both demo presets share runs/demo (the settings check names what differs)
    args.run_dir = args.run_dir or Path("runs") / (
        "demo" if args.preset_choice else args.preset)
    args.out_dir = args.out_dir or args.run_dir / "results"
    folder, block = REFERENCES.get(args.preset, REFERENCES["demo"])
    args.reference = args.reference or ROOT / folder
    args.readme_block = args.readme_block or block
    return args


def choose_demo_preset(overrides: list[str], choose=None) -> tuple[str, dict]:
    """``("demo" | "demo_fp32", record)``: the demo preset for this machine.

    ``demo`` where ``run.precision`` (after ``overrides``) resolves to bf16 here, ``demo_fp32``
    where it resolves to fp32 (a CPU without native bf16, or one where the probe finds bf16 no
    faster, or ``run.precision=fp32`` asked for). ``choose`` replaces
    ``zhbert.training.setup.resolve_precision`` (tests).
    """
    import torch

    from zhbert.config import build_config
    from zhbert.training import setup as S

    cfg = build_config("demo", None, overrides)
    device = torch.device(S.device_kind(cfg))
    choice = (choose or S.resolve_precision)(cfg, device)
    preset = "demo_fp32" if choice.precision == "fp32" else "demo"
    record = {"preset": preset, "precision": choice.precision, "reason": choice.reason}
    print(f"==> [preset] {preset}: precision {choice.precision} here ({choice.reason})",
          flush=True)
    return preset, record


def _not_a_file(path: Path, flag: str) -> None:
    """UserError when ``path`` exists but is not a directory."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a directory")


# --------------------------------------------------------------------------- settings check


def requested_config(args: argparse.Namespace) -> dict:
    """The resolved config the demo would train with (UserError for a bad preset or --set)."""
    from zhbert.config import build_config

    return build_config(args.preset, None, _overrides(args)).to_dict()


def _overrides(args: argparse.Namespace) -> list[str]:
    return [f"data.corpus_dir={args.corpus}", *args.overrides]


def settings_changes(run_dir: Path, wanted: dict) -> list[str]:
    """``key: old -> new`` for every setting in which the run in ``run_dir`` differs from
    ``wanted`` (empty when the run has no history yet)."""
    path = run_dir / H.HISTORY_NAME
    if not path.is_file():
        return []
    saved = _read_json(path).get(H.META_KEY, {}).get(H.META_CONFIG)
    if not isinstance(saved, dict):
        raise UserError(f"{path} has no meta.config: not a training history of this project")
    from zhbert.config import config_changes

    return [c for c in config_changes(saved, wanted) if c.split(":", 1)[0] not in CORPUS_KEYS]


# --------------------------------------------------------------------------- the steps


@dataclass
class Demo:
    """What the steps share: the arguments, the subprocess timings and what was reused."""

    args: argparse.Namespace
    timings: dict[str, float] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)

    @property
    def final(self) -> Path:
        return self.args.run_dir / "final"

    @property
    def analysis(self) -> Path:
        return self.args.out_dir / "analysis_result.json"

    @property
    def history(self) -> Path:
        return self.args.run_dir / H.HISTORY_NAME

    @property
    def probes(self) -> Path:
        return self.args.out_dir / "cloze_probes.json"

    def run(self, step: str, cmd: list[str]) -> None:
        """Run one command-line tool; time it; fail on a non-zero exit."""
        print(f"\n==> [{step}] {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd)  # relative paths mean what they meant to the user
        self.timings[step] = round(time.perf_counter() - start, 1)
        if proc.returncode != 0:
            raise UserError(f"demo step '{step}' failed with exit code {proc.returncode}")


def tool(script: str) -> list[str]:
    """The command that runs one of the repository's scripts with this interpreter."""
    return [sys.executable, str(ROOT / script)]


def step_prepare(demo: Demo) -> None:
    """Build the demo corpus unless it is already prepared."""
    a = demo.args
    if not a.redo and (a.corpus / "dataset_stats.json").exists():
        print(f"==> [prepare] reusing {a.corpus} (use --redo to rebuild)")
        demo.reused.append("prepare")
        return
    cmd = [*tool("examples/prepare_dataset.py"), "--source", "demo", "--out-dir", str(a.corpus),
           "--overwrite"]
    if a.max_documents:
        cmd += ["--max-documents", str(a.max_documents)]
    demo.run("prepare", cmd)


def train_command(args: argparse.Namespace) -> list[str]:
    """main_train.py for the preset; resumes an interrupted run, restarts one with no checkpoint."""
    cmd = [*tool("main_train.py"), "--preset", args.preset, "--run-dir", str(args.run_dir)]
    for override in _overrides(args):
        cmd += ["--set", override]
    if args.redo:
        cmd.append("--overwrite")
    elif any((args.run_dir / "checkpoints").glob("step_*")):
        cmd.append("--resume")
    elif args.run_dir.exists():
        cmd.append("--overwrite")  # a run that died before its first checkpoint
    return cmd


def step_train(demo: Demo) -> None:
    """Train (or resume) unless a finished run with the same settings exists."""
    a = demo.args
    if not a.redo:
        changes = settings_changes(a.run_dir, requested_config(a))
        if changes:
            raise UserError(
                f"{a.run_dir} holds a run with other settings ({'; '.join(changes)}): retrain it "
                f"with --redo (make demo REDO=1) or choose another --run-dir (make demo RUN=...)")
        if (demo.final / "config.json").exists():
            print(f"==> [train] reusing finished run {a.run_dir} (use --redo to retrain)")
            demo.reused.append("train")
            return
    demo.run("train", train_command(a))


def step_analyze(demo: Demo) -> None:
    """analyze_100k.py on the run's history, with the forecast backtest (backtest.png)."""
    demo.run("analyze", [*tool("analyze_100k.py"), "--history", str(demo.history), "--output",
                         str(demo.analysis), "--backtest"])


def step_figures(demo: Demo) -> None:
    """visualize_results.py: every figure into the output folder."""
    demo.run("figures", [*tool("visualize_results.py"), "--history", str(demo.history),
                         "--analysis", str(demo.analysis), "--out-dir", str(demo.args.out_dir)])


def step_fill_mask(demo: Demo) -> None:
    """quick_start.py: fill-mask with the exported model."""
    cmd = [*tool("examples/quick_start.py"), "--model", str(demo.final), "--top-k", "5"]
    for text in FILL_MASK_TEXTS:
        cmd += ["--text", text]
    demo.run("fill-mask", cmd)


def step_probes(demo: Demo) -> None:
    """cloze_probes.py: top-1 hits on the committed probe set (and which occur in training)."""
    demo.run("probes", [*tool("examples/cloze_probes.py"), "--model", str(demo.final),
                        "--corpus", str(demo.args.corpus), "--json", str(demo.probes)])


# The demo in order; each step takes the shared Demo. New steps go here.
STEPS: list[tuple[str, Callable[[Demo], None]]] = [
    ("prepare", step_prepare), ("train", step_train), ("analyze", step_analyze),
    ("figures", step_figures), ("fill-mask", step_fill_mask), ("probes", step_probes),
]


# --------------------------------------------------------------------------- summary, reference


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median(values: list) -> float | None:
    """The median of ``values`` (None when empty).

    >>> _median([3.0, 1.0, 2.0]), _median([])
    (2.0, None)
    """
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def summarize(demo: Demo) -> dict:
    """The run's summary. A reused step's time is the one its own output recorded (the corpus's
    ``elapsed_s``, the history's last ``elapsed_s``), so the total is the demo's full cost."""
    a = demo.args
    steps = dict(demo.timings)
    if "prepare" in demo.reused:
        steps["prepare"] = _read_json(a.corpus / "dataset_stats.json").get("elapsed_s", 0.0)
    history = _read_json(demo.history)
    meta = history.get(H.META_KEY, {})
    if "train" in demo.reused:
        steps["train"] = (history.get(H.ELAPSED_S) or [0.0])[-1]
    steps = {name: steps[name] for name, _ in STEPS if name in steps}
    probes = _read_json(demo.probes) if demo.probes.exists() else None
    return {
        "preset": a.preset, "preset_choice": a.preset_choice, "overrides": a.overrides,
        "precision": meta.get("precision"), "median_tokens_per_s": _median(
            history.get(H.TOKENS_PER_S) or []),
        "total_s": round(sum(steps.values()), 1), "steps_s": steps, "reused": demo.reused,
        "held_out": {"step": history[H.EVAL_STEPS][-1], "mlm_acc": history[H.EVAL_MLM_ACC][-1],
                     "stderr": history[H.EVAL_STDERR][-1],
                     "best_mlm_acc": max(history[H.EVAL_MLM_ACC]),
                     "baselines": (meta.get(H.META_BASELINES) or {}).get("acc")},
        "code": {k: meta.get(k) for k in ("git_commit", "git_dirty")},
        "cloze_probes": None if probes is None else {
            k: probes[k] for k in ("n", "top1_hits", "top1_rate", "in_train_split")
            if k in probes},
        "machine": {"cpu": _cpu_name(), "logical_cpus": os.cpu_count(),
                    "python": platform.python_version(), "platform": platform.platform()},
        "outputs": {"corpus": str(a.corpus), "run_dir": str(a.run_dir), "model": str(demo.final),
                    "history": str(demo.history), "analysis": str(demo.analysis),
                    "figures": sorted(str(p) for p in a.out_dir.glob("*.png"))},
    }


def update_reference(demo: Demo) -> None:
    """Copy the run's history, analysis, figures and summary into the reference folder, then
    rewrite the README's results table from them."""
    a, ref = demo.args, demo.args.reference
    check_clean({"demo run": _read_json(demo.history).get(H.META_KEY, {})}, a.allow_dirty)
    _not_a_file(ref, "--reference")
    ref.mkdir(parents=True, exist_ok=True)
    for old in ref.glob("*.png"):
        if not (a.out_dir / old.name).exists():
            old.unlink()  # a figure the current code no longer draws
    sources = [demo.history, demo.analysis, a.out_dir / "demo_run.json", demo.probes,
               *sorted(a.out_dir.glob("*.png"))]
    for src in sources:
        atomic_write_bytes(ref / src.name, src.read_bytes())
    update_readme(a.readme, ref, a.readme_block)
    print(f"==> [reference] {len(sources)} files copied to {ref}; {a.readme} updated")


def _print_outputs(summary: dict, summary_path: Path) -> None:
    print("\n==> done ({:.0f} s of work). Outputs:".format(summary["total_s"]))
    for key, value in summary["outputs"].items():
        if key != "figures":
            print(f"  {key:9s} {value}")
    for fig in summary["outputs"]["figures"]:
        print(f"  figure    {fig}")
    print(f"  summary   {summary_path}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.update_readme:
        _not_a_file(args.reference, "--reference")
        update_readme(args.readme, args.reference, args.readme_block)
        return 0
    for path, flag in ((args.corpus, "--corpus"), (args.run_dir, "--run-dir"),
                       (args.out_dir, "--out-dir"), (args.reference, "--reference")):
        _not_a_file(path, flag)
    requested_config(args)  # a bad preset or --set fails here, before any work
    demo = Demo(args)
    for _, step in STEPS:
        step(demo)
    summary = summarize(demo)
    summary_path = args.out_dir / "demo_run.json"
    atomic_write_json(summary_path, summary)
    _print_outputs(summary, summary_path)
    if args.update_reference:
        update_reference(demo)
    return 0


if __name__ == "__main__":
    run_cli(main)
