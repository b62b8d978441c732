"""Count-table baselines: what a held-out MLM accuracy means next to plain character statistics.

Four predictors are built from the *train* split and scored on exactly the held-out positions
the trainer scores (``zhbert.data.build_eval_set``: same val sequences, same fixed masks):

* ``unigram``      — always the most frequent character;
* ``left_bigram``  — the most frequent character after the left neighbour;
* ``right_bigram`` — the most frequent character before the right neighbour;
* ``gap_trigram``  — the most frequent character between the left and the right neighbour.

**Neighbours are what the model sees.** A neighbour is read from the *masked* input, so when it
is itself ``[MASK]`` (or ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``: any special id) it is
unknown; a neighbour that the 80/10/10 rule replaced by a random character is used as given, as
the model has to. The token at the predicted position itself is never looked at.

**Back-off.** A bigram whose neighbour is unknown, or was never seen as a context in the train
split, falls back to the unigram. The gap trigram falls back, per position, to the better of
the two bigrams — the one whose answer has the higher conditional frequency in the train counts
(left on a tie; only the counts decide, never the held-out labels) — and then to the unigram.
Ties between characters inside one context go to the lower token id.

**Counts.** Only non-special train tokens are counted as targets (the model is never scored on
specials or padding). In the ``pairs`` format sentences are separate sequences, so a context
does not cross a sentence boundary; in ``packed`` blocks the stream is continuous, and so are
the counts. At most ``MAX_COUNT_TOKENS`` train tokens are counted (all of them on the demo).

>>> tables = count_tables(np.array([5, 6, 7, 5, 6, 8]), special_ids=(0, 4), vocab_size=9)
>>> int(tables.unigram), int(lookup(tables.left, np.array([5]))[0][0])
(5, 6)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zhbert.errors import UserError
from zhbert.history_schema import META_BASELINES

#: the predictors, weakest first (the order of every table and figure)
BASELINES = ("unigram", "left_bigram", "right_bigram", "gap_trigram")
#: key of the block in a history's ``meta`` and in the analysis JSON (owned by history_schema)
BASELINES_KEY = META_BASELINES
#: train tokens counted at most (from the start of the split): keeps the trainer's start cheap
MAX_COUNT_TOKENS = 20_000_000
NEIGHBOUR_RULE = ("neighbours read from the masked model input; a special neighbour ([MASK], "
                  "[CLS], [SEP], [PAD], [UNK]) is unknown and backs off; gap trigram -> better "
                  "bigram (train counts) -> unigram")
UNKNOWN = -1


@dataclass(frozen=True)
class Table:
    """Best answer per context: ``keys`` sorted context keys, ``pred`` the answer, ``prob`` its
    share of the context's count."""

    keys: np.ndarray
    pred: np.ndarray
    prob: np.ndarray


@dataclass(frozen=True)
class CountTables:
    """The four predictors' tables, counted from ``tokens`` train tokens."""

    vocab_size: int
    unigram: int
    left: Table
    right: Table
    gap: Table
    tokens: int


def neighbours(ids: np.ndarray, special_ids: Iterable[int],
               row_starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Left and right neighbour of every position of a (B, L) array; ``UNKNOWN`` (-1) at the
    edges, where the neighbour is a special id, and across ``row_starts`` (positions, in a
    single-row stream, that begin a new sentence).

    >>> left, right = neighbours(np.array([[2, 7, 4, 9, 3]]), special_ids=(2, 3, 4))
    >>> left.tolist(), right.tolist()
    ([[-1, -1, 7, -1, 9]], [[7, -1, 9, -1, -1]])
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 2:
        raise ValueError(f"ids must be (B, L), got shape {ids.shape}")
    known = np.where(np.isin(ids, np.fromiter(special_ids, np.int64)), UNKNOWN, ids)
    left = np.full_like(ids, UNKNOWN)
    right = np.full_like(ids, UNKNOWN)
    left[:, 1:], right[:, :-1] = known[:, :-1], known[:, 1:]
    if row_starts is not None and len(row_starts):
        starts = np.asarray(row_starts, dtype=np.int64)
        left[0, starts] = UNKNOWN
        right[0, starts[starts > 0] - 1] = UNKNOWN
    return left, right


def best_per_context(context: np.ndarray, target: np.ndarray, vocab_size: int) -> Table:
    """The most frequent ``target`` for every distinct ``context`` key (entries with an
    ``UNKNOWN`` context are skipped); ties go to the lower target id.

    >>> t = best_per_context(np.array([1, 1, 1, 2, -1]), np.array([8, 9, 9, 8, 8]), 10)
    >>> t.keys.tolist(), t.pred.tolist(), t.prob.round(3).tolist()
    ([1, 2], [9, 8], [0.667, 1.0])
    """
    keep = context != UNKNOWN
    pair = context[keep].astype(np.int64) * vocab_size + target[keep]
    uniq, counts = np.unique(pair, return_counts=True)
    ctx, tok = uniq // vocab_size, uniq % vocab_size
    order = np.lexsort((tok, -counts, ctx))  # by context, then count down, then id up
    ctx, tok, counts = ctx[order], tok[order], counts[order]
    first = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]]) if ctx.size else np.zeros(0, int)
    totals = np.add.reduceat(counts, first) if ctx.size else np.zeros(0, np.int64)
    return Table(keys=ctx[first], pred=tok[first], prob=counts[first] / np.maximum(totals, 1))


def lookup(table: Table, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(pred, prob)`` for each key: ``UNKNOWN`` and 0 where the key is unknown or unseen.

    >>> t = Table(keys=np.array([3, 7]), pred=np.array([10, 11]), prob=np.array([0.5, 0.9]))
    >>> [a.tolist() for a in lookup(t, np.array([7, -1, 5]))]
    [[11, -1, -1], [0.9, 0.0, 0.0]]
    """
    keys = np.asarray(keys, dtype=np.int64)
    if not len(table.keys):
        return np.full(keys.shape, UNKNOWN), np.zeros(keys.shape)
    pos = np.minimum(np.searchsorted(table.keys, keys), len(table.keys) - 1)
    hit = (keys != UNKNOWN) & (table.keys[pos] == keys)
    return np.where(hit, table.pred[pos], UNKNOWN), np.where(hit, table.prob[pos], 0.0)


def gap_keys(left: np.ndarray, right: np.ndarray, vocab_size: int) -> np.ndarray:
    """One int64 key per (left, right) pair; ``UNKNOWN`` when either side is unknown."""
    both = (left != UNKNOWN) & (right != UNKNOWN)
    return np.where(both, left.astype(np.int64) * vocab_size + right, UNKNOWN)


def count_tables(tokens: np.ndarray, special_ids: Iterable[int], vocab_size: int,
                 sentence_starts: np.ndarray | None = None) -> CountTables:
    """Count the four tables over a stream of train ``tokens`` (specials are never targets).

    ``sentence_starts`` (indices into ``tokens``) cut the contexts at sentence boundaries.
    """
    if vocab_size > 2_000_000:  # (left * V + right) * V + target must fit int64
        raise UserError(f"vocabulary of {vocab_size} ids is too large for the count tables")
    special = np.fromiter(special_ids, np.int64)
    stream = np.asarray(tokens, dtype=np.int64)[None, :]
    left, right = neighbours(stream, special, sentence_starts)
    target = ~np.isin(stream[0], special)
    if not target.any():
        raise UserError("the train split has no non-special tokens to count")
    tok, left, right = stream[0][target], left[0][target], right[0][target]
    unigram = int(np.argmax(np.bincount(tok, minlength=vocab_size)))
    return CountTables(vocab_size=vocab_size, unigram=unigram,
                       left=best_per_context(left, tok, vocab_size),
                       right=best_per_context(right, tok, vocab_size),
                       gap=best_per_context(gap_keys(left, right, vocab_size), tok, vocab_size),
                       tokens=int(stream.shape[1]))


def predict(tables: CountTables, left: np.ndarray, right: np.ndarray) -> dict[str, np.ndarray]:
    """Every predictor's answer at positions with neighbours ``left`` / ``right`` (1-D)."""
    uni = np.full(left.shape, tables.unigram, dtype=np.int64)
    lp, lprob = lookup(tables.left, left)
    rp, rprob = lookup(tables.right, right)
    gp, _ = lookup(tables.gap, gap_keys(left, right, tables.vocab_size))
    bigram = np.where(rprob > lprob, rp, lp)  # the more confident side; left on a tie
    bigram = np.where(bigram == UNKNOWN, uni, bigram)
    return {
        "unigram": uni,
        "left_bigram": np.where(lp == UNKNOWN, uni, lp),
        "right_bigram": np.where(rp == UNKNOWN, uni, rp),
        "gap_trigram": np.where(gp == UNKNOWN, bigram, gp),
    }


def score(tables: CountTables, batches: Iterable[tuple[np.ndarray, np.ndarray]],
          special_ids: Iterable[int]) -> dict[str, Any]:
    """Accuracy of every predictor over the masked positions (``labels != -100``) of
    ``(masked_input_ids, labels)`` batches; ``{"n_masked", "correct", "acc", "stderr"}``."""
    special = np.fromiter(special_ids, np.int64)
    correct = dict.fromkeys(BASELINES, 0)
    n = n_unknown = 0
    for ids, labels in batches:
        ids, labels = np.asarray(ids, np.int64), np.asarray(labels, np.int64)
        left, right = neighbours(ids, special)
        at = labels != -100
        preds = predict(tables, left[at], right[at])
        for name in BASELINES:
            correct[name] += int((preds[name] == labels[at]).sum())
        n += int(at.sum())
        n_unknown += int(((left[at] == UNKNOWN) | (right[at] == UNKNOWN)).sum())
    if n == 0:
        raise UserError("the held-out set has no masked positions to score")
    acc = {k: c / n for k, c in correct.items()}
    return {"n_masked": n, "correct": correct, "acc": acc,
            "stderr": {k: math.sqrt(p * (1 - p) / n) for k, p in acc.items()},
            "unknown_neighbour_share": n_unknown / n}


def unmask(ids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The input with every scored position given back its true token: a *reference* with
    true neighbours, which the model never sees.

    >>> unmask(np.array([[2, 4, 9, 3]]), np.array([[-100, 7, -100, -100]])).tolist()
    [[2, 7, 9, 3]]
    """
    ids = np.array(ids, dtype=np.int64)
    at = labels != -100
    ids[at] = labels[at]
    return ids


def corpus_baselines(train_split, info, eval_batches: Sequence, data_format: str,
                     max_tokens: int = MAX_COUNT_TOKENS,
                     true_neighbours: bool = False) -> dict[str, Any]:
    """The ``baselines`` block for a prepared corpus and the trainer's held-out batches.

    ``train_split`` is a ``zhbert.corpus.binary.CorpusSplit``, ``info`` its ``CorpusInfo`` and
    ``eval_batches`` the ``zhbert.data.Batch`` list of ``build_eval_set``. ``true_neighbours``
    scores with :func:`unmask`-ed inputs (a reference only; never stored in a history).
    """
    n_tok = min(len(train_split.tokens), int(max_tokens))
    starts = None
    if data_format == "pairs":
        offsets = np.asarray(train_split.offsets, dtype=np.int64)
        starts = offsets[(offsets > 0) & (offsets < n_tok)]
    tables = count_tables(np.asarray(train_split.tokens[:n_tok]), info.special_ids,
                          info.vocab_size, starts)
    pairs = ((b.input_ids.numpy(), b.mlm_labels.numpy()) for b in eval_batches)
    if true_neighbours:
        pairs = ((unmask(ids, labels), labels) for ids, labels in pairs)
    result = score(tables, pairs, info.special_ids)
    return {"version": 1, **result, "train_tokens_counted": tables.tokens,
            "train_tokens_total": int(len(train_split.tokens)),
            "rule": "true neighbours (reference)" if true_neighbours else NEIGHBOUR_RULE}


def read_baselines(meta: Any) -> dict[str, float] | None:
    """``{name: accuracy}`` from a history ``meta`` (or any dict holding the block), or None
    when absent or malformed (older histories have none).

    >>> read_baselines({"baselines": {"acc": {"unigram": 0.05, "gap_trigram": 0.4}}})
    {'unigram': 0.05, 'gap_trigram': 0.4}
    >>> read_baselines({}) is None
    True
    """
    block = meta.get(BASELINES_KEY) if isinstance(meta, dict) else None
    acc = block.get("acc") if isinstance(block, dict) else None
    if not isinstance(acc, dict):
        return None
    out = {k: float(acc[k]) for k in BASELINES
           if isinstance(acc.get(k), (int, float)) and not isinstance(acc.get(k), bool)
           and math.isfinite(acc[k]) and 0.0 <= acc[k] <= 1.0}
    return out or None


def unigram_floor(meta: Any) -> float | None:
    """The unigram table's held-out accuracy recorded in a history ``meta``: the plateau a
    model sits on before it learns context (the forecasts' floor), or None when not recorded.

    >>> unigram_floor({"baselines": {"acc": {"unigram": 0.05}}}), unigram_floor({})
    (0.05, None)
    """
    value = (read_baselines(meta) or {}).get("unigram")
    return value if isinstance(value, float) and value > 0 else None


def analysis_block(meta: Any, final_eval_acc: float | None) -> dict[str, Any] | None:
    """The analysis JSON's ``baselines`` entry: the stored accuracies and, when the analysed
    series is held-out, how far its last value is above (+) or below (-) each of them.

    >>> b = analysis_block({"baselines": {"acc": {"unigram": 0.125}, "n_masked": 100}}, 0.25)
    >>> b["final_minus"], b["beaten"]
    ({'unigram': 0.125}, ['unigram'])
    >>> analysis_block({}, 0.15) is None
    True
    """
    acc = read_baselines(meta)
    if acc is None:
        return None
    n = meta[BASELINES_KEY].get("n_masked")
    out: dict[str, Any] = {"acc": acc, "n_masked": n if isinstance(n, int) else None}
    if final_eval_acc is not None:
        out["final_eval_acc"] = final_eval_acc
        out["final_minus"] = {k: final_eval_acc - v for k, v in acc.items()}
        out["beaten"] = [k for k, v in acc.items() if final_eval_acc > v]
    return out


def format_table(block: dict[str, Any]) -> str:
    """The block as a small text table (one row per predictor)."""
    lines = [f"{'predictor':<14}{'held-out acc':>14}{'± s.e.':>9}{'correct':>10}",
             "-" * 47]
    for name in BASELINES:
        lines.append(f"{name:<14}{100 * block['acc'][name]:>13.2f}%"
                     f"{100 * block['stderr'][name]:>8.2f}%{block['correct'][name]:>10,}")
    lines.append(f"{block['n_masked']:,} masked positions "
                 f"({100 * block['unknown_neighbour_share']:.1f}% with an unknown neighbour); "
                 f"counts from {block['train_tokens_counted']:,} train tokens")
    return "\n".join(lines)
