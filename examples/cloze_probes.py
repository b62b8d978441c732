"""Score a trained model on the committed cloze probes (top-1 hits), optionally checking that no
probe occurs verbatim in a corpus's training split.

    python examples/cloze_probes.py --model runs/demo/final
    python examples/cloze_probes.py --model runs/demo/final --corpus data/demo --json probes.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402
from zhbert.probes import PROBES_PATH, load_probes, score_probes, seen_in_corpus  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, required=True,
                   help="exported model directory (RUN/final) or a checkpoint directory")
    p.add_argument("--probes", type=Path, default=PROBES_PATH,
                   help="probe file (default: the committed zhbert/cloze_probes.json)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="prepared corpus: report probes whose sentence occurs in its train split")
    p.add_argument("--top-k", type=int, default=5, help="candidates listed per probe (default 5)")
    p.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    return p.parse_args(argv)


def train_sentences(corpus: Path):
    """The train split's sentences as text (one character per token; WordPiece '##' removed)."""
    from zhbert.corpus.binary import load_corpus_info, load_split

    info = load_corpus_info(corpus)
    vocab = (corpus / "vocab.txt").read_text(encoding="utf-8").splitlines()
    if len(vocab) != info.vocab_size:
        raise UserError(f"{corpus / 'vocab.txt'}: {len(vocab)} tokens, corpus says "
                        f"{info.vocab_size}")
    chars = [t.removeprefix("##") for t in vocab]
    split = load_split(corpus, "train")
    return ("".join(chars[t] for t in split.sentence(i)) for i in range(len(split)))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from zhbert.predict import load_for_inference

    probes = load_probes(args.probes)
    model, tokenizer = load_for_inference(args.model)
    result = score_probes(model, tokenizer, probes, top_k=args.top_k)
    if args.corpus is not None:
        seen = seen_in_corpus(probes, train_sentences(args.corpus))
        for row, flag in zip(result["probes"], seen, strict=True):
            row["in_train_split"] = flag
        result["in_train_split"] = sum(seen)
    for row in result["probes"]:
        mark = "✓" if row["hit"] else "✗"
        print(f"{mark} {row['text']}  want {row['answer']}  got {' '.join(row['top'])}")
    print(f"top-1: {result['top1_hits']}/{result['n']} ({result['top1_rate']:.0%})"
          + (f"; {result['in_train_split']} probe(s) occur verbatim in the train split"
             if args.corpus is not None else ""))
    if args.json is not None:
        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    run_cli(main)
