"""Small CPU-friendly building blocks of the model: row gather/scatter with cheap backward
passes, dropout with a faster mask on the CPU, and attention with dropout written out.

They compute exactly what the PyTorch operations they replace compute (tests/test_model.py and
tests/test_benchmark_throughput.py compare them); they exist only because they are faster on
the CPU (docs/TRAINING.md, "Performance").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GatherRows(torch.autograd.Function):
    """``x[rows]`` for unique ``rows``; backward is a plain row copy.

    (autograd's generic backward of index_select is an accumulating scatter-add, which is
    several times slower on CPU; the rows are unique so a copy is exact.)
    """

    @staticmethod
    def forward(ctx, x: Tensor, rows: Tensor) -> Tensor:
        ctx.save_for_backward(rows)
        ctx.num_rows = x.shape[0]
        return x.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (rows,) = ctx.saved_tensors
        return grad.new_zeros(ctx.num_rows, grad.shape[1]).index_copy_(0, rows, grad), None


class ScatterRows(torch.autograd.Function):
    """The inverse of ``GatherRows``: put ``x`` at ``rows`` of a zero ``(num_rows, C)`` matrix."""

    @staticmethod
    def forward(ctx, x: Tensor, rows: Tensor, num_rows: int) -> Tensor:
        ctx.save_for_backward(rows)
        return x.new_zeros(num_rows, x.shape[1]).index_copy_(0, rows, x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (rows,) = ctx.saved_tensors
        return grad.index_select(0, rows), None, None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """``F.dropout`` with the keep-mask drawn as ``torch.rand(...) >= p`` on CPU.

    Same distribution (each element kept with probability ``1 - p`` and scaled by ``1 / (1 - p)``)
    and the same arithmetic as PyTorch's CPU dropout (input times a mask in the input's dtype),
    but torch's CPU Bernoulli sampler is ~2x slower than ``rand``: forward + backward of a dropout
    get ~1.8x faster.  Other devices keep PyTorch's fused kernel.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    mask = torch.rand(x.shape, device=x.device).ge_(p).mul_(1.0 / (1.0 - p))
    return x * mask.to(x.dtype)


class Dropout(nn.Dropout):
    """``nn.Dropout`` computed by :func:`dropout` (same module interface, no parameters)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)


def attention_with_dropout(
    q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, p: float
) -> Tensor:
    """``softmax(q k^T / sqrt(d) + bias)``, dropout on the probabilities (BERT), then ``@ v``.

    What SDPA computes with ``dropout_p=p``; on CPU SDPA runs this case with its generic "math"
    kernel, which takes ~25 % longer than these few ops (forward + backward; its mask conversion
    and copies, and the slower dropout).  Scaling ``q`` (L x d) rather than the scores (L x L) is cheaper and gives a
    contiguous operand.
    """
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-1, -2))
    if bias is not None:
        scores = scores + bias
    return torch.matmul(dropout(torch.softmax(scores, dim=-1), p, True), v)
