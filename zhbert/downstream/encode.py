"""Task examples -> model inputs for the export's character-level tokenizer, and back.

Token tasks (one tag per character): every character is one token. A character is normalised as
the pretraining corpus was (:func:`zhbert.corpus.text.normalize_text`: NFC, full-width ASCII to
half-width) and looked up alone with the export's tokenizer, so that a Latin letter or a digit
never merges with its neighbours into one WordPiece word; a character the vocabulary lacks, or one
the tokenizer drops (whitespace, control characters), becomes ``[UNK]`` and keeps its tag.

A sentence longer than ``max_length - 2`` characters (room for ``[CLS]`` and ``[SEP]``) is cut
into windows of ``max_length - 2`` characters (:func:`windows`): back to back for training (every
tag is trained on), overlapping by half for prediction, where each character takes the tag
predicted by the window that gives it the most context on both sides (:func:`owners`). Every
gold tag is therefore scored; nothing is truncated or filled in.

Sequence tasks: the normalised text through the tokenizer, truncated to ``max_length`` tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from zhbert.corpus.text import normalize_text
from zhbert.layout import IGNORE_INDEX

IGNORE = IGNORE_INDEX  # label of [CLS], [SEP] and padding: no loss, no prediction


@dataclass(frozen=True)
class Item:
    """One model input: ``ids`` with ``[CLS]``/``[SEP]``, ``labels`` aligned to them; ``example``
    and ``start`` locate a token-task window in its sentence."""

    ids: tuple[int, ...]
    labels: tuple[int, ...] | int
    example: int
    start: int = 0


def char_lookup(tokenizer) -> Callable[[str], int]:
    """``char -> token id``, one id per character (cached); ``[UNK]`` when there is none."""
    cache: dict[str, int] = {}
    unk = tokenizer.unk_token_id

    def lookup(ch: str) -> int:
        if ch not in cache:
            ids = tokenizer(normalize_text(ch), add_special_tokens=False)["input_ids"]
            cache[ch] = ids[0] if ids else unk
        return cache[ch]

    return lookup


def windows(n: int, size: int, stride: int) -> list[tuple[int, int]]:
    """``(start, end)`` windows of ``size`` covering ``range(n)``, every ``stride``; the last one
    ends at ``n``.

    >>> windows(3, 4, 2), windows(7, 4, 4), windows(7, 4, 2)
    ([(0, 3)], [(0, 4), (3, 7)], [(0, 4), (2, 6), (3, 7)])
    """
    if n <= size:
        return [(0, n)]
    return [(s, s + size) for s in range(0, n - size, stride)] + [(n - size, n)]


def owners(n: int, spans: Sequence[tuple[int, int]]) -> list[int]:
    """For each position, the span (index) with the most context on its shorter side.

    >>> owners(7, [(0, 4), (2, 6), (3, 7)])
    [0, 0, 0, 1, 1, 2, 2]
    """
    return [max(range(len(spans)), key=lambda w: (min(i - spans[w][0], spans[w][1] - 1 - i), -w))
            for i in range(n)]


def token_items(examples, lookup: Callable[[str], int], tag_ids: dict[str, int], cls: int,
                sep: int, max_length: int, stride: int | None = None) -> list[Item]:
    """Windows of token-task examples (``.chars``, ``.tags``); ``stride`` defaults to the window
    size (back to back)."""
    size = max_length - 2
    items = []
    for i, ex in enumerate(examples):
        ids = [lookup(c) for c in ex.chars]
        tags = [tag_ids[t] for t in ex.tags]
        for s, e in windows(len(ids), size, stride or size):
            items.append(Item((cls, *ids[s:e], sep), (IGNORE, *tags[s:e], IGNORE), i, s))
    return items


def sequence_items(examples, tokenizer, max_length: int) -> list[Item]:
    """Sequence-task examples (``.text``, ``.label``), truncated to ``max_length`` tokens."""
    texts = [normalize_text(ex.text) for ex in examples]
    enc = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [Item(tuple(ids), int(ex.label), i) for i, (ids, ex) in enumerate(zip(enc, examples,
                                                                                strict=True))]


def train_batches(items: Sequence[Item], batch_size: int, generator: torch.Generator,
                  group: int = 50) -> list[list[int]]:
    """One epoch's batches (item indices): shuffled, then sorted by length within blocks of
    ``group`` batches (less padding), the batches in random order."""
    order = torch.randperm(len(items), generator=generator).tolist()
    block = batch_size * group
    batches = []
    for b in range(0, len(order), block):
        chunk = sorted(order[b:b + block], key=lambda i: len(items[i].ids))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[p] for p in perm]


def eval_batches(items: Sequence[Item], batch_size: int) -> list[list[int]]:
    """Batches for prediction: sorted by length, in order."""
    order = sorted(range(len(items)), key=lambda i: len(items[i].ids))
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def collate(items: Sequence[Item], pad: int) -> dict[str, torch.Tensor]:
    """Padded ``input_ids``, ``attention_mask`` and ``labels`` of a batch."""
    width = max(len(it.ids) for it in items)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for r, it in enumerate(items):
        ids[r, :len(it.ids)] = torch.tensor(it.ids)
        mask[r, :len(it.ids)] = 1
    if isinstance(items[0].labels, int):
        labels = torch.tensor([it.labels for it in items])
    else:
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        for r, it in enumerate(items):
            labels[r, :len(it.labels)] = torch.tensor(it.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def assemble_tags(examples, items: Sequence[Item], predicted: Sequence[Sequence[int]],
                  tags: Sequence[str]) -> list[list[str]]:
    """Per-sentence tag strings from the windows' predictions (``predicted[k]``: the argmax over
    item ``k``'s characters, ``[CLS]``/``[SEP]`` excluded), each character from its owner."""
    spans: list[list[tuple[int, int, int]]] = [[] for _ in examples]
    for k, it in enumerate(items):
        spans[it.example].append((it.start, it.start + len(it.ids) - 2, k))
    out = []
    for ex, own in zip(examples, spans, strict=True):
        who = owners(len(ex.chars), [(s, e) for s, e, _ in own])
        out.append([tags[predicted[own[w][2]][i - own[w][0]]] for i, w in enumerate(who)])
    return out


__all__ = ["IGNORE", "Item", "assemble_tags", "char_lookup", "collate", "eval_batches",
           "owners", "sequence_items", "token_items", "train_batches", "windows"]
