#!/usr/bin/env python
"""Draw the scalars of a run's TensorBoard event files to one PNG (a stand-in for a screenshot of
TensorBoard where no browser is at hand; the values are read with TensorBoard's own reader).

    python examples/tensorboard_png.py --logdir runs/demo/tensorboard --out tensorboard.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from zhbert.errors import UserError, run_cli  # noqa: E402

#: one panel per entry: title and the tags drawn in it (a tag that is absent is skipped)
PANELS = (
    ("loss", ("train/loss", "eval/loss")),
    ("MLM accuracy", ("train/mlm_acc", "eval/mlm_acc")),
    ("live forecast of the final held-out accuracy",
     ("forecast/final_acc", "forecast/final_acc_low", "forecast/final_acc_high")),
    ("learning rate", ("train/lr",)),
    ("tokens/s", ("train/tokens_per_s",)),
    ("gradient norm", ("train/grad_norm",)),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", required=True, type=Path,
                   help="a run's TensorBoard directory (RUN/tensorboard)")
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
    return p.parse_args(argv)


def read_scalars(logdir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """``{tag: (steps, values)}`` of every scalar, as TensorBoard shows them (purged on resume)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not logdir.is_dir() or not any(logdir.glob("events.out.tfevents.*")):
        raise UserError(f"{logdir}: no TensorBoard event files (events.out.tfevents.*) there")
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: ([e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)])
            for tag in acc.Tags()["scalars"]}


def draw(scalars: dict, title: str, out: Path, dpi: int) -> Path:
    """A 2 x 3 grid of the PANELS; baselines/* are drawn as dotted lines on the accuracy panel."""
    from zhbert.plots.common import drawing
    from zhbert.plots.style import new_figure, save_figure

    with drawing():
        fig = new_figure((13, 7))
        for ax, (name, tags) in zip(fig.subplots(2, 3).ravel(), PANELS, strict=True):
            for tag in tags:
                if tag in scalars:
                    ax.plot(*scalars[tag], marker="o" if tag.startswith(("eval", "forecast"))
                            else None, markersize=2.5, linewidth=1.1, label=tag)
            if name == "MLM accuracy":
                for i, tag in enumerate(sorted(t for t in scalars if t.startswith("baselines/"))):
                    ax.axhline(scalars[tag][1][-1], color=f"C{i + 2}", linestyle=":",
                               linewidth=1.0, label=tag)
            if name == "learning rate" and "train/lr" in scalars:
                ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
            ax.set_title(name)
            ax.set_xlabel("step")
            if ax.lines:
                ax.legend(fontsize=7)
        fig.suptitle(title)
        return save_figure(fig, out, dpi)


def main(argv: Sequence[str] | None = None) -> int:
    """Read the event files, draw, print the path."""
    args = parse_args(argv)
    title = f"TensorBoard scalars of {args.logdir} (drawn from the event files)"
    print(f"written: {draw(read_scalars(args.logdir), title, args.out, args.dpi)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
