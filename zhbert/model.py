"""A small BERT for masked-language-model (and optional next-sentence) pretraining.

One readable file in the spirit of nanoGPT.  The maths is exactly BERT's (post-LayerNorm
encoder, exact-erf GELU, MLM head tied to the word embeddings), so the weights map one to one
onto ``transformers.BertForMaskedLM`` / ``BertForPreTraining`` (see ``zhbert.export``).

Four things make it faster than a straightforward implementation on CPU (and a fifth keeps a GPU
busy: the index bookkeeping of unpadding and the sparse head is done on the host, in the loop's
prefetch thread, by ``zhbert.layout.batch_layout``; the forward pass only reads its tensors):

* **Unpadding.** When ``attention_mask`` contains padding, the real tokens are gathered into a
  ``(T, H)`` matrix right at the embedding lookup and every Linear / LayerNorm / GELU / dropout
  runs on real tokens only.  Only attention needs the ``(B, L)`` layout: the fused QKV output is
  scattered into a zero-padded buffer, SDPA runs with a boolean key-padding mask, and the result
  is gathered back.  Without padding the gather/scatter is skipped entirely.
* **Trimming.** Columns that are padding in every row are cut off before anything else.
* **Sparse MLM head.** With labels, the head (dense + GELU + LN + the ``H x V`` decoder, the
  single most expensive matmul) runs only at the ~15 % labelled positions.
* **Cheaper dropout on CPU.** Masks are drawn with ``torch.rand`` instead of the Bernoulli sampler,
  and attention with dropout (which SDPA can only run with its slow "math" fallback on CPU) is
  written out; together ~3 % of a CPU training step (``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zhbert.fastops import Dropout, GatherRows, ScatterRows, attention_with_dropout
from zhbert.layout import IGNORE_INDEX, BatchLayout, batch_layout, trim_to
from zhbert.model_config import BertConfig


def top1_hits(logits: Tensor, target: Tensor) -> Tensor:
    """How many rows score their target at least as high as every other class (top-1 right).

    One ``amax`` and one ``gather`` instead of ``argmax``, which is slower on the CPU; a tie
    with the maximum counts as a hit (argmax would take the first index).

    >>> top1_hits(torch.tensor([[0.1, 2.0, 0.3], [1.0, 0.0, -1.0]]), torch.tensor([1, 2]))
    tensor(1)
    """
    logits = logits.float()
    best = logits.amax(-1)
    return (logits.gather(-1, target[:, None]).squeeze(-1) >= best).sum()


@dataclass
class PretrainOutput:
    """What ``BertForPretraining.forward`` returns; counts are tensors so callers need not sync."""

    loss: Tensor | None = None
    mlm_loss: Tensor | None = None
    mlm_correct: Tensor | None = None
    mlm_count: Tensor | None = None
    nsp_loss: Tensor | None = None
    nsp_correct: Tensor | None = None
    nsp_count: Tensor | None = None
    mlm_logits: Tensor | None = None
    nsp_logits: Tensor | None = None


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection (a single (3H, H) weight)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.hidden_size // config.num_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = config.attention_dropout

    def forward(self, h: Tensor, layout: BatchLayout, keep: Tensor | None = None) -> Tensor:
        """Attention output for every row of ``h``, or only for rows ``keep`` when given."""
        B, L = layout.batch, layout.length
        qkv = self.qkv(h)  # (T, 3H): the projection itself runs on real tokens only
        if layout.rows is not None:
            # SDPA needs the rectangular layout: scatter into zeros (padding rows stay 0 and are
            # masked out as keys; their query outputs are never gathered back).
            qkv = ScatterRows.apply(qkv, layout.rows, B * L)
        # (B, L, 3, nh, d) -> three (B, nh, L, d) views, no copy.
        q, k, v = qkv.view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        p = self.attention_dropout if self.training else 0.0
        if p > 0.0 and h.device.type == "cpu":
            ctx = attention_with_dropout(q, k, v, layout.key_bias, p)
        else:  # SDPA's fused kernels (flash on CPU without dropout, flash/efficient on GPU)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=layout.key_mask, dropout_p=p)
        ctx = ctx.transpose(1, 2).reshape(B * L, -1)  # (B*L, H)
        read = layout.rows
        if keep is not None:
            read = keep if read is None else read[keep]
        if read is not None:
            ctx = GatherRows.apply(ctx, read)  # back to (T, H), or to the kept rows
        return self.out(ctx)


class EncoderLayer(nn.Module):
    """One post-LN transformer layer, exactly as in BERT."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H, eps = config.hidden_size, config.layer_norm_eps
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(H, eps=eps)
        self.ffn_in = nn.Linear(H, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, H)
        self.ffn_norm = nn.LayerNorm(H, eps=eps)
        self.dropout = Dropout(config.dropout)

    def forward(self, h: Tensor, layout: BatchLayout, keep: Tensor | None = None) -> Tensor:
        """Every token attends to all real tokens; with ``keep`` only those rows are returned
        (and only they pay for the output projection and the feed-forward block)."""
        attended = self.attention(h, layout, keep)
        if keep is not None:
            h = GatherRows.apply(h, keep)
        h = self.attention_norm(h + self.dropout(attended))
        ffn = self.ffn_out(F.gelu(self.ffn_in(h)))  # exact (erf) GELU, like BERT
        return self.ffn_norm(h + self.dropout(ffn))


class Embeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H = config.hidden_size
        # padding_idx as in BERT/transformers: the [PAD] row gets no gradient from the lookup.
        self.word_embeddings = nn.Embedding(config.vocab_size, H, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, H)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, H)
        self.norm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(self, input_ids: Tensor, position_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(position_ids)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.norm(x))


class MlmHead(nn.Module):
    """dense + GELU + LayerNorm, then the decoder (tied to the word embeddings by default)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H)
        self.norm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        # Tied: no decoder parameter of its own (the state_dict has no duplicate tensor).
        self.decoder = (
            None if config.tie_word_embeddings else nn.Linear(H, config.vocab_size, False)
        )
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: Tensor, word_embeddings: Tensor) -> Tensor:
        h = self.norm(F.gelu(self.dense(h)))
        weight = word_embeddings if self.decoder is None else self.decoder.weight
        return F.linear(h, weight, self.bias)


def sinusoidal_table(num_positions: int, dim: int) -> Tensor:
    """The Transformer's position table: sin on even, cos on odd features.

    >>> sinusoidal_table(4, 6).shape
    torch.Size([4, 6])
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.zeros(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table.float()


class BertForPretraining(nn.Module):
    """BERT encoder with an MLM head and, when ``config.use_nsp``, a pooler + NSP head."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_layers))
        self.mlm_head = MlmHead(config)
        if config.use_nsp:
            self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
            self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.apply(self._init_weights)
        if config.position_init == "sinusoidal":
            with torch.no_grad():
                table = sinusoidal_table(config.max_position_embeddings, config.hidden_size)
                self.embeddings.position_embeddings.weight.copy_(
                    table * (config.initializer_range / table.std()))

    def _init_weights(self, module: nn.Module) -> None:
        """BERT initialisation: N(0, 0.02) weights, zero biases, LayerNorm = identity."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Number of parameters; tied weights are counted once (they are one tensor)."""
        return sum(p.numel() for p in self.parameters())

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
        """Run the model; labels use -100 for "not predicted".

        ``attention_mask`` is (B, L), 1 = real token.  Labels on padding positions are ignored.
        The NSP head reads position 0 ([CLS]), which must be a real token.  ``layout`` (built by
        ``zhbert.layout.batch_layout`` from the same mask and labels, ``with_cls=use_nsp``) makes
        the pass free of host-device synchronisation; without it the layout is computed here.
        """
        B, full_len = input_ids.shape
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if layout is None:
            layout = batch_layout(input_ids, attention_mask, mlm_labels,
                                  with_cls=self.config.use_nsp)
        elif self.config.use_nsp and layout.cls_rows is None:
            raise ValueError("the model has an NSP head: build the layout with with_cls=True")
        input_ids, token_type_ids = trim_to(layout.length, input_ids, token_type_ids)
        h = self._embed(input_ids, token_type_ids, layout)
        # Sparse last layer: when only the heads' rows are needed, the last layer computes keys
        # and values for every token but the rest (output projection, FFN, LayerNorms) only for
        # those rows, ~15 % of the tokens (saves ~6 % of the encoder's work for 12 layers).
        sparse = layout.mlm_rows is not None and not return_logits and len(self.layers) > 0
        keep = layout.keep if sparse else None
        for i, layer in enumerate(self.layers):
            h = layer(h, layout, keep if i == len(self.layers) - 1 else None)

        out = PretrainOutput()
        if layout.mlm_rows is not None:
            rows = layout.mlm_in_keep if sparse else layout.mlm_rows
            self._mlm_loss(GatherRows.apply(h, rows), layout, out)
        if layout.mlm_rows is None or return_logits:
            out.mlm_logits = self._dense_logits(h, layout, full_len)
        if self.config.use_nsp:
            rows = layout.cls_in_keep if sparse else layout.cls_rows
            self._nsp(GatherRows.apply(h, rows), nsp_labels, out)
        losses = [x for x in (out.mlm_loss, out.nsp_loss) if x is not None]
        out.loss = sum(losses[1:], losses[0]) if losses else None
        return out

    def _embed(self, input_ids: Tensor, token_type_ids: Tensor, layout: BatchLayout) -> Tensor:
        """Embed the real tokens only (the rows of ``layout``)."""
        B, L = input_ids.shape
        if self.config.max_position_embeddings < L:
            raise ValueError(f"sequence length {L} > max_position_embeddings")
        flat_ids, flat_types = input_ids.reshape(-1), token_type_ids.reshape(-1)
        if layout.rows is None:
            positions = torch.arange(L, device=input_ids.device).repeat(B)
            return self.embeddings(flat_ids, positions, flat_types)
        rows = layout.rows
        # Positions are column indices, as in BERT/transformers (position_ids = arange(L)).
        return self.embeddings(flat_ids[rows], rows % L, flat_types[rows])

    def _mlm_loss(self, h: Tensor, layout: BatchLayout, out: PretrainOutput) -> None:
        """Sparse MLM head: ``h`` holds only the labelled rows, so the head runs there only."""
        logits = self.mlm_head(h, self.embeddings.word_embeddings.weight)
        target = layout.mlm_targets
        if target.numel():
            out.mlm_loss = F.cross_entropy(logits, target)
        else:  # nothing to predict: a zero that still has a graph, rather than NaN
            out.mlm_loss = logits.sum() * 0.0
        out.mlm_correct = top1_hits(logits, target)
        out.mlm_count = layout.mlm_count

    def _dense_logits(self, h: Tensor, layout: BatchLayout, full_len: int) -> Tensor:
        """(B, full_len, V) logits; padding (and trimmed) positions are zero."""
        logits = self.mlm_head(h, self.embeddings.word_embeddings.weight)
        B, L = layout.batch, layout.length
        if layout.rows is not None:
            logits = ScatterRows.apply(logits, layout.rows, B * L)
        logits = logits.view(B, L, -1)
        if full_len > L:
            logits = F.pad(logits, (0, 0, 0, full_len - L))
        return logits

    def _nsp(self, h_cls: Tensor, labels: Tensor | None, out: PretrainOutput) -> None:
        """Pooler (dense + tanh on [CLS]) and the 2-way next-sentence classifier."""
        logits = self.nsp_head(torch.tanh(self.pooler(h_cls)))
        out.nsp_logits = logits
        if labels is not None:
            labels = labels.reshape(-1)
            out.nsp_loss = F.cross_entropy(logits, labels)
            out.nsp_correct = (logits.argmax(-1) == labels).sum()
            out.nsp_count = torch.full((), labels.numel(), device=h_cls.device)


def paper_parameter_counts() -> dict[str, int]:
    """Parameter counts of the default (paper) configuration, computed without allocating it."""
    c = BertConfig()
    H, V, inter = c.hidden_size, c.vocab_size, c.intermediate_size
    embeddings = (V + c.max_position_embeddings + c.type_vocab_size) * H + 2 * H
    layer = 4 * (H * H + H) + (H * inter + inter) + (inter * H + H) + 4 * H
    head = H * H + H + 2 * H + V
    tied = embeddings + c.num_layers * layer + head
    nsp = H * H + H + 2 * H + 2
    return {
        "tied": tied,
        "tied_nsp": tied + nsp,
        "untied": tied + V * H,
        "untied_nsp": tied + V * H + nsp,
    }


__all__ = [
    "IGNORE_INDEX",
    "BertForPretraining",
    "PretrainOutput",
    "paper_parameter_counts",
    "top1_hits",
]
