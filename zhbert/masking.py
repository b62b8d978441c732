"""BERT masked-language-model masking, vectorised and deterministic for a given generator.

Design decisions (all documented here because they change the statistics of the loss):

* **Exact budget per sequence.** Each sequence gets exactly ``round(mask_rate * n)`` selected
  tokens, ``n`` being its number of candidate tokens (at least 1 when ``n > 0``).  Selection is a
  random permutation (random scores + sort), not an independent Bernoulli draw per token, so the
  number of predictions per batch does not fluctuate and short sequences are not left unmasked.
* **Candidates.** Never selected: every id in ``special_ids`` plus ``mask_token_id``.  Callers
  should pass all five specials, ``[UNK]`` included (``CorpusInfo.special_ids`` does): predicting
  ``[UNK]`` would reward the model for a placeholder that stands for many different rare
  characters and would inflate the MLM accuracy we study.
* **80/10/10.** A selected token becomes ``[MASK]`` with probability 0.8, a random non-special id
  (uniform) with 0.1 and stays unchanged with 0.1; its label is the original id in all cases.
* **Whole-word masking** (``word_starts`` given, Chinese-BERT-wwm style): a word is a run of
  candidate tokens starting at a ``word_start`` token (a candidate after a non-candidate also
  starts a word).  Words are taken in random order while the running total is below the budget;
  the word that crosses the budget is kept only if that lands closer to it than stopping does
  (always kept if it is the first), so the realised rate is unbiased to within a fraction of a
  word.  The loss stays per character.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from zhbert.layout import IGNORE_INDEX

MASK_FRACTION = 0.8  # of selected tokens replaced by [MASK]
RANDOM_FRACTION = 0.1  # of selected tokens replaced by a random id (the rest stay unchanged)


def _rand(shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, device=like.device)


def _budget(candidates: Tensor, mask_rate: float) -> Tensor:
    """round(rate * n) per row, at least 1 where the row has a candidate, at most n."""
    n = candidates.sum(1)
    budget = torch.round(n.double() * mask_rate).long()
    return torch.minimum(budget.clamp(min=1), n)


def _select_tokens(candidates: Tensor, budget: Tensor, generator) -> Tensor:
    """Exactly ``budget`` random candidates per row (random scores, keep the lowest ranks)."""
    scores = _rand(candidates.shape, candidates, generator)
    scores = scores.masked_fill(~candidates, 2.0)  # non-candidates sort last
    order = scores.argsort(dim=1)
    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks < budget[:, None]


def _select_words(candidates: Tensor, word_starts: Tensor, budget: Tensor, generator) -> Tensor:
    """Whole words in random order until the per-row budget is (nearest to) met."""
    B, L = candidates.shape
    prev = torch.nn.functional.pad(candidates[:, :-1], (1, 0), value=False)
    starts = candidates & (word_starts.bool() | ~prev)
    word_id = torch.cumsum(starts.long(), dim=1) * candidates  # 1..W per row, 0 = no word
    lengths = torch.zeros(B, L + 1, dtype=torch.long, device=candidates.device)
    lengths.scatter_add_(1, word_id, candidates.long())
    lengths[:, 0] = 0
    exists = lengths > 0
    scores = _rand((B, L + 1), candidates, generator).masked_fill(~exists, 2.0)
    order = scores.argsort(dim=1)  # words in random order, absent words last
    sorted_len = lengths.gather(1, order)
    total = torch.cumsum(sorted_len, dim=1)
    before = total - sorted_len
    b = budget[:, None]
    # Take a word while the total before it is under budget and taking it lands no farther
    # from the budget than stopping would (the first word is always taken).
    take = (before < b) & ((total - b <= b - before) | (before == 0)) & (sorted_len > 0)
    chosen = torch.zeros(B, L + 1, dtype=torch.bool, device=candidates.device)
    chosen.scatter_(1, order, take)
    return chosen.gather(1, word_id) & candidates


def mask_tokens(
    input_ids: Tensor,
    *,
    mask_token_id: int,
    special_ids: Sequence[int],
    vocab_size: int,
    mask_rate: float = 0.15,
    word_starts: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Apply BERT masking to a (B, L) batch; returns ``(masked_input_ids, labels)``.

    ``labels`` is int64 with ``IGNORE_INDEX`` (-100) where a token was not selected.  ``word_starts`` (B, L),
    bool/uint8, switches on whole-word masking.  The same ``generator`` state gives the same
    result.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, L), got shape {tuple(input_ids.shape)}")
    if not 0.0 < mask_rate <= 1.0:
        raise ValueError(f"mask_rate must be in (0, 1], got {mask_rate}")
    special = sorted({int(i) for i in special_ids} | {int(mask_token_id)})
    special_t = torch.tensor(special, device=input_ids.device)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=input_ids.device)
    allowed[special_t[special_t < vocab_size]] = False
    replacement_ids = allowed.nonzero().squeeze(1)
    if replacement_ids.numel() == 0:
        raise ValueError("the vocabulary has no non-special ids to draw random replacements from")

    candidates = ~torch.isin(input_ids, special_t)
    budget = _budget(candidates, mask_rate)
    if word_starts is None:
        selected = _select_tokens(candidates, budget, generator)
    else:
        if word_starts.shape != input_ids.shape:
            raise ValueError("word_starts must have the same shape as input_ids")
        selected = _select_words(candidates, word_starts, budget, generator)

    labels = torch.where(
        selected, input_ids.long(), torch.full_like(input_ids, IGNORE_INDEX).long()
    )
    r = _rand(input_ids.shape, input_ids, generator)
    to_mask = selected & (r < MASK_FRACTION)
    to_random = selected & (r >= MASK_FRACTION) & (r < MASK_FRACTION + RANDOM_FRACTION)
    pick = torch.randint(
        len(replacement_ids), input_ids.shape, generator=generator, device=input_ids.device
    )
    masked = input_ids.clone()
    masked[to_mask] = mask_token_id
    masked[to_random] = replacement_ids[pick[to_random]].to(masked.dtype)
    return masked, labels


__all__ = ["IGNORE_INDEX", "mask_tokens"]
