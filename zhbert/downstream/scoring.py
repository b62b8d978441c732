"""The scorers of the downstream tasks: strict entity F1, SIGHAN word F1, accuracy.

* Entity (and tagged-word) spans come from BMES tags the strict way (seqeval's ``mode="strict"``
  with the IOBES scheme, ``M`` read as ``I``): ``S-X`` is a span, and so is ``B-X M-X... E-X``
  with one type throughout; any other run (``M-X`` without a ``B-X``, a ``B-X`` never closed, a
  type change) is no span at all. Scores are micro averages over all spans of all sequences.
* Words come from BMES word tags the way a segmenter's output becomes text: a word starts at
  ``B`` or ``S`` and after ``E`` or ``S``, so every character lies in exactly one word even when
  the tags are not a valid sequence. Precision and recall count words whose character span is the
  same in gold and prediction, as the SIGHAN bakeoff scorer does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from zhbert.errors import UserError

Span = tuple[int, int, str]  # [start, end) and type


def tag_spans(tags: Sequence[str]) -> list[Span]:
    """Strict spans ``(start, end, type)`` of BMES tags (``"O"`` outside; ``"S"`` untyped).

    >>> tag_spans(["B-PER", "E-PER", "O", "S-LOC", "M-ORG", "E-ORG", "B-LOC", "E-ORG"])
    [(0, 2, 'PER'), (3, 4, 'LOC')]
    >>> tag_spans(["B", "M", "E", "S"])
    [(0, 3, ''), (3, 4, '')]
    """
    spans: list[Span] = []
    start, kind = None, None
    for i, tag in enumerate(tags):
        prefix, _, typ = tag.partition("-")
        if prefix == "S":
            spans.append((i, i + 1, typ))
            start = None
        elif prefix == "B":
            start, kind = i, typ
        elif prefix == "M" and start is not None and typ == kind:
            continue
        elif prefix == "E" and start is not None and typ == kind:
            spans.append((start, i + 1, typ))
            start = None
        else:  # "O", or a run that breaks the scheme
            start = None
    return spans


def word_spans(tags: Sequence[str]) -> list[tuple[int, int]]:
    """Word spans ``(start, end)`` of BMES word tags, every character in one word.

    >>> word_spans(["B", "E", "S", "B", "M", "E"])
    [(0, 2), (2, 3), (3, 6)]
    >>> word_spans(["M", "B", "B", "E", "E"])  # invalid: a word starts at each B and after E/S
    [(0, 1), (1, 2), (2, 4), (4, 5)]
    """
    spans, start = [], 0
    for i in range(1, len(tags) + 1):
        if i == len(tags) or tags[i] in ("B", "S") or tags[i - 1] in ("E", "S"):
            spans.append((start, i))
            start = i
    return spans if tags else []


def prf(correct: int, n_pred: int, n_gold: int) -> dict:
    """Precision, recall and F1 from counts (0 where a denominator is 0).

    >>> prf(2, 4, 5)
    {'precision': 0.5, 'recall': 0.4, 'f1': 0.4444444444444445}
    """
    p = correct / n_pred if n_pred else 0.0
    r = correct / n_gold if n_gold else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _check_pairs(gold: Sequence, pred: Sequence, token: bool) -> None:
    if len(gold) != len(pred):
        raise UserError(f"scoring: {len(gold)} gold but {len(pred)} predicted examples")
    if token:
        for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
            if len(g) != len(p):
                raise UserError(f"scoring: example {i} has {len(g)} gold but {len(p)} predicted tags")


def span_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Strict span F1 (micro) of BMES tag sequences, overall and per type; ``score`` is F1.

    >>> s = span_scores([["B-PER", "E-PER", "S-LOC"]], [["B-PER", "E-PER", "O"]])
    >>> s["score"], s["precision"], s["recall"], s["per_type"]["LOC"]["gold"]
    (0.6666666666666666, 1.0, 0.5, 1)
    """
    _check_pairs(gold, pred, token=True)
    counts: Counter = Counter()
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(tag_spans(g)), set(tag_spans(p))
        for span in gs:
            counts["gold", span[2]] += 1
        for span in ps:
            counts["pred", span[2]] += 1
        for span in gs & ps:
            counts["correct", span[2]] += 1
    types = sorted({t for _, t in counts})
    total = {k: sum(v for (kk, _), v in counts.items() if kk == k) for k in ("correct", "pred", "gold")}
    out = prf(total["correct"], total["pred"], total["gold"])
    out.update(score=out["f1"], n=len(gold), **total)
    out["per_type"] = {t: {**prf(counts["correct", t], counts["pred", t], counts["gold", t]),
                           "gold": counts["gold", t]} for t in types}
    return out


def word_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Word-level precision, recall and F1 of BMES word tags (SIGHAN bakeoff); ``score`` is F1.

    >>> word_scores([["B", "E", "S"]], [["S", "S", "S"]])["score"]
    0.4
    """
    _check_pairs(gold, pred, token=True)
    correct = n_pred = n_gold = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(word_spans(g)), set(word_spans(p))
        correct += len(gs & ps)
        n_pred += len(ps)
        n_gold += len(gs)
    out = prf(correct, n_pred, n_gold)
    out.update(score=out["f1"], n=len(gold), correct=correct, pred=n_pred, gold=n_gold)
    return out


def accuracy_scores(gold: Sequence[int], pred: Sequence[int]) -> dict:
    """Accuracy of class labels; ``score`` is the accuracy.

    >>> accuracy_scores([1, 0, 1, 1], [1, 1, 1, 1])
    {'score': 0.75, 'accuracy': 0.75, 'correct': 3, 'n': 4}
    """
    _check_pairs(gold, pred, token=False)
    correct = sum(int(g) == int(p) for g, p in zip(gold, pred, strict=True))
    acc = correct / len(gold) if gold else 0.0
    return {"score": acc, "accuracy": acc, "correct": correct, "n": len(gold)}


#: each metric name (``Task.metric``) and its scorer
SCORERS = {"entity_f1": span_scores, "word_f1": word_scores, "tagged_word_f1": span_scores,
           "accuracy": accuracy_scores}
