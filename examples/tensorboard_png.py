#!/usr/bin/env python
"""Draw the scalars of a run's TensorBoard event files to one PNG (a stand-in for a screenshot of
TensorBoard where no browser is at hand; the values are read with TensorBoard's own reader).

    python examples/tensorboard_png.py --logdir runs/demo/tensorboard --out tensorboard.png
"""

from __future__ import annotations

import argparse
import struct
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


#: bytes before a record's data: its length (8) and the length's checksum (4)
RECORD_HEAD = 12


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--logdir", required=True, type=Path,
                   help="a run's TensorBoard directory (RUN/tensorboard)")
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
    return p.parse_args(argv)


def event_file_problem(data: bytes) -> str | None:
    """Why ``data`` is not the content of a TensorBoard event file, or None when it is.

    An event file is a sequence of records: an 8-byte length, its masked CRC-32C, the data and
    the data's masked CRC-32C. Every record must pass both checks (TensorBoard's reader stops
    silently at the first that does not); a last record cut short, as a run still writing leaves
    it, and an empty file (a writer just opened) are accepted.

    >>> event_file_problem(b""), event_file_problem(b"not an event file at all")
    (None, 'record 1, at byte 0, fails its length checksum')
    """
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    pos = records = 0
    while len(data) - pos >= RECORD_HEAD:
        (length,) = struct.unpack_from("<Q", data, pos)
        if masked_crc32c(data[pos:pos + 8]) != struct.unpack_from("<I", data, pos + 8)[0]:
            return f"record {records + 1}, at byte {pos}, fails its length checksum"
        end = pos + RECORD_HEAD + length + 4
        if end > len(data):
            break  # the last record is still being written
        if masked_crc32c(data[pos + RECORD_HEAD:end - 4]) != struct.unpack_from("<I", data,
                                                                               end - 4)[0]:
            return f"record {records + 1}, at byte {pos}, fails its data checksum"
        pos, records = end, records + 1
    if data and not records:
        return "no complete event record"
    return None


def check_event_files(logdir: Path) -> None:
    """UserError naming the first file in ``logdir`` that is not a TensorBoard event file."""
    for path in sorted(p for p in logdir.iterdir() if "tfevents" in p.name and p.is_file()):
        try:
            problem = event_file_problem(path.read_bytes())
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if problem:
            raise UserError(f"{path}: not a TensorBoard event file ({problem})")


def read_scalars(logdir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """``{tag: (steps, values)}`` of every scalar, as TensorBoard shows them (purged on resume);
    a damaged event file, or none holding a scalar, is a UserError."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not logdir.is_dir() or not any(logdir.glob("events.out.tfevents.*")):
        raise UserError(f"{logdir}: no TensorBoard event files (events.out.tfevents.*) there")
    check_event_files(logdir)
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: ([e.step for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)])
               for tag in acc.Tags()["scalars"]}
    if not scalars:
        raise UserError(f"{logdir}: the TensorBoard event files hold no scalars")
    return scalars


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
