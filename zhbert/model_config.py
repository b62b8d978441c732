"""The model contract, free of torch: :class:`BertConfig` and the architectures it can name.

A config is read, validated and saved (``zhbert.config``, the run's history, every checkpoint)
without building a model, so this module imports nothing heavy; the architectures themselves
are ``zhbert.model`` (``arch="bert"``) and ``zhbert.modern`` (``arch="modern"``), and
``zhbert.models.build_model`` builds the one a config names.
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ("bert", "modern")


@dataclass
class BertConfig:
    """Model hyper-parameters; the defaults are the original study's ("paper") configuration."""

    vocab_size: int = 10054  # 10,049 characters + 5 specials (the original's vocabulary)
    hidden_size: int = 512
    num_layers: int = 12
    num_heads: int = 8
    intermediate_size: int = 2048
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1  # hidden dropout
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True
    use_nsp: bool = False
    pad_token_id: int = 0
    # "normal" (BERT) or "sinusoidal": the Transformer's sine/cosine table scaled to
    # initializer_range, still a learned embedding (exports unchanged). Dot products of such
    # rows depend on the relative offset, so attention to neighbours is easy to find early.
    position_init: str = "normal"
    # "bert" (post-LN, learned absolute positions: the original's) or "modern" (pre-LN, rotary,
    # gated GELU, no biases; zhbert/modern.py, exported as transformers' ModernBertForMaskedLM).
    arch: str = "bert"
    rope_theta: float = 10000.0  # modern: rotary base
    local_window: int = 0  # modern: tokens in a local layer's attention band (0: all global)
    global_every: int = 3  # modern, with local_window > 0: every n-th layer attends globally

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(ARCHITECTURES)}")
        if self.local_window < 0 or self.global_every < 1 or self.rope_theta <= 0:
            raise ValueError("local_window must be >= 0, global_every >= 1, rope_theta > 0")
        if self.position_init not in ("normal", "sinusoidal"):
            raise ValueError(f"position_init {self.position_init!r} is not normal or sinusoidal")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
