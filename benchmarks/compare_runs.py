"""Compare two training runs of one config: the last checkpoint's weights and the histories.

python benchmarks/compare_runs.py RUN_A RUN_B [--json OUT]

Used to check a resume after a kill (``benchmarks/gpu_run.sh``: an uninterrupted run against
one killed in the middle and resumed) and to measure how far two uninterrupted runs of the same
config drift apart on a device whose kernels are not bit-reproducible (atomics in backward).
Prints one line; the JSON holds, for the newest checkpoint step both runs have: the largest
absolute and relative weight difference over all tensors, the number of tensors that differ,
and for the history the largest absolute difference of ``loss`` and ``eval_mlm_acc``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zhbert.errors import UserError, run_cli  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_a", type=Path, help="first run directory")
    p.add_argument("run_b", type=Path, help="second run directory")
    p.add_argument("--json", default=None, help="write the comparison to this file")
    return p.parse_args(argv)


def _series_diff(a: list, b: list) -> float | None:
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if x is not None and y is not None]
    return max((abs(x - y) for x, y in pairs), default=None)


def compare(run_a: Path, run_b: Path) -> dict:
    """The comparison record of two run directories (UserError if they share no checkpoint)."""
    from safetensors.torch import load_file

    from zhbert.io_utils import read_json
    from zhbert.training.checkpoint import list_checkpoints

    steps_a, steps_b = dict(list_checkpoints(run_a)), dict(list_checkpoints(run_b))
    common = sorted(set(steps_a) & set(steps_b))
    if not common:
        raise UserError(f"{run_a} and {run_b} have no checkpoint step in common "
                        f"({sorted(steps_a)} vs {sorted(steps_b)})")
    step = common[-1]
    wa = load_file(str(steps_a[step] / "model.safetensors"))
    wb = load_file(str(steps_b[step] / "model.safetensors"))
    if set(wa) != set(wb):
        raise UserError(f"the checkpoints at step {step} hold different tensors")
    max_abs = max_rel = 0.0
    differ = 0
    for k in wa:
        a, b = wa[k].double(), wb[k].double()
        d = float((a - b).abs().max()) if a.numel() else 0.0
        differ += d > 0
        max_abs = max(max_abs, d)
        max_rel = max(max_rel, d / max(float(a.abs().max()), 1e-30))
    ha = read_json(run_a / "training_history.json", "a training history", obj=True)
    hb = read_json(run_b / "training_history.json", "a training history", obj=True)
    return {"step": step, "tensors": len(wa), "tensors_differing": differ,
            "identical": differ == 0, "max_abs_weight_diff": max_abs,
            "max_rel_weight_diff": max_rel,
            "max_abs_loss_diff": _series_diff(ha.get("loss", []), hb.get("loss", [])),
            "max_abs_eval_acc_diff": _series_diff(ha.get("eval_mlm_acc", []),
                                                  hb.get("eval_mlm_acc", []))}


def main(argv=None) -> int:
    args = parse_args(argv)
    rec = compare(args.run_a, args.run_b)
    print(f"step {rec['step']}: " + ("weights identical" if rec["identical"] else
          f"{rec['tensors_differing']} of {rec['tensors']} tensors differ, max abs "
          f"{rec['max_abs_weight_diff']:.3g} (rel {rec['max_rel_weight_diff']:.3g})")
          + f"; loss max diff {rec['max_abs_loss_diff']}")
    if args.json:
        from zhbert.io_utils import atomic_write_json

        atomic_write_json(args.json, {"run_a": str(args.run_a), "run_b": str(args.run_b), **rec})
    return 0


if __name__ == "__main__":
    run_cli(main)
