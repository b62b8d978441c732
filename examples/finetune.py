#!/usr/bin/env python
"""Fine-tune a run's export or checkpoint on a Chinese downstream task, through transformers.

    python examples/finetune.py --model runs/demo/final --task ner
    python examples/finetune.py --model runs/demo/checkpoints/step_3000 --task cws \\
        --train-limit 2000 --epochs 1 --record runs/demo
    python examples/finetune.py --model runs/demo/final --task sentiment --init random

Loads the model with transformers' AutoModelForTokenClassification / ...SequenceClassification
(a checkpoint is first converted with the export code), trains with AdamW, linear warmup and
decay and the trainer's CPU precision rule, keeps the weights of the best dev score, scores test
with them, and writes --out: result.json and the fine-tuned model in transformers format.
--record RUN adds the scores to the run's RUN/downstream_scores.json (zhbert/downstream_schema.py).
docs/DOWNSTREAM.md describes the tasks, the splits and every flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow running without `pip install -e .`
    sys.path.insert(0, str(ROOT))

from zhbert import downstream_schema as S  # noqa: E402
from zhbert.downstream.finetune import DEFAULT_MAX_LENGTH, POOLING_HELP, FinetuneConfig  # noqa: E402
from zhbert.downstream.record import score_record  # noqa: E402
from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_dir, atomic_write_json  # noqa: E402

RESULT_NAME = "result.json"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (the FinetuneConfig fields, plus what to read and write)."""
    d = FinetuneConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path,
                   help="an export (RUN/final) or a checkpoint (RUN/checkpoints/step_N)")
    p.add_argument("--task", required=True, help="task name (ner, cws, sentiment, ...)")
    p.add_argument("--init", choices=("pretrained", "random"), default=d.init,
                   help="start from the model's weights, or from the same architecture freshly "
                        "initialised (the random-init baseline); default pretrained")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: RUN/finetune/TASK-WHAT-seedN beside the model)")
    p.add_argument("--no-model", action="store_true",
                   help="write result.json only, not the fine-tuned weights")
    p.add_argument("--record", type=Path, default=None, metavar="RUN",
                   help="also add the scores to the run's downstream scores file "
                        "(RUN/downstream_scores.json, zhbert/downstream_schema.py)")
    p.add_argument("--step", type=int, default=None,
                   help="pretraining step of --model for the record (default: a checkpoint's "
                        "own step, or the last step of RUN/training_history.json for RUN/final)")
    p.add_argument("--epochs", type=int, default=d.epochs,
                   help=f"passes over the train split (default {d.epochs})")
    p.add_argument("--max-steps", type=int, default=d.max_steps,
                   help="train this many updates, over as many epochs as needed (default 0: "
                        "--epochs decides)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"examples (windows) per update (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--warmup", type=float, default=d.warmup,
                   help=f"fraction of the updates spent warming up (default {d.warmup})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay,
                   help=f"AdamW weight decay (default {d.weight_decay})")
    p.add_argument("--clip-norm", type=float, default=d.clip_norm,
                   help=f"max gradient norm, 0 for none (default {d.clip_norm})")
    p.add_argument("--max-length", type=int, default=d.max_length,
                   help="tokens per input with [CLS] and [SEP]; longer sentences of a token task "
                        "are windowed (default: the model's max_position_embeddings, at most "
                        f"{DEFAULT_MAX_LENGTH})")
    p.add_argument("--eval-every", type=int, default=d.eval_every,
                   help="score dev every this many updates (default 0: after every epoch)")
    p.add_argument("--eval-batch-size", type=int, default=d.eval_batch_size,
                   help=f"inputs per batch when scoring (default {d.eval_batch_size})")
    for split in ("train", "dev", "test"):
        p.add_argument(f"--{split}-limit", type=int, default=None,
                       help=f"use this many {split} examples, drawn with --data-seed (default all)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help="seed of the head's (or a random init's) weights, batch order and "
                        f"dropout (default {d.seed})")
    p.add_argument("--data-seed", type=int, default=d.data_seed,
                   help=f"seed of which examples the limits keep (default {d.data_seed})")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=d.precision,
                   help="auto: bf16 only where native and measured faster, else fp32 (the "
                        "trainer's rule); default auto")
    p.add_argument("--device", choices=("cpu", "cuda"), default=d.device,
                   help="where to train (default cpu)")
    p.add_argument("--pooling", choices=("auto", "cls", "mean"), default=d.pooling,
                   help=POOLING_HELP + " (default auto)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: torch's own choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def default_out(model: Path, task: str, init: str, seed: int) -> Path:
    """``RUN/finetune/TASK-WHAT-seedN``: WHAT is the checkpoint (``step_3000``), the export's
    folder name (``final``) or ``random``."""
    run = model.parent.parent if model.parent.name == "checkpoints" else model.parent
    what = "random" if init == "random" else model.name
    return run / "finetune" / f"{task}-{what}-seed{seed}"


def check_out(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier fine-tune's output."""
    if out.exists() and not (out.is_dir() and (out / RESULT_NAME).is_file()):
        raise UserError(f"{out}: exists and is not a fine-tune output (no {RESULT_NAME}); "
                        "choose another --out")


def write_output(out: Path, model, source_dir: Path, result: dict, save_model: bool) -> None:
    """``out``: result.json, and the model (save_pretrained) with the export's tokenizer files."""
    from zhbert.downstream.source import quiet_transformers
    from zhbert.export import TOKENIZER_FILES

    with atomic_dir(out) as tmp:
        if save_model:
            with quiet_transformers():
                model.save_pretrained(tmp)
            for name in TOKENIZER_FILES:
                if (source_dir / name).is_file():
                    shutil.copyfile(source_dir / name, tmp / name)
        atomic_write_json(tmp / RESULT_NAME, result)


def main(argv: Sequence[str] | None = None) -> int:
    """Resolve the model and task, fine-tune, write the output (and the record)."""
    import torch
    import transformers

    from zhbert.downstream.finetune import finetune
    from zhbert.downstream.source import open_source
    from zhbert.downstream.tasks import get_task

    args = parse_args(argv)
    task = get_task(args.task)
    cfg = FinetuneConfig(**{f.name: getattr(args, f.name) for f in fields(FinetuneConfig)})
    out = args.out or default_out(args.model, task.name, cfg.init, cfg.seed)
    check_out(out)
    if args.record is not None:
        S.load_scores(args.record)  # a malformed scores file fails before training
    if args.threads < 0:
        raise UserError(f"--threads must be >= 0 (got {args.threads})")
    if args.threads:
        torch.set_num_threads(args.threads)
    with open_source(args.model) as source:
        step = args.step if args.step is not None else source.step
        if args.record is not None and cfg.init == "pretrained" and step is None:
            raise UserError(f"{args.model}: its pretraining step is unknown (no history beside "
                            "it); give --step for the record")
        if source.step != step:
            source = dataclasses.replace(source, step=step)
        model, _, result = finetune(task, source, cfg, progress=not args.quiet
                                    and sys.stderr.isatty())
        result = {"model": str(args.model), **result, "torch_version": torch.__version__,
                  "transformers_version": transformers.__version__}
        write_output(out, model, source.hf_dir, result, save_model=not args.no_model)
    print(f"{task.name} ({task.metric}) from {args.model} [{cfg.init}, seed {cfg.seed}]: "
          f"dev {result['dev']['score']:.4f} (update {result['best_step']}), test "
          f"{result['test']['score']:.4f}; {result['updates']} updates, {result['time_s']:.1f} s, "
          f"{result['precision']['precision']}")
    print(f"written: {out}")
    if args.record is not None:
        records = S.save_records(args.record, [score_record(result, out)])
        print(f"recorded: {S.scores_path(args.record)} ({len(records)} records)")
    return 0


if __name__ == "__main__":
    run_cli(main)
