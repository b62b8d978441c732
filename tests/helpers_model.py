"""Shared helpers for the model / masking / export / fill-mask tests (tiny, offline)."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CHARS = list("今天气很好热冷的是我你他她们不了在有人这中大来上国个到说时要就出会可也")


def make_tokenizer_dir(path: Path, extra: int = 0) -> Path:
    """Write a tiny BERT vocabulary and save a BertTokenizerFast built from it into ``path``.

    ``extra`` appends that many dummy tokens (to reach a chosen vocabulary size).
    """
    from transformers import BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    tokens = SPECIALS + CHARS + ["。", "，"] + [f"[unused{i}]" for i in range(extra)]
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab=str(vocab), do_lower_case=False, tokenize_chinese_chars=True)
    tok.save_pretrained(path)  # transformers 5 writes tokenizer.json + tokenizer_config.json
    return path


def vocab_size_of(path: Path) -> int:
    """Number of lines of ``path/vocab.txt``."""
    return len((path / "vocab.txt").read_text(encoding="utf-8").splitlines())


def tiny_config(vocab_size: int, **overrides):
    """A 2-layer, 32-wide config for fast tests."""
    from zhbert.model_config import BertConfig

    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    kwargs.update(overrides)
    return BertConfig(**kwargs)
