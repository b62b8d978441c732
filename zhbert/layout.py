"""Where the real and the labelled tokens of a batch are, computed once on the host.

The model runs its dense layers on real tokens only (``zhbert.model``'s unpadding) and its MLM
head on labelled tokens only. Finding those tokens (``nonzero``, the trimmed length, the number
of labels) on a GPU makes the CPU wait for the GPU several times per forward pass, and under
``torch.compile`` each such data-dependent shape is a graph break. :func:`batch_layout` does that
bookkeeping on the CPU while the batch is still there — in the loop's prefetch thread — and the
forward pass only reads the resulting index tensors, so it has no host-device synchronisation and
compiles into one graph.

Any encoder that keeps a flat ``(T, H)`` matrix of real tokens can use it: pass
``layout=batch.layout`` to ``forward`` and slice the inputs with :func:`trim_to`.

>>> import torch
>>> mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
>>> labels = torch.tensor([[-100, 7, -100, -100, -100], [-100, -100, -100, -100, -100]])
>>> lay = batch_layout(torch.ones_like(mask), mask, labels)
>>> lay.length, lay.rows.tolist(), lay.mlm_rows.tolist(), lay.keep.tolist()
(3, [0, 1, 2, 3, 4], [1], [1])
>>> batch_layout(torch.ones_like(mask), mask, labels, multiple=4).length
4
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

IGNORE_INDEX = -100  # label of a position that is not predicted (PyTorch's and HF's convention)


@dataclass
class BatchLayout:
    """Index bookkeeping of one ``(B, L)`` batch after trimming to ``length`` columns.

    "Row" means a row of the flat hidden matrix: with padding, the real tokens in row-major order
    (``rows`` gives their flat positions ``b * length + l``); without padding, all ``B * length``
    positions.  ``keep`` lists the rows the heads read (labelled tokens, plus every [CLS] when
    the layout was built ``with_cls``); ``mlm_in_keep`` / ``cls_in_keep`` index into it.
    """

    batch: int
    length: int
    rows: Tensor | None  # (T,) int64; None = no padding (T = batch * length)
    key_mask: Tensor | None  # (B, 1, 1, length) bool, True = attend; None = attend everywhere
    key_bias: Tensor | None  # key_mask as an additive float mask (0 / -inf)
    mlm_rows: Tensor | None  # (M,) rows that carry a label (None: built without labels)
    mlm_targets: Tensor | None  # (M,) their labels
    mlm_count: Tensor | None  # () int64, M (a tensor, so summing it never syncs)
    cls_rows: Tensor | None  # (B,) row of each sequence's position 0; None unless with_cls
    keep: Tensor | None  # (K,) sorted union of mlm_rows and cls_rows
    mlm_in_keep: Tensor | None  # (M,) position of each mlm row in keep
    cls_in_keep: Tensor | None  # (B,) position of each cls row in keep

    def to(self, device: torch.device, non_blocking: bool = False) -> BatchLayout:
        """The same layout with every tensor on ``device``."""
        return BatchLayout(**{f.name: _move(getattr(self, f.name), device, non_blocking)
                              for f in fields(self)})

    def pin_memory(self) -> BatchLayout:
        """The same layout in page-locked host memory (for asynchronous copies to a GPU)."""
        return BatchLayout(**{f.name: _pin(getattr(self, f.name)) for f in fields(self)})


def _move(x, device: torch.device, non_blocking: bool):
    return x.to(device, non_blocking=non_blocking) if isinstance(x, Tensor) else x


def _pin(x):
    return x.pin_memory() if isinstance(x, Tensor) else x


def trimmed_length(attention_mask: Tensor | None, full: int, multiple: int = 1) -> int:
    """Columns to keep: up to the last column that is real in some row, rounded up to a multiple
    of ``multiple`` (never past ``full``; at least 1).

    Rounding bounds the number of distinct shapes (one compiled graph each) and keeps attention
    kernels on aligned lengths (memory-efficient SDPA with a boolean mask needs a multiple of 8
    under ``torch.compile``; tensor cores prefer it too).
    """
    if attention_mask is None:
        return full
    used = attention_mask.bool().any(0).nonzero()
    keep = int(used.max()) + 1 if used.numel() else 1
    keep = -(-keep // multiple) * multiple
    return min(keep, full)


def trim_to(length: int, *tensors: Tensor | None) -> list[Tensor | None]:
    """The first ``length`` columns of each ``(B, L)`` tensor (None stays None)."""
    return [t if t is None or t.shape[1] == length else t[:, :length] for t in tensors]


def batch_layout(input_ids: Tensor, attention_mask: Tensor | None = None,
                 mlm_labels: Tensor | None = None, *, with_cls: bool = False, multiple: int = 1,
                 length: int | None = None) -> BatchLayout:
    """The layout of a ``(B, L)`` batch (``attention_mask`` None: no padding; ``mlm_labels``
    None: no MLM rows).

    Runs wherever its inputs are; the training loop calls it on CPU tensors in the prefetch
    thread.  ``length`` defaults to :func:`trimmed_length` (the inputs may be longer).
    """
    ref = input_ids
    B, full = ref.shape
    L = trimmed_length(attention_mask, full, multiple) if length is None else length
    rows = key_mask = key_bias = None
    if attention_mask is not None:
        real = attention_mask[:, :L].bool()
        if not bool(real.all()):
            rows = real.reshape(-1).nonzero().squeeze(1)
            # A row without real tokens would softmax over nothing (NaN): let it attend to
            # position 0 instead; its outputs are never read.
            first = torch.arange(L, device=real.device) == 0
            key_mask = (real | ~real.any(1, keepdim=True) & first)[:, None, None, :]
            key_bias = torch.zeros(key_mask.shape, device=real.device).masked_fill_(
                ~key_mask, float("-inf"))
    lay = BatchLayout(B, L, rows, key_mask, key_bias, *([None] * 7))
    if with_cls:
        cls_pos = torch.arange(B, device=ref.device) * L
        lay.cls_rows = cls_pos if rows is None else torch.searchsorted(rows, cls_pos)
    if mlm_labels is not None:
        labels = mlm_labels[:, :L].reshape(-1)
        if rows is not None:
            labels = labels[rows]  # aligned with the rows of the flat hidden matrix
        lay.mlm_rows = (labels != IGNORE_INDEX).nonzero().squeeze(1)
        lay.mlm_targets = labels[lay.mlm_rows]
        lay.mlm_count = torch.tensor(len(lay.mlm_rows), device=ref.device)
        keep = lay.mlm_rows if lay.cls_rows is None else torch.cat([lay.mlm_rows, lay.cls_rows])
        lay.keep = keep.unique()  # sorted
        lay.mlm_in_keep = torch.searchsorted(lay.keep, lay.mlm_rows)
        if lay.cls_rows is not None:
            lay.cls_in_keep = torch.searchsorted(lay.keep, lay.cls_rows)
    return lay
