#!/usr/bin/env python
"""Analyse how MLM accuracy grows with training steps (thin front end of zhbert.analysis).

    python analyze_100k.py --history runs/demo/training_history.json
    python analyze_100k.py --history H100k.json --compare H50k.json --labels 100k 50k
    python analyze_100k.py --history runs/demo/training_history.json --target-acc 0.15
    python analyze_100k.py --history runs/demo/training_history.json --backtest   # + backtest.png
    python analyze_100k.py --history out/checkpoint-500/trainer_state.json --metric eval_accuracy
    python analyze_100k.py --history lightning_logs/version_0 --metric val_loss --target-loss 2.5
    python analyze_100k.py --history H.json --downstream RUN/downstream_scores.json

Reads this project's histories, the original study's, a Hugging Face trainer_state.json, a
TensorBoard run directory or event file, and CSV logs (zhbert.analysis.sources; README, "Analysing
other tools' logs"). Prints a bilingual report and writes the JSON (default: analysis_result.json
beside the history, or inside a TensorBoard run directory).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from zhbert.analysis import analyze, format_report, select_series
from zhbert.analysis.backtest import DEFAULT_CUTS
from zhbert.analysis.core import jsonable
from zhbert.analysis.downstream import downstream_analysis, history_mlm
from zhbert.analysis.downstream_record import load_record
from zhbert.analysis.forecast import DEFAULT_N_BOOT
from zhbert.analysis.sources import DIRECTIONS, load_source
from zhbert.analysis.target import format_target, time_to_target
from zhbert.errors import UserError, run_cli
from zhbert.io_utils import atomic_write_json, run_labels

RESULT_NAME = "analysis_result.json"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", required=True, type=Path,
                   help="the run's log: training_history.json (this project's or the original "
                        "study's), a trainer_state.json, a TensorBoard run directory or event "
                        "file, or a CSV (told apart by content)")
    p.add_argument("--compare", nargs="*", default=[], type=Path, metavar="OTHER.json",
                   help="other runs' logs to compare with (differences at matched steps; read "
                        "with the same --metric, --lr-metric and --direction)")
    p.add_argument("--metric", default=None, metavar="NAME",
                   help="the series to analyse: a key (eval_loss, eval_accuracy), a TensorBoard "
                        "tag or a CSV column (default: the only candidate; masked-LM accuracy "
                        "for this project's histories)")
    p.add_argument("--lr-metric", default=None, metavar="NAME",
                   help="the learning-rate series the schedule is inferred from (default: the "
                        "only one named like an lr: learning_rate, lr, lr-AdamW, ...)")
    p.add_argument("--direction", choices=DIRECTIONS, default=None,
                   help="max: higher is better (accuracy-like), min: lower is better "
                        "(loss-like); default: from the metric's name")
    p.add_argument("--labels", nargs="*", default=None,
                   help="labels for --history then each --compare file (default: the run directory of a training_history.json, else the file stem)")
    p.add_argument("--series", choices=("auto", "eval", "train"), default="auto",
                   help="accuracy series: held-out eval, training batches, or auto (eval when "
                        "present, else train; default)")
    p.add_argument("--target-step", type=float, default=None,
                   help="step to forecast (default: the planned last step of the lr schedule, "
                        "from meta or the lr column; 2x the last step when no plan is known)")
    p.add_argument("--continue-lr", default=None, metavar="constant|VALUE",
                   help="how training would continue past the planned schedule, needed for a "
                        "target beyond it: 'constant' holds the plan's last lr, VALUE is an lr")
    p.add_argument("--backtest", action="store_true",
                   help="also cut the history at --cuts, forecast its last step from each cut, "
                        "compare with the actual value; adds 'backtest' to the JSON and draws "
                        "backtest.png beside it")
    p.add_argument("--cuts", nargs="+", type=float, default=list(DEFAULT_CUTS), metavar="FRAC",
                   help="backtest cut fractions of the last step, each in (0, 1) "
                        f"(default {' '.join(f'{c:g}' for c in DEFAULT_CUTS)})")
    p.add_argument("--target", type=float, default=None, metavar="VALUE",
                   help="also report the step (and wall time) at which the run reached or, by its "
                        "forecast, will reach this value in the metric's direction (an accuracy "
                        "fraction such as 0.5, or a loss such as 2.5)")
    p.add_argument("--target-acc", type=float, default=None, metavar="ACC",
                   help="--target for an accuracy metric (a fraction in (0, 1), e.g. 0.5)")
    p.add_argument("--target-loss", type=float, default=None, metavar="LOSS",
                   help="--target for a lower-is-better metric (loss, perplexity), e.g. 2.5")
    p.add_argument("--downstream", type=Path, default=None, metavar="SCORES.json",
                   help="the run's downstream scores (RUN/downstream_scores.json, "
                        "zhbert/downstream_schema.py): adds a 'downstream' section to the JSON "
                        "and the report (score against pretraining step and held-out MLM "
                        "accuracy)")
    p.add_argument("--output", type=Path, default=None,
                   help="output JSON (default: analysis_result.json beside the history)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    p.add_argument("--n-boot", type=int, default=DEFAULT_N_BOOT,
                   help=f"bootstrap resamples for the forecast interval; every curve family is "
                        f"refitted on each (default {DEFAULT_N_BOOT})")
    return p.parse_args(argv)


def _target_flag(args: argparse.Namespace) -> tuple[str | None, float | None]:
    """The one target flag given (``--target``, ``--target-acc`` or ``--target-loss``) and its
    value; (None, None) when none is."""
    given = [(f, v) for f, v in (("--target", args.target), ("--target-acc", args.target_acc),
                                 ("--target-loss", args.target_loss)) if v is not None]
    if len(given) > 1:
        raise UserError(f"give one target, not {' and '.join(f for f, _ in given)}")
    if given and not math.isfinite(given[0][1]):
        raise UserError(f"{given[0][0]} must be a finite number (got {given[0][1]})")
    return given[0] if given else (None, None)


def _check_target(flag: str, target: float, series) -> None:
    """UserError when the target does not suit the analysed metric."""
    if flag == "--target-loss" and series.higher_is_better:
        raise UserError(f"--target-loss needs a lower-is-better metric; {series.metric} is "
                        f"higher-is-better (use --target-acc or --target)")
    if flag == "--target-acc" and not series.higher_is_better:
        raise UserError(f"--target-acc needs an accuracy metric; {series.metric} is "
                        f"lower-is-better (use --target-loss or --target)")
    if series.higher_is_better and not 0.0 < target < 1.0:
        raise UserError(f"{flag} must be an accuracy fraction in (0, 1) for {series.metric} "
                        f"(got {target:g})")


def main(argv: Sequence[str] | None = None) -> int:
    """Load, analyse, print the report, write the JSON."""
    args = parse_args(argv)
    if args.n_boot < 0:
        raise UserError(f"--n-boot must be >= 0 (got {args.n_boot})")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0 (got {args.seed})")
    if args.target_step is not None and args.target_step <= 0:
        raise UserError(f"--target-step must be positive (got {args.target_step:g})")
    if args.target_acc is not None and not 0.0 < args.target_acc < 1.0:
        raise UserError(f"--target-acc must be an accuracy fraction in (0, 1) "
                        f"(got {args.target_acc:g})")
    if args.backtest and not all(0 < c < 1 for c in args.cuts):
        raise UserError(f"--cuts must be fractions in (0, 1) (got {args.cuts})")
    flag, target = _target_flag(args)
    paths = [args.history, *args.compare]
    labels = args.labels or run_labels(paths)
    if len(labels) != len(paths):
        raise UserError(f"--labels: {len(labels)} label(s) for {len(paths)} history file(s)")
    histories = [load_source(p, args.metric, args.lr_metric, args.direction) for p in paths]
    if target is not None:
        _check_target(flag, target, select_series(histories[0], args.series))
    record = load_record(args.downstream) if args.downstream is not None else None
    for h in histories:
        for w in h.warnings:
            print(f"warning: {w}", file=sys.stderr)
    result = analyze(histories[0], series=args.series, target_step=args.target_step,
                     compare=list(zip(labels[1:], histories[1:], strict=True)), seed=args.seed,
                     n_boot=args.n_boot, label=labels[0], continue_lr=args.continue_lr,
                     backtest_cuts=args.cuts if args.backtest else None)
    if target is not None:
        result["time_to_target"] = jsonable(time_to_target(
            histories[0], target, args.series, n_boot=args.n_boot, seed=args.seed))
    if record is not None:
        steps, acc = history_mlm(histories[0])
        result["downstream"] = downstream_analysis(record.table, steps, acc, seed=args.seed,
                                                   notes=record.notes, record=str(record.path))
    for w in result["input"]["warnings"][len(histories[0].warnings):]:  # the analysis' own
        print(f"warning: {w}", file=sys.stderr)
    output = args.output or (args.history / RESULT_NAME if args.history.is_dir()
                             else args.history.with_name(RESULT_NAME))
    print(format_report(result), end="")
    if target is not None:
        print("\n" + format_target(result["time_to_target"]), end="")
    atomic_write_json(output, result)
    print(f"\nwritten: {output}")
    if args.backtest:
        from zhbert.plots import FIGURES

        figure = FIGURES["backtest"](histories[0], result, output.with_name("backtest.png"))
        print(f"written: {figure}")
    return 0


if __name__ == "__main__":
    run_cli(main)
