"""Export our models to the transformers format and import them back.

``arch=bert``: our parameters map one to one onto ``transformers.BertForMaskedLM``
(``BertForPreTraining`` when the model has the NSP head); the only reshaping is the fused QKV
projection, which transformers stores as three separate ``query`` / ``key`` / ``value`` Linears.
``arch=modern``: ``transformers.ModernBertForMaskedLM``; a pure renaming (``model.`` prefix on the
encoder, ``decoder.bias`` for our ``decoder_bias``).  Weights are written and read with
safetensors only (nothing is ever unpickled).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from zhbert.errors import UserError
from zhbert.io_utils import atomic_dir, read_json
from zhbert.model import BertForPretraining
from zhbert.model_config import BertConfig
from zhbert.models import build_model

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
WEIGHTS_NAME = "model.safetensors"
SUPPORTED_ARCHITECTURES = ("BertForMaskedLM", "BertForPreTraining")
MODERN_ARCHITECTURE = "ModernBertForMaskedLM"

# Our name (per layer: "layers.{i}." prefix) -> transformers name ("bert.encoder.layer.{i}.").
_LAYER_MAP = {
    "attention.out": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn_in": "intermediate.dense",
    "ffn_out": "output.dense",
    "ffn_norm": "output.LayerNorm",
}
_TOP_MAP = {
    "embeddings.word_embeddings": "bert.embeddings.word_embeddings",
    "embeddings.position_embeddings": "bert.embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "bert.embeddings.token_type_embeddings",
    "embeddings.norm": "bert.embeddings.LayerNorm",
    "mlm_head.dense": "cls.predictions.transform.dense",
    "mlm_head.norm": "cls.predictions.transform.LayerNorm",
    "mlm_head.decoder": "cls.predictions.decoder",
    "pooler": "bert.pooler.dense",
    "nsp_head": "cls.seq_relationship",
}


def _key_map(config: BertConfig) -> dict[str, str]:
    """Our state_dict key -> transformers key, for every key except the fused QKV."""
    mapping = {"mlm_head.bias": "cls.predictions.bias"}
    for ours, theirs in _TOP_MAP.items():
        for suffix in ("weight", "bias"):
            mapping[f"{ours}.{suffix}"] = f"{theirs}.{suffix}"
    for i in range(config.num_layers):
        for ours, theirs in _LAYER_MAP.items():
            for suffix in ("weight", "bias"):
                mapping[f"layers.{i}.{ours}.{suffix}"] = f"bert.encoder.layer.{i}.{theirs}.{suffix}"
    return mapping


def hf_config(config: BertConfig):
    """The ``transformers.BertConfig`` equivalent to our config."""
    from transformers import BertConfig as HFBertConfig

    arch = "BertForPreTraining" if config.use_nsp else "BertForMaskedLM"
    return HFBertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.attention_dropout,
        max_position_embeddings=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_eps,
        pad_token_id=config.pad_token_id,
        tie_word_embeddings=config.tie_word_embeddings,
        architectures=[arch],
    )


def to_hf_state_dict(model: BertForPretraining) -> dict[str, torch.Tensor]:
    """Our weights under transformers' key names (QKV split; tied decoder left implicit)."""
    config = model.config
    mapping = _key_map(config)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu", torch.float32)
        if ".attention.qkv." in key:
            i, suffix = key.split(".")[1], key.rsplit(".", 1)[1]
            for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True):
                out[f"bert.encoder.layer.{i}.attention.self.{name}.{suffix}"] = part.contiguous()
        else:
            out[mapping[key]] = tensor.contiguous()
    # transformers keeps a decoder bias that it ties to cls.predictions.bias; store it explicitly
    # (a separate copy: safetensors refuses shared storage) so any loader finds it.
    out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"].clone()
    return out


def tokenizer_vocab_size(directory: Path) -> int:
    """Vocabulary size of the tokenizer files in ``directory`` (tokenizer.json, else vocab.txt)."""
    if (directory / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(os.fspath(directory / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises bare Exception subclasses
            raise UserError(f"{directory / 'tokenizer.json'}: cannot load ({exc})") from None
        return tok.get_vocab_size(with_added_tokens=True)
    if (directory / "vocab.txt").is_file():
        return len((directory / "vocab.txt").read_text(encoding="utf-8").splitlines())
    raise UserError(f"{directory}: no tokenizer files (vocab.txt or tokenizer.json)")


def export_hf(model: BertForPretraining, tokenizer_dir, out_dir) -> Path:
    """Write a transformers-loadable directory (config, safetensors weights, tokenizer files)."""
    tokenizer_dir, out_dir = Path(tokenizer_dir), Path(out_dir)
    present = [n for n in TOKENIZER_FILES if (tokenizer_dir / n).is_file()]
    n_vocab = tokenizer_vocab_size(tokenizer_dir)
    if n_vocab != model.config.vocab_size:
        raise UserError(
            f"{tokenizer_dir}: the tokenizer has {n_vocab} tokens but the model has "
            f"{model.config.vocab_size} embedding rows"
        )
    modern = model.config.arch == "modern"
    config = hf_modern_config(model.config, tokenizer_dir) if modern else hf_config(model.config)
    weights = modern_to_hf_state_dict(model) if modern else to_hf_state_dict(model)
    with atomic_dir(out_dir) as tmp:
        (tmp / "config.json").write_text(config.to_json_string(), "utf-8")
        save_file(weights, os.fspath(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        for name in present:
            shutil.copyfile(tokenizer_dir / name, tmp / name)
    return out_dir


def config_from_hf(hf: dict, source: Path) -> BertConfig:
    """Our BertConfig from a transformers config.json dict; UserError for what we cannot run."""
    if hf.get("model_type") != "bert":
        raise UserError(f"{source}: model_type {hf.get('model_type')!r} is not 'bert' or "
                        "'modernbert'")
    archs = hf.get("architectures") or ["BertForMaskedLM"]
    if not set(archs) <= set(SUPPORTED_ARCHITECTURES):
        raise UserError(
            f"{source}: unsupported architectures {archs} (want {SUPPORTED_ARCHITECTURES})"
        )
    if hf.get("hidden_act", "gelu") != "gelu":
        raise UserError(f"{source}: hidden_act {hf.get('hidden_act')!r} is not 'gelu'")
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise UserError(f"{source}: only absolute position embeddings are supported")
    try:
        return BertConfig(
            vocab_size=int(hf["vocab_size"]),
            hidden_size=int(hf["hidden_size"]),
            num_layers=int(hf["num_hidden_layers"]),
            num_heads=int(hf["num_attention_heads"]),
            intermediate_size=int(hf["intermediate_size"]),
            max_position_embeddings=int(hf.get("max_position_embeddings", 512)),
            type_vocab_size=int(hf.get("type_vocab_size", 2)),
            dropout=float(hf.get("hidden_dropout_prob", 0.1)),
            attention_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)),
            layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
            initializer_range=float(hf.get("initializer_range", 0.02)),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", True)),
            use_nsp="BertForPreTraining" in archs,
            pad_token_id=int(hf.get("pad_token_id") or 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{source}: invalid BERT config ({exc})") from None


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never a pickle); UserError if missing or corrupt."""
    if not path.is_file():
        raise UserError(f"{path}: file not found (only safetensors weights are supported)")
    try:
        return load_file(os.fspath(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read safetensors weights ({exc})") from None


def _modern_hf_key(ours: str) -> str:
    """Our modern state_dict key -> ``ModernBertForMaskedLM``'s.

    >>> _modern_hf_key("layers.1.attn.Wqkv.weight"), _modern_hf_key("decoder_bias")
    ('model.layers.1.attn.Wqkv.weight', 'decoder.bias')
    """
    if ours == "decoder_bias":
        return "decoder.bias"
    return ours if ours.startswith("head.") else f"model.{ours}"


def modern_to_hf_state_dict(model) -> dict[str, torch.Tensor]:
    """Modern weights under transformers' names (the tied decoder weight left implicit)."""
    return {_modern_hf_key(k): v.detach().to("cpu", torch.float32).contiguous()
            for k, v in model.state_dict().items()}


def _special_ids(tokenizer_dir: Path) -> dict[str, int]:
    """[CLS]/[SEP] ids from the tokenizer's vocab.txt (one token per line)."""
    vocab = (tokenizer_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    ids = {tok: i for i, tok in enumerate(vocab)}
    if "[CLS]" not in ids or "[SEP]" not in ids:
        raise UserError(f"{tokenizer_dir / 'vocab.txt'}: no [CLS] or [SEP] token")
    return {"cls_token_id": ids["[CLS]"], "bos_token_id": ids["[CLS]"],
            "sep_token_id": ids["[SEP]"], "eos_token_id": ids["[SEP]"]}


def hf_modern_config(config: BertConfig, tokenizer_dir: Path):
    """The ``transformers.ModernBertConfig`` equivalent to our modern config."""
    from transformers import ModernBertConfig

    rope = {"rope_type": "default", "rope_theta": config.rope_theta}
    window = config.local_window or 2 * config.max_position_embeddings
    types = ["full_attention" if config.local_window <= 0 or i % config.global_every == 0
             else "sliding_attention" for i in range(config.num_layers)]
    return ModernBertConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, hidden_activation="gelu",
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range, norm_eps=config.layer_norm_eps,
        norm_bias=False, attention_bias=False, mlp_bias=False, decoder_bias=True,
        classifier_bias=False, classifier_activation="gelu",
        attention_dropout=config.attention_dropout, embedding_dropout=config.dropout,
        mlp_dropout=config.dropout, local_attention=window, layer_types=types,
        rope_parameters={"full_attention": dict(rope), "sliding_attention": dict(rope)},
        pad_token_id=config.pad_token_id, tie_word_embeddings=True,
        architectures=[MODERN_ARCHITECTURE], **_special_ids(Path(tokenizer_dir)))


def modern_config_from_hf(hf: dict, source: Path) -> BertConfig:
    """Our modern BertConfig from a ModernBERT config.json; UserError for what we cannot run."""
    archs = hf.get("architectures") or [MODERN_ARCHITECTURE]
    if archs != [MODERN_ARCHITECTURE]:
        raise UserError(f"{source}: unsupported architectures {archs} (want {MODERN_ARCHITECTURE})")
    for key, want in (("hidden_activation", "gelu"), ("classifier_activation", "gelu"),
                      ("norm_bias", False), ("attention_bias", False), ("mlp_bias", False),
                      ("classifier_bias", False), ("decoder_bias", True),
                      ("tie_word_embeddings", True)):
        if hf.get(key, want) != want:
            raise UserError(f"{source}: {key}={hf.get(key)!r} is not supported (want {want!r})")
    try:
        n, types = int(hf["num_hidden_layers"]), hf.get("layer_types")
        thetas = {t: float(p["rope_theta"]) for t, p in (hf.get("rope_parameters") or {}).items()}
        local = [i for i, t in enumerate(types or []) if t == "sliding_attention"]
        if len(set(thetas.values())) > 1:
            raise UserError(f"{source}: different rotary bases per layer type are not supported")
        every = (local and next(i for i in range(1, n + 1) if i not in local)) or 1
        if local and types != ["full_attention" if i % every == 0 else "sliding_attention"
                               for i in range(n)]:
            raise UserError(f"{source}: layer_types {types} is not a global-every-n pattern")
        return BertConfig(
            arch="modern", vocab_size=int(hf["vocab_size"]), hidden_size=int(hf["hidden_size"]),
            num_layers=n, num_heads=int(hf["num_attention_heads"]),
            intermediate_size=int(hf["intermediate_size"]),
            max_position_embeddings=int(hf.get("max_position_embeddings", 512)),
            dropout=float(hf.get("mlp_dropout", 0.0)),
            attention_dropout=float(hf.get("attention_dropout", 0.0)),
            layer_norm_eps=float(hf.get("norm_eps", 1e-5)),
            initializer_range=float(hf.get("initializer_range", 0.02)),
            pad_token_id=int(hf.get("pad_token_id") or 0),
            rope_theta=next(iter(thetas.values()), 10000.0),
            local_window=int(hf.get("local_attention", 0)) if local else 0,
            global_every=every if local else 3, use_nsp=False)
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        raise UserError(f"{source}: invalid ModernBERT config ({exc})") from None


def _load_modern(directory: Path, hf: dict, weights: dict[str, torch.Tensor]):
    """A modern model from a ModernBERT directory's config and weights (renaming only)."""
    model = build_model(modern_config_from_hf(hf, directory / "config.json"))
    state = {}
    for key, ref in model.state_dict().items():
        name = _modern_hf_key(key)
        if name not in weights:
            raise UserError(f"{directory / WEIGHTS_NAME}: missing tensor {name!r}")
        if weights[name].shape != ref.shape:
            raise UserError(f"{directory / WEIGHTS_NAME}: {name} has shape "
                            f"{tuple(weights[name].shape)}, config implies {tuple(ref.shape)}")
        state[key] = weights[name]
    model.load_state_dict(state, strict=True)
    return model.eval()


def import_hf(directory):
    """Load a transformers-format directory (as written by ``export_hf``) into our model."""
    directory = Path(directory)
    hf = read_json(directory / "config.json", "a model config", obj=True)
    if hf.get("model_type") == "modernbert":
        return _load_modern(directory, hf, read_safetensors(directory / WEIGHTS_NAME))
    config = config_from_hf(hf, directory / "config.json")
    weights = read_safetensors(directory / WEIGHTS_NAME)
    model = BertForPretraining(config)
    mapping = _key_map(config)
    state = {}
    try:
        for key, ref in model.state_dict().items():
            if ".attention.qkv." in key:
                i, suffix = key.split(".")[1], key.rsplit(".", 1)[1]
                prefix = f"bert.encoder.layer.{i}.attention.self"
                parts = [weights[f"{prefix}.{n}.{suffix}"] for n in ("query", "key", "value")]
                state[key] = torch.cat(parts, dim=0)
            else:
                state[key] = weights[mapping[key]]
            if state[key].shape != ref.shape:
                raise UserError(
                    f"{directory / WEIGHTS_NAME}: {key} has shape {tuple(state[key].shape)}, "
                    f"config implies {tuple(ref.shape)}"
                )
    except KeyError as exc:
        raise UserError(f"{directory / WEIGHTS_NAME}: missing tensor {exc}") from None
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ["export_hf", "import_hf", "hf_config", "hf_modern_config", "to_hf_state_dict",
           "modern_to_hf_state_dict", "config_from_hf", "modern_config_from_hf"]
