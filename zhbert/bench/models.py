"""The model pairs that ``benchmarks/train_throughput.py`` times, and the FLOPs counted for them
(also by ``benchmarks/gpu_check.py``).

Each architecture is compared with the transformers class its export loads into, both sides
starting from identical weights (copied through ``zhbert.export``'s mapping):

* ``model.arch=bert``: ``BertForPretraining`` vs ``BertForMaskedLM`` (``to_hf_state_dict``).
* ``model.arch=modern``: ``ModernBertForPretraining`` (``zhbert.models.build_model``) vs
  ``ModernBertForMaskedLM`` (``modern_to_hf_state_dict``, ``hf_modern_config``).

transformers' side runs with ``attn_implementation="sdpa"`` (PyTorch's scaled_dot_product_attention;
it runs on the CPU, flash-attention 2 does not). ModernBERT in transformers 5.24 takes the padded
batch as it is (no unpadding without flash-attention 2); it builds a key-padding mask for the
global layers and a key-padding-and-band mask for the local ones. ``sparse_prediction`` (its own
switch to run the head and decoder only at labelled positions, ``zhbert.layout.IGNORE_INDEX``
elsewhere) is on by default here, because ModernBERT was pretrained with it; ``hf_sparse=False``
times the exported config's default (head and decoder at every position, as ``BertForMaskedLM``
always does).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from zhbert.errors import UserError

PAPER_SCALE = ("paper", "efficient")  # presets that keep the original's 10,054-row vocabulary


def preset(arch: str, overrides=()):
    """The preset's TrainConfig with ``--set``-style ``overrides`` applied (validated)."""
    from zhbert.config import build_config

    return build_config(arch, overrides=list(overrides))


def model_config(arch: str, info, seq_len: int | None = None, overrides=(),
                 mlm_only: bool = True):
    """The preset's model config as the benchmark builds it.

    The vocabulary is the larger of the preset's and the corpus's for the paper-scale presets
    (they keep the original's 10,054 rows; the demo corpus's ids all fall inside them), the
    corpus's for the others, as training does. ``mlm_only`` drops the NSP head (the transformers
    classes compared are MLM-only).
    """
    base = preset(arch, overrides).model
    vocab = max(base.vocab_size, info.vocab_size) if arch in PAPER_SCALE else info.vocab_size
    cfg = replace(base, use_nsp=base.use_nsp and not mlm_only, vocab_size=vocab,
                  pad_token_id=info.pad_id)
    if seq_len is not None and cfg.max_position_embeddings < seq_len:
        raise UserError(f"--seq-len {seq_len} > max_position_embeddings of {arch} "
                        f"({cfg.max_position_embeddings})")
    return cfg


# ----------------------------------------------------------------------------- the pairs


def _load_hf(hf, weights: dict, tied: str) -> None:
    """Load our weights into ``hf``; only the tied decoder weight may be missing."""
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    if unexpected or set(missing) - {tied}:
        raise RuntimeError(f"weight copy failed: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()


def build_pair(cfg, tokenizer_dir: Path, hf_sparse: bool = True):
    """(ours, transformers' model, description of the transformers side) with identical weights.

    ``tokenizer_dir`` holds the corpus's vocab.txt (ModernBERT's config names [CLS]/[SEP] ids).
    The caller seeds the generator before (ours is initialised first, then copied).
    """
    from zhbert.models import build_model

    ours = build_model(cfg)
    if cfg.arch == "modern":
        from transformers import ModernBertForMaskedLM

        from zhbert.export import hf_modern_config, modern_to_hf_state_dict

        hcfg = hf_modern_config(cfg, tokenizer_dir)
        hcfg.sparse_prediction = hf_sparse
        hf = ModernBertForMaskedLM._from_config(hcfg, attn_implementation="sdpa")
        _load_hf(hf, modern_to_hf_state_dict(ours), "decoder.weight")
        desc = {"hf_model": "ModernBertForMaskedLM", "hf_sparse_prediction": hf_sparse}
    else:
        from transformers import BertForMaskedLM

        from zhbert.export import hf_config, to_hf_state_dict

        hf = BertForMaskedLM._from_config(hf_config(cfg), attn_implementation="sdpa")
        _load_hf(hf, to_hf_state_dict(ours), "cls.predictions.decoder.weight")
        desc = {"hf_model": "BertForMaskedLM", "hf_sparse_prediction": False}
    return ours, hf, {**desc, "hf_attn_implementation": hf.config._attn_implementation}


def hf_loss(hf, batch) -> torch.Tensor:
    """transformers' MLM loss on ``batch`` (ModernBERT has no token types)."""
    kwargs = {} if hf.config.model_type == "modernbert" else {
        "token_type_ids": batch.token_type_ids}
    return hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
              labels=batch.mlm_labels, **kwargs).loss


# ----------------------------------------------------------------------------- FLOPs


def encoder_params(model) -> int:
    """Parameters used at every real token: all but the lookup tables and the MLM head.

    BERT: without the word/position/type tables and ``mlm_head`` (its transform, its bias and,
    when untied, its decoder). Modern: without the token table (also the tied decoder), the head
    (dense + norm) and the decoder bias. The embedding LayerNorm stays in (it runs at every token).
    """
    cfg = model.config
    if cfg.arch == "modern":
        head = sum(p.numel() for p in model.head.parameters()) + model.decoder_bias.numel()
        return model.num_parameters() - cfg.vocab_size * cfg.hidden_size - head
    emb = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) * cfg.hidden_size
    return model.num_parameters() - emb - sum(p.numel() for p in model.mlm_head.parameters())


def band_pairs(n: int, window: int) -> int:
    """(query, key) pairs of one length-``n`` sequence in a local layer (``|i - j| <= window//2``).

    With ``m = min(window // 2, n - 1)``: ``n (2m + 1) - m (m + 1)`` (each query's band, minus what
    falls off either end); ``n^2`` once the band covers the sequence.

    >>> band_pairs(6, 4), band_pairs(8, 64), band_pairs(128, 128)
    (24, 64, 12352)
    """
    m = min(window // 2, n - 1)
    return n * (2 * m + 1) - m * (m + 1)


def attention_pairs(cfg, lengths: torch.Tensor) -> float:
    """(query, key) pairs summed over the layers: ``n_i^2`` in global layers, the band in local.

    BERT and modern layers without a window are global.
    """
    from zhbert.modern import layer_is_global

    full = float((lengths.double() ** 2).sum())
    local = float(sum(band_pairs(int(n), cfg.local_window) for n in lengths)) \
        if cfg.arch == "modern" and cfg.local_window > 0 else full
    n_global = sum(layer_is_global(i, cfg) for i in range(cfg.num_layers)) \
        if cfg.arch == "modern" else cfg.num_layers
    return n_global * full + (cfg.num_layers - n_global) * local


def model_flops(cfg, n_encoder: int, lengths: torch.Tensor, n_masked: int | None = None) -> float:
    """Encoder ``6 N T`` + MLM head ``6 (H^2 + H V) M`` at the M masked positions only (the
    only predictions the loss needs) + attention ``12 * hidden * pairs``.

    ``pairs`` = :func:`attention_pairs` (``layers * sum n_i^2`` for BERT; for modern, local layers
    count only the pairs inside the band). The factor 12: QK^T and PV, 2 FLOPs per multiply-add,
    x3 for forward + backward. N counts GeGLU's doubled input projection as the parameters do.
    Without ``n_masked`` the head is not counted separately: ``n_encoder`` then holds whatever
    the caller counts at every real token."""
    attention = 12 * cfg.hidden_size * attention_pairs(cfg, lengths)
    head = cfg.hidden_size * cfg.hidden_size + cfg.hidden_size * cfg.vocab_size
    masked = 0.0 if n_masked is None else 6.0 * head * n_masked
    return 6.0 * n_encoder * float(lengths.double().sum()) + masked + attention
