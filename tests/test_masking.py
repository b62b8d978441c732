"""Tests for zhbert.masking: budgets, 80/10/10, specials, whole words, determinism."""

from __future__ import annotations

import pytest
import torch

from zhbert.masking import mask_tokens

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
V = 100


def _batch(n: int = 256, length: int = 64, seed: int = 0) -> torch.Tensor:
    """[CLS] sentence [SEP] sentence [SEP] [PAD]..., with some [UNK] inside."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (n, length), generator=g)
    ids[torch.rand(n, length, generator=g) < 0.03] = UNK
    lengths = torch.randint(20, length + 1, (n,), generator=g)
    ids[:, 0] = CLS
    ids[:, 10] = SEP
    ids[torch.arange(n), lengths - 1] = SEP
    ids[torch.arange(length)[None, :] >= lengths[:, None]] = PAD
    return ids


def _mask(ids, rate=0.15, word_starts=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    return mask_tokens(
        ids,
        mask_token_id=MASK,
        special_ids=SPECIALS,
        vocab_size=V,
        mask_rate=rate,
        word_starts=word_starts,
        generator=g,
    )


@pytest.mark.parametrize("rate", [0.15, 0.3])
def test_exact_budget_per_sequence(rate):
    ids = _batch()
    _, labels = _mask(ids, rate)
    candidates = ~torch.isin(ids, torch.tensor(SPECIALS))
    n = candidates.sum(1)
    expected = torch.round(n.double() * rate).long().clamp(min=1)
    assert torch.equal((labels != -100).sum(1), expected)
    overall = (labels != -100).sum().item() / n.sum().item()
    assert abs(overall - rate) < 0.01


def test_specials_never_selected_and_labels_are_originals():
    ids = _batch()
    masked, labels = _mask(ids)
    picked = labels != -100
    assert not torch.isin(ids[picked], torch.tensor(SPECIALS)).any()
    assert torch.equal(labels[picked], ids[picked])
    assert torch.equal(masked[~picked], ids[~picked])  # nothing else changes
    assert labels.dtype == torch.int64 and masked.dtype == ids.dtype


def test_80_10_10_split_and_random_ids_not_special():
    ids = _batch(n=1024)
    masked, labels = _mask(ids)
    picked = labels != -100
    total = picked.sum().item()
    as_mask = (masked[picked] == MASK).sum().item() / total
    unchanged = (masked[picked] == ids[picked]).sum().item() / total
    replaced = masked[picked & (masked != MASK) & (masked != ids)]
    assert abs(as_mask - 0.8) < 0.015
    # unchanged = 10 % kept + the 1/95 chance that a random id equals the original
    assert abs(unchanged - (0.1 + 0.1 / 95)) < 0.012
    assert abs(replaced.numel() / total - 0.1 * 94 / 95) < 0.012
    assert not torch.isin(replaced, torch.tensor(SPECIALS)).any()
    assert replaced.min() >= 5 and replaced.max() < V
    # uniform over the 95 non-special ids: every id appears
    many = masked[(labels != -100) & (masked != MASK) & (masked != ids)]
    assert len(torch.unique(many)) > 80


def test_deterministic_with_same_seed_and_different_otherwise():
    ids = _batch(n=32)
    a = _mask(ids, seed=7)
    b = _mask(ids, seed=7)
    c = _mask(ids, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_short_sequence_gets_at_least_one_and_empty_gets_none():
    ids = torch.tensor([[CLS, 10, 11, SEP, PAD, PAD], [CLS, SEP, PAD, PAD, PAD, PAD]])
    _, labels = _mask(ids)
    assert (labels[0] != -100).sum().item() == 1  # round(0.3) = 0 -> at least one
    assert (labels[1] != -100).sum().item() == 0


def _word_batch(n=512, length=48, seed=0):
    """Sentences of words of length 1-4 (word_starts marks each word's first character)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (n, length), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    starts = torch.zeros(n, length, dtype=torch.uint8)
    for row in range(n):
        pos = 1
        while pos < length - 1:
            starts[row, pos] = 1
            pos += int(torch.randint(1, 5, (1,), generator=g))
    return ids, starts


def test_whole_word_masking_selects_whole_words():
    ids, starts = _word_batch()
    _, labels = _mask(ids, word_starts=starts)
    picked = labels != -100
    word_id = torch.cumsum(starts.long(), 1)
    for row in range(ids.shape[0]):
        for w in torch.unique(word_id[row][picked[row]]).tolist():
            in_word = (word_id[row] == w) & ~torch.isin(ids[row], torch.tensor(SPECIALS))
            assert bool(picked[row][in_word].all()), "a word was only partly masked"
    assert not torch.isin(ids[picked], torch.tensor(SPECIALS)).any()
    n = (~torch.isin(ids, torch.tensor(SPECIALS))).sum()
    rate = picked.sum().item() / n.item()
    assert abs(rate - 0.15) < 0.01  # nearest-total rule keeps the rate unbiased
    # Each row lands within half of its longest word (4) of the exact budget.
    budget = round(46 * 0.15)  # 46 candidates per row
    assert ((picked.sum(1) - budget).abs() <= 2).all()


def test_whole_word_differs_from_char_masking_and_rate_configurable():
    ids, starts = _word_batch(n=256)
    _, labels = _mask(ids, rate=0.3, word_starts=starts)
    n = (~torch.isin(ids, torch.tensor(SPECIALS))).sum().item()
    assert abs((labels != -100).sum().item() / n - 0.3) < 0.015
    # multi-character words appear as masked runs longer than one character
    picked = (labels != -100).long()
    runs = picked[:, 1:] * picked[:, :-1]
    assert runs.sum() > 0


def test_bad_arguments():
    ids = _batch(n=2)
    with pytest.raises(ValueError):
        mask_tokens(ids, mask_token_id=MASK, special_ids=SPECIALS, vocab_size=V, mask_rate=0.0)
    with pytest.raises(ValueError):
        mask_tokens(ids, mask_token_id=MASK, special_ids=range(V), vocab_size=V)
