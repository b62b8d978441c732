"""Pretrain a small Chinese BERT (MLM, optionally + NSP) with a hand-written PyTorch loop.

    python main_train.py --preset demo                      # the CPU demo (prepares data/demo)
    python main_train.py --preset paper --dry-run           # print the config and parameter count
    python main_train.py --preset smoke --set data.corpus_dir=/tmp/c --run-dir /tmp/run
    python main_train.py --preset demo --resume             # continue from the last checkpoint
    torchrun --nproc_per_node 4 main_train.py --preset paper --set data.corpus_dir=data/zhwiki

Presets, every config key and the multi-GPU / multi-machine recipes: docs/TRAINING.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert import history_schema as H  # noqa: E402
from zhbert.config import PRESETS, TrainConfig, build_config  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="see docs/TRAINING.md for every key")
    p.add_argument("--preset", default="demo",
                   help=f"configuration preset: {', '.join(PRESETS)} (default: demo)")
    p.add_argument("--config", type=Path, default=None,
                   help="JSON file with (partial) config sections, applied after the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set optim.lr=3e-4 (repeatable)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="run directory for history, checkpoints, logs (default: runs/<preset>)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from the latest complete checkpoint in the run directory")
    mode.add_argument("--overwrite", action="store_true",
                      help="discard an existing run in the run directory and start again")
    p.add_argument("--dry-run", action="store_true",
                   help="build everything, print the resolved config and 'parameters: N', exit")
    return p.parse_args(argv)


def dry_run(cfg: TrainConfig) -> int:
    """Build model, optimizer and (when the corpus exists) data; print the parameter count."""
    import torch

    from zhbert.corpus.binary import load_corpus_info, load_split
    from zhbert.data import BatchBuilder, build_eval_set
    from zhbert.models import build_model
    from zhbert.training.optim import make_optimizer

    corpus = Path(cfg.data.corpus_dir)
    note = None
    if (corpus / "corpus_meta.json").is_file():
        info = load_corpus_info(corpus)
        cfg.model.vocab_size, cfg.model.pad_token_id = info.vocab_size, info.pad_id
        builder = BatchBuilder(load_split(corpus, "train"), info, cfg.data, seed=cfg.run.seed)
        first = builder.build(0)
        evals = build_eval_set(load_split(corpus, "val"), info, cfg.data)
        note = (f"data: batch {tuple(first.input_ids.shape)}, held-out "
                f"{evals.n_sequences} sequences / {evals.n_masked} masked tokens")
    else:
        note = (f"corpus {corpus} not prepared: parameter count at model.vocab_size="
                f"{cfg.model.vocab_size}")
    print("resolved config:\n" + cfg.to_json())
    model = build_model(cfg.model)
    make_optimizer(model, cfg.optim, torch.device("cpu"))
    print(note)
    print(f"parameters: {model.num_parameters()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = build_config(args.preset, args.config, args.overrides)
    if args.dry_run:
        return dry_run(cfg)
    from zhbert.training.loop import train

    run_dir = args.run_dir or Path("runs") / cfg.preset
    summary = train(cfg, run_dir, resume=args.resume, overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {summary['steps']} steps in {summary['elapsed_s']} s, held-out MLM acc "
              f"{summary[H.EVAL_MLM_ACC]}, run dir {summary['run_dir']}")
    return 0


if __name__ == "__main__":
    run_cli(main)
