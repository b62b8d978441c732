"""Overhead of watching a run live (the forecast at each held-out evaluation, TensorBoard) on the
demo preset.

python benchmarks/live_overhead.py [--history results/training_history.json] [--ab N]
       [--corpus /path/to/prepared/demo] [--steps 60] [--eval-interval 5] [--json OUT]

1. **Replay** (always): a recorded demo run (default the committed demo history,
   ``results/training_history.json``: the 2,000-step demo run) is
   replayed evaluation by evaluation; at each one the trainer's live forecast
   (``zhbert.training.live_forecast.live_forecast``, the same call with the same config) is made
   on the held-out points so far and timed in CPU seconds of the calling thread
   (``time.thread_time``, which other processes on a loaded machine do not inflate the way wall
   time is) and in wall seconds. Overhead = total forecast time / the recorded run's wall time
   (``elapsed_s``).
2. **A/B** (``--ab N``): N pairs of short demo-shaped training runs (the demo model and data;
   ``--steps`` steps, a held-out evaluation every ``--eval-interval`` steps), one with
   ``run.forecast`` and ``run.tensorboard`` off and one with both on, alternated (the order flips
   every pair) so that load from other processes hits both alike. Per pair: the ratio of the
   trainers' wall times and the extra seconds per evaluation; that extra, times the demo's number
   of evaluations, over the demo's wall time, is the A/B estimate of the demo overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from zhbert import history_schema as H  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", type=Path, default=ROOT / "results" / H.HISTORY_NAME,
                   help="a recorded demo run's history (default: results/training_history.json)")
    p.add_argument("--ab", type=int, default=0, metavar="N",
                   help="also run N alternating pairs of short training runs (default 0)")
    p.add_argument("--corpus", default="data/demo",
                   help="prepared demo corpus for --ab (default data/demo)")
    p.add_argument("--steps", type=int, default=60, help="steps of each --ab run (default 60)")
    p.add_argument("--eval-interval", type=int, default=5,
                   help="held-out evaluation interval of the --ab runs (default 5)")
    p.add_argument("--json", type=Path, default=None,
                   help="also write the summary (with the machine it ran on) to this JSON file")
    return p.parse_args(argv)


def replay(path: Path) -> dict:
    """Time the live forecast at every evaluation of the recorded run ``path``."""
    from zhbert.baselines import unigram_floor
    from zhbert.training.live_forecast import live_forecast

    try:
        h = json.loads(path.read_text(encoding="utf-8"))
        steps, acc = h[H.EVAL_STEPS], h[H.EVAL_MLM_ACC]
        meta = h[H.META_KEY]
        config, elapsed = meta["config"], float(h[H.ELAPSED_S][-1])
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{path}: not a training history with eval points and meta.config "
                        f"({exc})") from None
    cpu = wall = 0.0
    made = 0
    for i in range(1, len(steps) + 1):
        t, c = time.perf_counter(), time.thread_time()
        fc = live_forecast(steps[:i], acc[:i], config, seed=int(config["run"]["seed"]),
                           time_budget=meta.get(H.META_TIME_BUDGET), floor=unigram_floor(meta),
                           meta=meta)
        cpu += time.thread_time() - c
        wall += time.perf_counter() - t
        made += fc is not None
    shown = path.resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    return {"history": str(shown), "evaluations": len(steps), "forecasts": made,
            "run_wall_s": elapsed, "forecast_cpu_s": cpu, "forecast_wall_s": wall,
            "overhead_cpu": cpu / elapsed, "overhead_wall": wall / elapsed}


def _short_run(corpus: str, steps: int, every: int, on: bool, out: Path) -> float:
    """Wall seconds of one short demo-shaped training run (setup excluded)."""
    from zhbert.config import build_config
    from zhbert.training.loop import train

    flag = "true" if on else "false"
    cfg = build_config("demo", overrides=[
        f"data.corpus_dir={corpus}", "data.auto_prepare=false", f"run.max_steps={steps}",
        f"run.eval_interval={every}", f"run.log_interval={every}", f"run.save_interval={steps}",
        "run.export_final=false", "run.progress=false", f"optim.warmup_steps={every}",
        f"run.forecast={flag}", f"run.tensorboard={flag}"])
    return float(train(cfg, out, echo=lambda *_: None)["elapsed_s"])


def ab(args: argparse.Namespace, demo: dict) -> dict:
    """Alternating pairs of short runs without / with the live view."""
    if not (Path(args.corpus) / "corpus_meta.json").is_file():
        raise UserError(f"--corpus {args.corpus} is not a prepared corpus "
                        "(python examples/prepare_dataset.py --source demo --out-dir data/demo)")
    n_eval = args.steps // args.eval_interval
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.ab):
            order = (False, True) if i % 2 == 0 else (True, False)
            t = {on: _short_run(args.corpus, args.steps, args.eval_interval, on,
                                Path(tmp) / f"{i}_{int(on)}") for on in order}
            pairs.append({"off_s": t[False], "on_s": t[True], "ratio": t[True] / t[False],
                          "extra_per_eval_s": (t[True] - t[False]) / n_eval})
            print(f"pair {i + 1}: off {t[False]:.1f} s, on {t[True]:.1f} s, ratio "
                  f"{t[True] / t[False]:.4f}", flush=True)
    extra = statistics.median(p["extra_per_eval_s"] for p in pairs)
    return {"pairs": pairs, "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "median_extra_per_eval_s": extra,
            "demo_overhead_estimate": extra * demo["evaluations"] / demo["run_wall_s"]}


def main(argv: Sequence[str] | None = None) -> int:
    """Replay (and optionally A/B), print the figures and a JSON summary."""
    args = parse_args(argv)
    if args.ab < 0 or args.steps < 1 or args.eval_interval < 1:
        raise UserError("--ab must be >= 0, --steps and --eval-interval >= 1")
    demo = replay(args.history)
    print(f"replay of {demo['history']}: {demo['forecasts']} forecasts at "
          f"{demo['evaluations']} evaluations took {demo['forecast_cpu_s']:.2f} CPU s "
          f"({demo['forecast_wall_s']:.2f} wall s) against the run's {demo['run_wall_s']:.0f} s: "
          f"overhead {100 * demo['overhead_cpu']:.2f}% (CPU) / "
          f"{100 * demo['overhead_wall']:.2f}% (wall)")
    result = {"replay": demo}
    if args.ab:
        result["ab"] = ab(args, demo)
        print(f"A/B: median ratio with/without {result['ab']['median_ratio']:.4f} on "
              f"{args.steps}-step runs with an evaluation every {args.eval_interval} steps; "
              f"{result['ab']['median_extra_per_eval_s']:.3f} s per evaluation -> "
              f"{100 * result['ab']['demo_overhead_estimate']:.2f}% of the demo run")
    if args.json is not None:
        import torch

        from zhbert.bench.env import machine_info
        from zhbert.io_utils import atomic_write_json

        result["machine"] = machine_info("cpu", torch.get_num_threads())
        result["command"] = " ".join(["python", "benchmarks/live_overhead.py", *sys.argv[1:]])
        atomic_write_json(args.json, result)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    run_cli(main)
