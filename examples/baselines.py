#!/usr/bin/env python
"""Count-table baselines of a prepared corpus, scored on the trainer's fixed held-out masks.

    python examples/baselines.py --corpus data/demo --json baselines.json
    python examples/baselines.py --corpus data/zhwiki --preset paper

Unigram, left bigram, right bigram and left+right gap trigram (with back-off), counted from the
train split and scored on exactly the held-out set a run of --preset builds (zhbert.baselines
documents how masked neighbours are treated). The trainer stores the same block in its history.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert.baselines import MAX_COUNT_TOKENS, corpus_baselines, format_table  # noqa: E402
from zhbert.config import PRESETS, build_config  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, type=Path,
                   help="prepared corpus directory (examples/prepare_dataset.py)")
    p.add_argument("--json", type=Path, default=None,
                   help="write the baselines block (as stored in a history's meta) to this file")
    p.add_argument("--preset", default="demo",
                   help=f"preset whose held-out set is used: {', '.join(PRESETS)} (default demo)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set data.seq_len=128 (repeatable)")
    p.add_argument("--true-neighbours", action="store_true",
                   help="score with the true (unmasked) neighbours: a reference the model never "
                        "sees, for comparison with tables that ignore masking")
    p.add_argument("--max-tokens", type=int, default=MAX_COUNT_TOKENS,
                   help=f"count at most this many train tokens (default {MAX_COUNT_TOKENS:,})")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the held-out set, count, score, print the table, write the JSON."""
    from zhbert.corpus.binary import load_corpus_info, load_split
    from zhbert.data import build_eval_set

    args = parse_args(argv)
    if args.max_tokens < 1:
        raise UserError(f"--max-tokens must be >= 1 (got {args.max_tokens})")
    t0 = time.perf_counter()
    cfg = build_config(args.preset, None, [*args.overrides, f"data.corpus_dir={args.corpus}"])
    info = load_corpus_info(args.corpus)
    evals = build_eval_set(load_split(info.path, "val"), info, cfg.data)
    block = corpus_baselines(load_split(info.path, "train"), info, evals, cfg.data.format,
                             args.max_tokens, args.true_neighbours)
    block["held_out"] = {"preset": cfg.preset, "format": cfg.data.format,
                         "seq_len": cfg.data.seq_len, "mask_rate": cfg.data.eval_mask_rate,
                         "seed": cfg.data.eval_seed,
                         "sequences": sum(len(b.input_ids) for b in evals)}
    print(f"count-table baselines of {args.corpus} on the held-out set of --preset "
          f"{cfg.preset} ({block['held_out']['sequences']:,} sequences, "
          f"{100 * cfg.data.eval_mask_rate:g}% masked, seed {cfg.data.eval_seed})"
          + (", TRUE neighbours (reference)" if args.true_neighbours else ""))
    print(format_table(block))
    print(f"({time.perf_counter() - t0:.1f} s)")
    if args.json is not None:
        atomic_write_json(args.json, block)
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
