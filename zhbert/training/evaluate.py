"""Held-out evaluation on the fixed, pre-masked subset of the val split.

Only sums are accumulated (correct, count, loss × count) — never logits — and under DDP every
rank scores its share of the batches and the sums are all-reduced.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from zhbert import history_schema as H
from zhbert.data import Batch
from zhbert.training.distributed import DistInfo, all_reduce_sum


@torch.no_grad()
def evaluate(model: nn.Module, batches: list[Batch], device: torch.device, autocast,
             info: DistInfo | None = None, packed: bool = False) -> dict[str, float]:
    """MLM accuracy/loss over masked tokens (and NSP accuracy when the model has NSP).

    Returns the history's eval columns (``eval_mlm_acc``, ``eval_loss``, ``eval_stderr``, and
    ``eval_nsp_acc`` with NSP; names from :mod:`zhbert.history_schema`) plus ``n_masked``;
    ``eval_stderr`` is the binomial standard error ``sqrt(p (1 - p) / n_masked)``.
    """
    info = info or DistInfo()
    was_training = model.training
    model.eval()
    correct = count = loss_sum = nsp_correct = nsp_count = 0.0
    mine = batches[info.rank::info.world_size]
    for batch in mine:
        b = batch.to(device)
        with autocast() if autocast else contextlib.nullcontext():
            out = model(b.input_ids, attention_mask=None if packed else b.attention_mask,
                        token_type_ids=b.token_type_ids, mlm_labels=b.mlm_labels,
                        nsp_labels=b.nsp_labels, layout=b.layout)
        n = out.mlm_count.item()
        correct += out.mlm_correct.item()
        count += n
        loss_sum += out.mlm_loss.float().item() * n
        if out.nsp_correct is not None:
            nsp_correct += out.nsp_correct.item()
            nsp_count += out.nsp_count.item()
    correct, count, loss_sum, nsp_correct, nsp_count = all_reduce_sum(
        [correct, count, loss_sum, nsp_correct, nsp_count], device, info)
    if was_training:
        model.train()
    p = correct / max(count, 1.0)
    result = {H.EVAL_MLM_ACC: p, H.EVAL_LOSS: loss_sum / max(count, 1.0),
              H.EVAL_STDERR: math.sqrt(p * (1 - p) / max(count, 1.0)), "n_masked": int(count)}
    if nsp_count:
        result[H.EVAL_NSP_ACC] = nsp_correct / nsp_count
    return result
