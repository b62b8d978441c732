"""The leakage guard's data: the dev and test texts of every task, a matching key, an overlap count.

A pretraining corpus that holds a task's dev or test sentences inflates the task's scores. The
corpus pipeline (:mod:`zhbert.corpus.prepare`) therefore normalises and splits every text that
:func:`heldout_texts` returns exactly as it does its own documents, and drops each corpus
sentence whose :func:`text_key` is among theirs. The key removes all whitespace and case-folds:
the tasks' texts are characters joined without the word and POS tags of their files, while the
corpus keeps a space between Latin words and lowercases later, in its tokenizer.

:func:`ngram_overlap` measures what exact matching leaves: how many test sentences share a long
character n-gram with a corpus (docs/DOWNSTREAM.md, ``examples/downstream_overlap.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zhbert.taskdata import splits as S

#: tasks whose texts are another task's (the same People's Daily paragraphs, other tags)
SAME_TEXTS = {"pos": "cws"}
HELDOUT_SPLITS = ("dev", "test")


def text_key(text: str) -> str:
    """The key a held-out text and a corpus sentence are matched on: no whitespace, case-folded.

    >>> text_key("IBM 公司 在 北京。") == text_key("ibm公司在北京。")
    True
    """
    return "".join(text.split()).casefold()


def heldout_texts(tasks: Iterable[str] | None = None) -> dict[str, list[str]]:
    """The dev and test texts of each task (``SPLITTERS`` order), tasks in :data:`SAME_TEXTS`
    skipped since their texts are another task's."""
    names = [n for n in (tasks or S.SPLITTERS) if n not in SAME_TEXTS]
    out = {}
    for name in names:
        splits = S.SPLITTERS[name]()
        out[name] = [e.text for split in HELDOUT_SPLITS for e in splits.get(split)]
    return out


def ngrams(text: str, n: int) -> Iterable[str]:
    """The character n-grams of ``text`` (none when it is shorter than ``n``).

    >>> list(ngrams("abcd", 3))
    ['abc', 'bcd']
    """
    return (text[i:i + n] for i in range(len(text) - n + 1))


def ngram_overlap(tests: Sequence[str], corpus: Iterable[str], n: int = 13) -> dict:
    """How much of ``tests`` a corpus holds: exact sentence matches (by :func:`text_key`), test
    sentences sharing at least one character ``n``-gram with it, and the share of test
    characters covered by such n-grams. The n-grams of the tests are kept, the corpus streamed.

    >>> r = ngram_overlap(["今天天气很好。", "完全不同的一句"], ["今天天气很好。", "别的"], n=4)
    >>> r["exact"], r["with_shared_ngram"], round(r["covered_char_share"], 3)
    (1, 1, 0.5)
    """
    keys = [text_key(t) for t in tests]
    wanted = {g for k in keys for g in ngrams(k, n)}
    exact_keys = set(keys)
    seen: set[str] = set()
    exact: set[str] = set()
    for sentence in corpus:
        key = text_key(sentence)
        if key in exact_keys:
            exact.add(key)
        seen.update(g for g in ngrams(key, n) if g in wanted)
    hit_sentences = covered = total = 0
    for key in keys:
        mask = [False] * len(key)
        for i, g in enumerate(ngrams(key, n)):
            if g in seen:
                mask[i:i + n] = [True] * n
        hit_sentences += any(mask)
        covered += sum(mask)
        total += len(key)
    return {"n": n, "test_sentences": len(keys), "exact": sum(k in exact for k in keys),
            "with_shared_ngram": hit_sentences,
            "covered_char_share": covered / total if total else 0.0}
