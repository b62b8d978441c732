"""Batch tokenisation and jieba word-start alignment.

Sentences are tokenised in batches with the fast tokenizer (no special tokens). jieba segments the
same text; a token begins a word when its first character (from the tokenizer's character offsets,
not by assuming one character per token) is the first character of a jieba word. WordPiece
continuations (``##...``) never begin a word, so a Latin word counts as one word however it is
split, and the first token of every sentence always begins a word.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

_ITEM = 64  # sentences per tokenizer batch item (joined by newlines: fewer Python objects)
_CHUNK = 4096  # sentences per jieba call / progress step


def init_jieba():
    """Import and initialise jieba quietly (its default logger prints the dictionary loading)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def _word_start_chars(jieba, text: str, hmm: bool) -> np.ndarray:
    """Boolean array over ``text``: True at the first character of every jieba word."""
    flags = np.zeros(len(text) + 1, dtype=bool)
    # jieba.cut + cumulative lengths is cheaper than jieba.tokenize's per-word tuples; a word
    # that is whitespace gets a flag too, harmlessly, since no token starts on whitespace.
    lengths = np.fromiter(map(len, jieba.cut(text, HMM=hmm)), dtype=np.int64)
    flags[np.cumsum(lengths) - lengths] = True
    return flags


def encode_sentences(
    tokenizer,
    sentences: Sequence[str],
    vocab: Sequence[str],
    hmm: bool = True,
    progress: bool = False,
    desc: str = "tokenize",
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token ids (int64) and word-start flags (uint8) of each sentence.

    Sentences must not contain newlines (the splitter guarantees it).
    """
    from tqdm import tqdm

    jieba = init_jieba()
    is_cont = np.fromiter((t.startswith("##") for t in vocab), dtype=bool, count=len(vocab))
    all_ids: list[np.ndarray] = []
    all_ws: list[np.ndarray] = []
    with tqdm(total=len(sentences), desc=desc, unit="sent", disable=not progress,
              leave=False) as bar:
        for c0 in range(0, len(sentences), _CHUNK):
            chunk = sentences[c0 : c0 + _CHUNK]
            flags = _word_start_chars(jieba, "\n".join(chunk), hmm)
            items = ["\n".join(chunk[i : i + _ITEM]) for i in range(0, len(chunk), _ITEM)]
            encodings = tokenizer.encode_batch(items, add_special_tokens=False)
            base = 0
            for i, enc in zip(range(0, len(chunk), _ITEM), encodings, strict=True):
                group = chunk[i : i + _ITEM]
                ids, ws = _split_item(enc, group, flags, base, is_cont)
                all_ids.extend(ids)
                all_ws.extend(ws)
                base += sum(len(s) for s in group) + len(group)  # +1 newline per sentence
            bar.update(len(chunk))
    return all_ids, all_ws


def _split_item(enc, group: Sequence[str], flags: np.ndarray, base: int, is_cont: np.ndarray):
    """Cut one encoded batch item back into its sentences."""
    ids = np.asarray(enc.ids, dtype=np.int64)
    if ids.size:
        tok_starts = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)[:, 0]
    else:
        tok_starts = np.zeros(0, dtype=np.int64)
    sent_starts = np.cumsum([0] + [len(s) + 1 for s in group[:-1]])
    bounds = np.searchsorted(tok_starts, np.append(sent_starts, np.iinfo(np.int64).max))
    starts = flags[base + tok_starts] & ~is_cont[ids]
    starts[bounds[:-1][bounds[:-1] < len(ids)]] = True  # first token of a sentence
    out_ids, out_ws = [], []
    for k in range(len(group)):
        lo, hi = bounds[k], bounds[k + 1]
        out_ids.append(ids[lo:hi])
        out_ws.append(starts[lo:hi].astype(np.uint8))
    return out_ids, out_ws
