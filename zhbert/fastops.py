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


class Rotary(torch.autograd.Function):
    """Rotary embedding of ``x`` (..., L, d), half-split layout, in float32; returns x's dtype.

    ``cos``/``sin`` are ``(L, d/2)`` (one half of :func:`zhbert.modern.rotary_table`'s tables,
    whose two halves are equal). ``out1 = x1 cos - x2 sin``, ``out2 = x2 cos + x1 sin``; the
    backward is the inverse rotation of the gradient. Written out so that neither pass builds the
    concatenated ``rotate_half`` copy or keeps ``x`` for the backward.
    """

    @staticmethod
    def forward(ctx, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        ctx.save_for_backward(cos, sin)
        return rotate_into(torch.empty_like(x), x, cos, sin)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        return rotate_into(torch.empty_like(grad), grad, cos, -sin), None, None


class RotaryQKV(torch.autograd.Function):
    """Split a fused projection ``(B, L, 3, heads, d)`` into rotated queries, rotated keys and
    values, each ``(B, heads, L, d)`` (values as a view).

    The backward writes the three gradients straight into one ``(B, L, 3, heads, d)`` buffer,
    where autograd's split, stack and slice backwards would zero-fill and copy it several times.
    """

    @staticmethod
    def forward(ctx, qkv: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ctx.save_for_backward(cos, sin)
        t = qkv.permute(2, 0, 3, 1, 4)
        q = rotate_into(torch.empty_like(t[0], memory_format=torch.contiguous_format), t[0], cos, sin)
        k = rotate_into(torch.empty_like(t[1], memory_format=torch.contiguous_format), t[1], cos, sin)
        return q, k, t[2]

    @staticmethod
    def backward(ctx, gq: Tensor, gk: Tensor, gv: Tensor) -> tuple[Tensor, None, None]:
        cos, sin = ctx.saved_tensors
        B, heads, L, d = gq.shape
        grad = torch.empty((B, L, 3, heads, d), dtype=gq.dtype, device=gq.device)
        t = grad.permute(2, 0, 3, 1, 4)
        rotate_into(t[0], gq, cos, -sin)
        rotate_into(t[1], gk, cos, -sin)
        t[2].copy_(gv)
        return grad, None, None


def rotate_into(out: Tensor, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Write ``x`` (..., d) rotated by the angles of ``cos``/``sin`` (..., d/2) into ``out``.

    The arithmetic is float32 whatever ``x``'s dtype; ``out`` may be a strided view.

    >>> x = torch.tensor([[1.0, 2.0]]); c, s = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    >>> rotate_into(torch.empty(1, 2), x, c, s)  # a quarter turn: (x1, x2) -> (-x2, x1)
    tensor([[-2.,  1.]])
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    o1, o2 = out[..., :half], out[..., half:]
    if x.dtype == torch.float32 and out.dtype == torch.float32:
        torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1.0)
        torch.mul(x2, cos, out=o2).addcmul_(x1, sin)
    else:
        x1, x2 = x1.float(), x2.float()
        o1.copy_(torch.addcmul(x1 * cos, x2, sin, value=-1.0))
        o2.copy_(torch.addcmul(x2 * cos, x1, sin))
    return out


class MaskedLMLoss(torch.autograd.Function):
    """Mean cross-entropy of ``logits`` (N, V) against ``target`` (N,), and the top-1 hits.

    Equals ``F.cross_entropy(logits.float(), target)`` (and :func:`zhbert.model.top1_hits`: a
    tie with the row's maximum counts as a hit) but shares one row maximum between the two, and
    its backward writes ``softmax - onehot`` in one pass instead of zero-filling an (N, V) gradient,
    scattering into it and running the log-softmax backward. Returns ``(loss, hits)``; the hits
    carry no gradient.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        x = logits.float()
        best = x.amax(-1, keepdim=True)
        lse = (x - best).exp_().sum(-1, keepdim=True).log_().add_(best)
        picked = x.gather(-1, target[:, None])
        ctx.save_for_backward(logits, target, lse)
        loss = (lse - picked).mean()
        hits = (picked >= best).sum()
        ctx.mark_non_differentiable(hits)
        return loss, hits

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_hits) -> tuple[Tensor, None]:
        logits, target, lse = ctx.saved_tensors
        grad = logits.float().sub(lse).exp_()
        grad.scatter_add_(-1, target[:, None], grad.new_full((target.numel(), 1), -1.0))
        grad.mul_(grad_loss / max(target.numel(), 1))
        return grad.to(logits.dtype), None


def rotary_qkv(qkv: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rotated queries, rotated keys and values ``(B, heads, L, d)`` of a fused ``(B, L, 3,
    heads, d)`` projection: :class:`RotaryQKV` eagerly; under ``torch.compile`` the plain
    operations, which the compiler fuses itself (and whose graph it can capture whole)."""
    if not torch.compiler.is_compiling():
        return RotaryQKV.apply(qkv, cos, sin)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    return _plain_rotate(q, cos, sin), _plain_rotate(k, cos, sin), v


def _plain_rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    xf = x.float()
    x1, x2 = xf[..., :half], xf[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)


def masked_lm_loss(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean cross-entropy, top-1 hits)``: :class:`MaskedLMLoss` eagerly, the plain operations
    under ``torch.compile``."""
    if not torch.compiler.is_compiling():
        return MaskedLMLoss.apply(logits, target)
    x = logits.float()
    best = x.detach().amax(-1)
    hits = (x.detach().gather(-1, target[:, None]).squeeze(-1) >= best).sum()
    return F.cross_entropy(x, target), hits
