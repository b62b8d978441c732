"""The table of every config field in docs/TRAINING.md, generated from the dataclasses.

``python -c "from zhbert.config_table import sync_doc_table; sync_doc_table()"`` rewrites it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from zhbert.config import SECTIONS, TrainConfig, _field_types, _type_name


def field_table() -> str:
    """Markdown table of every config field (key, type, default, meaning) for docs/TRAINING.md.

    The meaning is the comment after the field in this file (BertConfig: a short fixed text).
    """
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    defaults = TrainConfig()
    for section in SECTIONS:
        obj = getattr(defaults, section)
        comments = _field_comments(type(obj))
        for f in dataclasses.fields(obj):
            tp = _type_name(_field_types(obj)[f.name])
            default = json.dumps(getattr(obj, f.name), ensure_ascii=False)
            meaning = (_MODEL_DOCS.get(f.name) if section == "model" else None) or comments.get(
                f.name, "")
            rows.append(f"| `{section}.{f.name}` | {tp} | `{default}` | {meaning} |")
    return "\n".join(rows)


_MODEL_DOCS = {
    "vocab_size": "vocabulary size; at run time always taken from the corpus",
    "hidden_size": "transformer width",
    "num_layers": "transformer blocks",
    "num_heads": "attention heads (must divide hidden_size)",
    "intermediate_size": "feed-forward width",
    "max_position_embeddings": "position-embedding table size (>= data.seq_len)",
    "type_vocab_size": "segment (token type) ids",
    "dropout": "hidden dropout",
    "attention_dropout": "attention-probability dropout",
    "layer_norm_eps": "LayerNorm epsilon",
    "initializer_range": "std of the normal weight initialisation",
    "tie_word_embeddings": "MLM decoder shares the input embedding matrix",
    "use_nsp": "next-sentence-prediction head and loss (needs data.format=pairs)",
    "pad_token_id": "padding id; at run time taken from the corpus",
    "position_init": "bert: `normal` (BERT) or `sinusoidal` (sine/cosine table, still learned)",
    "arch": "`bert` (post-LN, learned positions: the original's) or `modern` (pre-LN, rotary, "
            "gated GELU, no biases; exported as ModernBertForMaskedLM)",
    "rope_theta": "modern: rotary base",
    "local_window": "modern: tokens in a local layer's attention band (0: every layer global)",
    "global_every": "modern, with local_window > 0: every n-th layer (from the first) is global",
}


def _field_comments(cls: type) -> dict[str, str]:
    """Field comments (``name: type = default  # meaning``) from this module's source."""
    import inspect

    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in source.splitlines():
        stripped = line.strip()
        if ":" in stripped and "#" in stripped and not stripped.startswith(("#", '"')):
            name = stripped.split(":", 1)[0].strip()
            if name.isidentifier():
                out[name] = stripped.split("#", 1)[1].strip()
    return out


TABLE_BEGIN, TABLE_END = "<!-- config-table -->", "<!-- /config-table -->"


def sync_doc_table(path: str | Path = "docs/TRAINING.md") -> bool:
    """Rewrite the table between the config-table markers of ``path``; True if it changed.

    ``python -c "from zhbert.config_table import sync_doc_table; sync_doc_table()"``
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    new = f"{head}{TABLE_BEGIN}\n{field_table()}\n{TABLE_END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
