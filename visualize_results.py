"""Draw the figure set for a training history (thin front end over zhbert.plots).

Example::

    python visualize_results.py --history runs/a/training_history.json --out-dir runs/a/figures
    python visualize_results.py --history h100k.json --compare h50k.json --labels 100k 50k
    python visualize_results.py --history runs/tb_run --metric eval/loss --out-dir figures

``--history`` takes every log analyze_100k.py reads (trainer_state.json, TensorBoard, CSV).
    python visualize_results.py --history H.json --downstream RUN/downstream_scores.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from zhbert.errors import UserError, run_cli
from zhbert.io_utils import read_json, run_labels

#: how to get a figure that was skipped, said after the reason
SKIP_HINTS = {"backtest": " (draw it with --analysis from analyze_100k.py --backtest)",
              "downstream": " (draw it with --downstream RUN/downstream_scores.json)"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", required=True,
                   help="the run's log to plot: training_history.json, trainer_state.json, a "
                        "TensorBoard run directory or event file, or a CSV")
    p.add_argument("--metric", default=None, metavar="NAME",
                   help="the series to draw and analyse (a key, tag or column; default: the only "
                        "candidate, masked-LM accuracy for this project's histories)")
    p.add_argument("--lr-metric", default=None, metavar="NAME",
                   help="the learning-rate series (default: the only one named like an lr)")
    p.add_argument("--direction", choices=("max", "min"), default=None,
                   help="max: higher is better, min: lower is better (default: from the "
                        "metric's name)")
    p.add_argument("--analysis", default=None,
                   help="analysis JSON written by analyze_100k.py (computed when omitted)")
    p.add_argument("--compare", nargs="+", default=[], metavar="OTHER.json",
                   help="other runs' history files to compare (draws comparison_50k_100k)")
    p.add_argument("--labels", nargs="+", default=None,
                   help="run labels: one for --history followed by one per --compare file "
                        "(default: the files' folder or file names)")
    p.add_argument("--downstream", default=None, metavar="SCORES.json",
                   help="the run's downstream scores (RUN/downstream_scores.json): draws "
                        "downstream.png (also drawn when --analysis holds a downstream section)")
    p.add_argument("--out-dir", default="figures", help="folder for the figures (default figures/)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"],
                   help="figure file format (default png)")
    p.add_argument("--dpi", type=int, default=150, help="resolution of raster output (default 150)")
    p.add_argument("--series", default="auto", choices=["auto", "eval", "train"],
                   help="accuracy series to analyse when --analysis is omitted (default auto)")
    p.add_argument("--target-step", type=int, default=None,
                   help="step to extrapolate to when --analysis is omitted (analysis default)")
    args = p.parse_args(argv)
    if not 30 <= args.dpi <= 600:
        p.error(f"--dpi must be between 30 and 600 (got {args.dpi})")
    return args


def _labels(args: argparse.Namespace) -> list[str]:
    paths = [Path(args.history), *map(Path, args.compare)]
    if args.labels is None:
        return run_labels(paths)
    if len(args.labels) != len(paths):
        raise UserError(f"--labels needs {len(paths)} label(s) (the history and each --compare "
                        f"file), got {len(args.labels)}")
    return list(args.labels)


def _read_analysis(path: str) -> dict:
    data = read_json(path, "an analysis file")
    if not isinstance(data, dict) or "series" not in data:
        raise UserError(f"{path}: not an analysis file (expected a JSON object with 'series')")
    return data


def main(argv: Sequence[str] | None = None) -> int:
    """Load the inputs, compute the analysis when needed, draw every figure."""
    args = parse_args(argv)
    from zhbert.analysis import analyze, select_series
    from zhbert.analysis.downstream_record import RECORD_NAME, load_record
    from zhbert.analysis.sources import load_source
    from zhbert.plots import render_all, skipped_figures

    def load(path):
        return load_source(path, args.metric, args.lr_metric, args.direction)

    history = load(args.history)
    record = load_record(args.downstream) if args.downstream else None
    labels = _labels(args)
    others = [(label, load(p)) for label, p in zip(labels[1:], args.compare, strict=True)]
    for h in [history, *(h for _, h in others)]:
        for w in h.warnings:  # dropped rows, percentages read as fractions
            print(f"warning: {w}", file=sys.stderr)
    if args.analysis:
        analysis = _read_analysis(args.analysis)
        kind, n = analysis["series"].get("kind", "auto"), analysis["series"].get("n")
        chosen = select_series(history, kind)
        if n is not None and chosen.n != n:
            raise UserError(f"{args.analysis}: analysis of {n} points does not match "
                            f"{args.history} ({chosen.n} {kind} points)")
        name = (analysis.get("metric") or {}).get("name")
        if name is not None and name != chosen.metric:
            raise UserError(f"{args.analysis}: an analysis of {name}, not of {chosen.metric}; "
                            f"give the same --metric as analyze_100k.py had")
        if others and not analysis.get("comparison"):
            redo = analyze(history, series=kind, compare=others, label=labels[0])
            analysis["comparison"] = redo["comparison"]
    else:
        analysis = analyze(history, series=args.series, target_step=args.target_step,
                           compare=others or None, label=labels[0])
    if record is not None:
        from zhbert.analysis.downstream import downstream_analysis, history_mlm

        steps, acc = history_mlm(history)
        analysis["downstream"] = downstream_analysis(record.table, steps, acc, notes=record.notes,
                                                     record=str(record.path))
    paths = render_all(history, analysis, args.out_dir, fmt=args.format, dpi=args.dpi,
                       compare=others, label=labels[0])
    for path in paths:
        print(path)
    hints = dict(SKIP_HINTS)
    beside = Path(args.history).with_name(RECORD_NAME)
    if beside.is_file():  # drawn only when asked for, so the plain command draws what it drew
        hints["downstream"] = f" (draw it with --downstream {beside})"
    for name, reason in skipped_figures(analysis).items():
        print(_skip_line(Path(args.out_dir) / f"{name}.{args.format}", reason,
                         hints.get(name, "")))
    return 0


def _skip_line(path: Path, reason: str, hint: str) -> str:
    """One line saying that the figure ``path`` was not drawn, why, and how to get it."""
    stale = "; the file already there is left from an earlier drawing" if path.exists() else ""
    return f"skipped {path}: {reason}{hint}{stale}"


if __name__ == "__main__":
    run_cli(main, sys.argv[1:])
