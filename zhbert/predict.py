"""Fill-mask inference from an exported directory or a training checkpoint directory.

Weights are read with safetensors only; nothing is unpickled.  Results match
``transformers.pipeline("fill-mask", model=DIR)`` on the same exported directory.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from zhbert.errors import UserError
from zhbert.export import WEIGHTS_NAME, import_hf, read_safetensors
from zhbert.io_utils import read_json
from zhbert.model_config import BertConfig
from zhbert.models import build_model


def load_checkpoint_model(directory: Path, config_json: dict):
    """Our own checkpoint layout: config.json {"model": {BertConfig fields}, ...} + safetensors."""
    fields = {f.name for f in dataclasses.fields(BertConfig)}
    model_cfg = config_json["model"]
    if not isinstance(model_cfg, dict) or set(model_cfg) - fields:
        unknown = sorted(set(model_cfg) - fields) if isinstance(model_cfg, dict) else model_cfg
        raise UserError(f'{directory / "config.json"}: invalid "model" section (unknown {unknown})')
    try:
        model = build_model(BertConfig(**model_cfg))
    except (TypeError, ValueError) as exc:
        raise UserError(f"{directory / 'config.json'}: invalid model config ({exc})") from None
    weights = read_safetensors(directory / WEIGHTS_NAME)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise UserError(
            f"{directory / WEIGHTS_NAME}: does not match its config ({first})"
        ) from None
    return model


def load_for_inference(path):
    """Load ``(model, tokenizer)`` from an exported dir (BERT or ModernBERT) or a checkpoint dir."""
    from transformers import BertTokenizerFast

    directory = Path(path)
    if not directory.is_dir():
        raise UserError(f"{directory}: model directory not found")
    config_json = read_json(directory / "config.json", "a model config", obj=True)
    if "model_type" in config_json:
        model = import_hf(directory)  # validates model_type / architectures
    elif "model" in config_json:
        model = load_checkpoint_model(directory, config_json)
    else:
        raise UserError(
            f"{directory / 'config.json'}: neither a transformers BERT config (model_type) "
            "nor a training checkpoint config (model)"
        )
    if not any((directory / n).is_file() for n in ("tokenizer.json", "vocab.txt")):
        raise UserError(f"{directory}: no tokenizer files (tokenizer.json or vocab.txt)")
    try:
        tokenizer = BertTokenizerFast.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:  # transformers raises many types for unreadable tokenizer files
        raise UserError(f"{directory}: cannot load the tokenizer ({type(exc).__name__})") from None
    if len(tokenizer) != model.config.vocab_size:
        raise UserError(
            f"{directory}: tokenizer has {len(tokenizer)} tokens but the model has "
            f"{model.config.vocab_size} embedding rows"
        )
    if tokenizer.mask_token_id is None:
        raise UserError(f"{directory}: the tokenizer has no [MASK] token")
    return model.eval(), tokenizer


@torch.no_grad()
def fill_mask(model, tokenizer, texts: list[str], top_k: int = 5) -> list[list[list[dict]]]:
    """Top-k predictions for every [MASK]: per text, per [MASK] (left to right), top_k dicts.

    Each dict is ``{"token": str, "score": float}`` with the softmax probability, like
    ``pipeline("fill-mask")``'s ``token_str`` / ``score``.
    """
    if not texts:
        raise UserError("no text given")
    vocab = model.config.vocab_size
    if not 1 <= top_k <= vocab:
        raise UserError(f"--top-k {top_k}: must be between 1 and the vocabulary size {vocab}")
    limit = model.config.max_position_embeddings
    for i, text in enumerate(texts, 1):
        if not text or not text.strip():
            raise UserError(f"text {i} is empty")
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    ids, attention = enc["input_ids"], enc["attention_mask"]
    if ids.shape[1] > limit:
        raise UserError(f"a text is {ids.shape[1]} tokens long; the model takes at most {limit}")
    is_mask = ids == tokenizer.mask_token_id
    for i, text in enumerate(texts, 1):
        if not bool(is_mask[i - 1].any()):
            raise UserError(f"text {i} ({text!r}) contains no {tokenizer.mask_token}")
    model.eval()
    out = model(ids, attention, enc.get("token_type_ids"), return_logits=True)
    probs = out.mlm_logits.float().softmax(-1)
    results: list[list[list[dict]]] = []
    for row in range(ids.shape[0]):
        per_mask = []
        for pos in is_mask[row].nonzero().squeeze(1).tolist():
            values, indices = probs[row, pos].topk(top_k)
            per_mask.append(
                [
                    {"token": tokenizer.decode([int(t)]), "score": float(v)}
                    for v, t in zip(values, indices, strict=True)
                ]
            )
        results.append(per_mask)
    return results


__all__ = ["load_for_inference", "load_checkpoint_model", "fill_mask"]
