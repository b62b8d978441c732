"""A modern encoder for MLM pretraining: the ModernBERT family, hand-written.

Selected with ``model.arch=modern``.  What changes against the original BERT of ``zhbert.model``
(Warner et al. 2024, "Smarter, Better, Faster, Longer"; the recipe ideas follow cramming,
Geiping & Goldstein 2023):

* **Pre-LayerNorm** residual blocks (``x + f(norm(x))``) and one final norm: gradients reach every
  layer at the start of training, so a higher learning rate is stable.
* **Rotary position embeddings** on queries and keys instead of a learned position table: attention
  scores depend on the relative offset from the first step, which is what local collocations need.
* **Gated-GELU feed-forward** (``W_o(gelu(x W_in) * (x W_gate))``), **no biases** in the linear
  layers or the LayerNorms (the decoder keeps its output bias).
* Optional **local/global attention**: with ``local_window > 0`` every ``global_every``-th layer
  attends to the whole sequence and the others to a band of ``local_window`` tokens.
* No token-type embeddings and no NSP head (MLM only).

Module names are ``transformers.ModernBertForMaskedLM``'s with the ``model.`` prefix dropped, so
the export (``zhbert.export``) is a renaming of weights and the layout is checkable by eye.  The
forward signature and output are ``BertForPretraining``'s, so the trainer, the held-out
evaluation and fill-mask work with either architecture; the MLM head runs only at labelled rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zhbert.fastops import Rotary, masked_lm_loss, rotary_qkv
from zhbert.layout import IGNORE_INDEX, BatchLayout
from zhbert.model import PretrainOutput
from zhbert.model_config import BertConfig


def rotary_table(num_positions: int, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin tables ``(num_positions, head_dim)`` of rotary embeddings (half-split layout).

    Feature ``j`` and ``j + head_dim/2`` form one rotating pair with frequency
    ``theta ** (-2j / head_dim)``.

    >>> cos, sin = rotary_table(4, 8, 10000.0)
    >>> cos.shape, float(cos[0, 0]), float(sin[0, 0])
    (torch.Size([4, 8]), 1.0, 0.0)
    """
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply the rotation to ``x`` (..., L, d) in float32; returns ``x``'s dtype.

    ``cos``/``sin`` are :func:`rotary_table`'s full ``(L, d)`` tables or their first halves
    ``(L, d/2)`` (the two halves are equal); the work is :class:`zhbert.fastops.Rotary`'s.

    >>> cos, sin = rotary_table(3, 2, 10000.0)
    >>> [[round(v, 4) for v in row] for row in rotate(torch.tensor([[1.0, 0.0]] * 3), cos, sin).tolist()]
    [[1.0, 0.0], [0.5403, 0.8415], [-0.4161, 0.9093]]
    """
    half = x.shape[-1] // 2
    return Rotary.apply(x, cos[..., :half], sin[..., :half])


def attention_math(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
    """Softmax attention written out (softmax in float32), for the CPU.

    At the demo's shapes (64 tokens, head size 64) PyTorch's CPU flash-attention kernel spends
    3-4x longer in its backward pass than these three operations do (measured with bf16 autocast
    by ``benchmarks/train_throughput.py``-style timing; see docs/TRAINING.md, "The demo run").
    ``mask`` is boolean, True = may attend; every query row must allow at least one key.
    """
    scores = (q @ k.transpose(-1, -2)).float() * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = scores.softmax(-1).to(v.dtype)
    if p > 0.0:
        probs = F.dropout(probs, p)
    return probs @ v


def use_math_attention(x: Tensor, p: float) -> bool:
    """Whether the CPU's written-out attention (:func:`attention_math`) is used for ``x``.

    On the CPU under bf16 autocast, or with attention dropout (where PyTorch's fused CPU kernel
    falls back to its slower math path anyway); in fp32 without dropout the fused kernel is
    level or faster (``benchmarks/train_throughput.py``). GPUs always use the fused kernel.
    """
    return x.device.type == "cpu" and (p > 0.0 or torch.is_autocast_enabled("cpu"))


def band_mask(length: int, window: int, device: torch.device) -> Tensor:
    """(L, L) bool: query i may attend key j when ``|i - j| <= window // 2``.

    >>> band_mask(4, 2, torch.device("cpu")).int()
    tensor([[1, 1, 0, 0],
            [1, 1, 1, 0],
            [0, 1, 1, 1],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    pos = torch.arange(length, device=device)
    return (pos[:, None] - pos[None, :]).abs() <= window // 2


def layer_is_global(index: int, config: BertConfig) -> bool:
    """Layer ``index`` attends globally (every ``global_every``-th from layer 0, or all)."""
    return config.local_window <= 0 or index % config.global_every == 0


class Attention(nn.Module):
    """Self-attention with a fused, bias-free QKV projection and rotary queries/keys."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.Wo = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.dropout = config.attention_dropout

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None,
                rows: Tensor | None = None) -> Tensor:
        """(B, L, H) -> (B, L, H); with ``rows`` (flat ``b * L + l`` positions) only those
        queries' outputs, (len(rows), H): every key and value still takes part."""
        B, L, H = x.shape
        qkv = self.Wqkv(x).view(B, L, 3, self.num_heads, self.head_dim)
        q, k, v = rotary_qkv(qkv, cos, sin)
        p = self.dropout if self.training else 0.0
        if use_math_attention(x, p):
            ctx = attention_math(q, k, v, mask, p)
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        ctx = ctx.transpose(1, 2).reshape(B, L, H)
        return self.Wo(ctx if rows is None else ctx.reshape(B * L, H)[rows])


class GatedMLP(nn.Module):
    """GeGLU feed-forward: one (2I, H) input projection split into value and gate halves."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.Wi = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.Wo = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.Wi(x).chunk(2, dim=-1)
        return self.Wo(self.drop(F.gelu(value) * gate))


class Layer(nn.Module):
    """Pre-LN block; layer 0 reads the already normalised embeddings (no ``attn_norm``)."""

    def __init__(self, config: BertConfig, index: int) -> None:
        super().__init__()
        H, eps = config.hidden_size, config.layer_norm_eps
        self.attn_norm = nn.Identity() if index == 0 else nn.LayerNorm(H, eps=eps, bias=False)
        self.attn = Attention(config)
        self.mlp_norm = nn.LayerNorm(H, eps=eps, bias=False)
        self.mlp = GatedMLP(config)
        self.is_global = layer_is_global(index, config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None,
                rows: Tensor | None = None) -> Tensor:
        """With ``rows`` the output is those flat positions' rows only, (len(rows), H)."""
        attn = self.attn(self.attn_norm(x), cos, sin, mask, rows)
        x = x + attn if rows is None else x.reshape(-1, x.shape[-1])[rows] + attn
        return x + self.mlp(self.mlp_norm(x))


class Embeddings(nn.Module):
    """Token embeddings, LayerNorm (no bias) and dropout; positions come from the rotation."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.hidden_size,
                                           padding_idx=config.pad_token_id)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=False)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.drop(self.norm(self.tok_embeddings(input_ids)))


class Head(nn.Module):
    """Prediction head before the decoder: dense (no bias) + GELU + LayerNorm (no bias)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H, bias=False)
        self.norm = nn.LayerNorm(H, eps=config.layer_norm_eps, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(F.gelu(self.dense(x)))


class ModernBertForPretraining(nn.Module):
    """Pre-LN rotary encoder + MLM head; ``forward`` matches ``BertForPretraining.forward``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if config.use_nsp:
            raise ValueError("the modern architecture has no NSP head (set model.use_nsp=false)")
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config, i) for i in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=False)
        self.head = Head(config)
        self.decoder_bias = nn.Parameter(torch.zeros(config.vocab_size))
        cos, sin = rotary_table(config.max_position_embeddings,
                                config.hidden_size // config.num_heads, config.rope_theta)
        half = cos.shape[-1] // 2  # the tables' two halves are equal: keep one
        self.register_buffer("rope_cos", cos[:, :half].contiguous(), persistent=False)
        self.register_buffer("rope_sin", sin[:, :half].contiguous(), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated normal (±2σ): σ for inputs and embeddings, σ/√(2·layers) for the projections
        that write into the residual stream (so its variance does not grow with depth)."""
        std = self.config.initializer_range
        out_std = std / math.sqrt(2.0 * self.config.num_layers)
        for name, p in self.named_parameters():
            if p.dim() < 2:  # LayerNorm weights stay 1, the decoder bias 0
                continue
            s = out_std if name.endswith(("Wo.weight", "head.dense.weight")) else std
            nn.init.trunc_normal_(p, std=s, a=-2 * s, b=2 * s)
        with torch.no_grad():
            self.embeddings.tok_embeddings.weight[self.config.pad_token_id].zero_()

    def num_parameters(self) -> int:
        """Number of parameters (the decoder is tied to the token embeddings)."""
        return sum(p.numel() for p in self.parameters())

    def _masks(self, attention_mask: Tensor | None, L: int, device) -> tuple:
        """Attention masks (global, local) broadcastable to (B, heads, L, L); None = everywhere."""
        key = None
        if attention_mask is not None:
            key = attention_mask.bool()[:, None, None, :]
            key = key | ~key.any(-1, keepdim=True)  # an all-padding row attends everywhere
        if self.config.local_window <= 0:
            return key, key
        band = band_mask(L, self.config.local_window, device)
        if key is None:
            return key, band
        # A padding query may have no real key inside its band; let it see itself (its output is
        # never read) so that no softmax row is empty and no NaN reaches a real token's value.
        return key, band & key | torch.eye(L, dtype=torch.bool, device=device)

    def encode(self, input_ids: Tensor, attention_mask: Tensor | None = None,
               rows: Tensor | None = None) -> Tensor:
        """Final hidden states (B, L, H) after the last LayerNorm.

        With ``rows`` (flat ``b * L + l`` positions) only those rows, (len(rows), H): the last
        layer then runs its output projection and feed-forward at those positions only (what the
        MLM loss reads), the same values at a fraction of that layer's cost.
        """
        B, L = input_ids.shape
        if self.config.max_position_embeddings < L:
            raise ValueError(f"sequence length {L} > max_position_embeddings")
        cos, sin = self.rope_cos[:L], self.rope_sin[:L]
        global_mask, local_mask = self._masks(attention_mask, L, input_ids.device)
        x = self.embeddings(input_ids)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, global_mask if layer.is_global else local_mask,
                      rows if i == last else None)
        return self.final_norm(x)

    def logits(self, h: Tensor) -> Tensor:
        """Vocabulary logits of hidden rows ``h`` (the decoder is the token embedding matrix)."""
        return F.linear(self.head(h), self.embeddings.tok_embeddings.weight, self.decoder_bias)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        mlm_labels: Tensor | None = None,
        nsp_labels: Tensor | None = None,
        return_logits: bool = False,
        layout: BatchLayout | None = None,
    ) -> PretrainOutput:
        """Same contract as ``BertForPretraining.forward`` (token types and NSP are unused).

        With ``layout`` (``zhbert.layout.batch_layout`` of this batch, built on the host) the
        labelled rows are read from it, so the pass has no host-device synchronisation.
        """
        del token_type_ids, nsp_labels
        out = PretrainOutput()
        full = mlm_labels is None or return_logits
        h = self.encode(input_ids, attention_mask) if full else None
        if mlm_labels is not None:
            rows, target, count = _labelled(mlm_labels, attention_mask, layout)
            if full:
                logits = self.logits(h.reshape(-1, h.shape[-1])[rows])
            else:  # the last layer runs at the labelled rows only
                logits = self.logits(self.encode(input_ids, attention_mask, rows))
            if target.numel():
                out.mlm_loss, out.mlm_correct = masked_lm_loss(logits, target)
            else:
                out.mlm_loss, out.mlm_correct = logits.sum() * 0, torch.zeros((), dtype=torch.long,
                                                                        device=logits.device)
            out.mlm_count = count
            out.loss = out.mlm_loss
        if full:
            logits = self.logits(h)
            if attention_mask is not None:
                logits = logits * attention_mask[..., None].to(logits.dtype)
            out.mlm_logits = logits
        return out


def _labelled(labels: Tensor, attention_mask: Tensor | None,
              layout: BatchLayout | None) -> tuple[Tensor, Tensor, Tensor]:
    """Flat ``b * L + l`` positions of the labelled tokens, their labels and their count.

    Labels on padding are ignored, as in BERT.  A layout's ``mlm_rows`` index its real-token
    rows, which ``layout.rows`` maps back to flat positions when the batch has padding.
    """
    if layout is not None and layout.mlm_rows is not None:
        rows = layout.mlm_rows if layout.rows is None else layout.rows[layout.mlm_rows]
        return rows, layout.mlm_targets, layout.mlm_count
    flat = labels.reshape(-1)
    if attention_mask is not None:
        flat = flat.masked_fill(~attention_mask.reshape(-1).bool(), IGNORE_INDEX)
    rows = (flat != IGNORE_INDEX).nonzero().squeeze(1)
    return rows, flat[rows], torch.full((), rows.numel(), device=labels.device)


def modern_parameter_count(config: BertConfig) -> int:
    """Parameters of the modern model for ``config``, computed without allocating it.

    >>> c = BertConfig(vocab_size=100, hidden_size=8, num_layers=2, num_heads=2,
    ...                intermediate_size=16, arch="modern")
    >>> modern_parameter_count(c) == ModernBertForPretraining(c).num_parameters()
    True
    """
    H, V, n = config.hidden_size, config.vocab_size, config.num_layers
    embeddings = V * H + H  # token table (also the decoder) + norm
    layer = 4 * H * H + 3 * H * config.intermediate_size + 2 * H  # attention, GeGLU, two norms
    head = H * H + H + H + V  # final norm, dense + norm, decoder bias
    return embeddings + n * layer - H + head  # layer 0 has no attn_norm


__all__ = ["ModernBertForPretraining", "modern_parameter_count", "rotary_table"]
