"""Fill in [MASK] characters with a trained model.

    python examples/quick_start.py --model runs/demo/final --text "今天天气很[MASK]。"

MODEL is an exported directory (transformers format, e.g. RUN/final) or a training checkpoint
directory (RUN/checkpoints/step_N).  Works offline; weights are read with safetensors only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script from anywhere: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zhbert.errors import run_cli  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Predict the characters hidden behind [MASK] in Chinese sentences.",
        epilog="With --json the output is one JSON list with one entry per [MASK], in order "
        "(texts in the order given, masks left to right, flattened across texts); each entry is "
        'a list of top-k {"token": ..., "score": ...} items, best first.',
    )
    parser.add_argument(
        "--model",
        required=True,
        help="exported model directory (config.json with model_type bert) or a training "
        "checkpoint directory (RUN/checkpoints/step_N)",
    )
    parser.add_argument(
        "--text",
        action="append",
        required=True,
        help="text containing one or more [MASK]; repeat the flag for several texts",
    )
    parser.add_argument(
        "--top-k", type=int, default=5, help="number of candidates per [MASK] (default 5)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print only a JSON list, one list of candidates per [MASK] (see below)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model, predict, print."""
    args = parse_args(argv)
    from zhbert.predict import fill_mask, load_for_inference

    model, tokenizer = load_for_inference(args.model)
    results = fill_mask(model, tokenizer, args.text, top_k=args.top_k)
    if args.json:
        flat = [candidates for per_text in results for candidates in per_text]
        print(json.dumps(flat, ensure_ascii=False))
        return 0
    for text, per_text in zip(args.text, results, strict=True):
        print(text)
        for i, candidates in enumerate(per_text, 1):
            shown = "  ".join(f"{c['token']} {c['score']:.4f}" for c in candidates)
            print(f"  [MASK] {i}: {shown}")
    return 0


if __name__ == "__main__":
    run_cli(main)
