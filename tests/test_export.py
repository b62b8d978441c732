"""Tests for zhbert.export: transformers loads our export offline, logits match, round trip."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers_model import make_tokenizer_dir, tiny_config, vocab_size_of
from zhbert.errors import UserError
from zhbert.export import export_hf, import_hf
from zhbert.model import BertForPretraining


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _trained_like(vocab: int, **overrides) -> BertForPretraining:
    """A tiny model with perturbed weights (so biases / LayerNorms are not trivially 0/1)."""
    torch.manual_seed(0)
    model = BertForPretraining(tiny_config(vocab, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _padded_inputs(vocab: int):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, vocab, (3, 10), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids = ids * mask
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    return ids, mask, types


@pytest.mark.parametrize("use_nsp", [False, True])
@pytest.mark.parametrize("tie", [True, False])
def test_transformers_loads_export_and_logits_match(tmp_path, use_nsp, tie):
    from transformers import BertForMaskedLM, BertForPreTraining, BertTokenizerFast

    tok_dir = make_tokenizer_dir(tmp_path / "tok")
    vocab = vocab_size_of(tok_dir)
    model = _trained_like(vocab, use_nsp=use_nsp, tie_word_embeddings=tie)
    out = export_hf(model, tok_dir, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["architectures"] == ["BertForPreTraining" if use_nsp else "BertForMaskedLM"]
    assert config["tie_word_embeddings"] is tie
    keys = set(load_file(out / "model.safetensors"))
    assert "bert.encoder.layer.1.attention.self.value.weight" in keys
    assert ("cls.predictions.decoder.weight" in keys) is (not tie)
    assert ("bert.pooler.dense.weight" in keys) is use_nsp
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        assert (out / name).read_bytes() == (tok_dir / name).read_bytes()

    cls = BertForPreTraining if use_nsp else BertForMaskedLM
    hf, info = cls.from_pretrained(out, output_loading_info=True, attn_implementation="sdpa")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    hf.eval()
    tokenizer = BertTokenizerFast.from_pretrained(out)
    assert tokenizer.convert_tokens_to_ids("[MASK]") == 4 and len(tokenizer) == vocab

    ids, mask, types = _padded_inputs(vocab)
    with torch.no_grad():
        ours = model(ids, mask, types, return_logits=True)
        theirs = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
    theirs_mlm = theirs.prediction_logits if use_nsp else theirs.logits
    # Only real positions are compared: transformers also computes (meaningless) outputs for
    # padding queries, which our unpadded model never computes (we return zeros there).
    real = mask.bool()
    assert (ours.mlm_logits[real] - theirs_mlm[real]).abs().max().item() <= 1e-4
    if use_nsp:
        assert (ours.nsp_logits - theirs.seq_relationship_logits).abs().max().item() <= 1e-4


def test_import_round_trip_is_exact(tmp_path):
    tok_dir = make_tokenizer_dir(tmp_path / "tok")
    model = _trained_like(vocab_size_of(tok_dir), use_nsp=True, tie_word_embeddings=False)
    out = export_hf(model, tok_dir, tmp_path / "export")
    back = import_hf(out)
    assert back.config == model.config
    for (k1, v1), (k2, v2) in zip(
        model.state_dict().items(), back.state_dict().items(), strict=True
    ):
        assert k1 == k2 and torch.equal(v1, v2)


def test_import_of_transformers_saved_model(tmp_path):
    """A model saved by transformers itself (tied decoder omitted) imports too."""
    from transformers import BertForMaskedLM

    from zhbert.export import hf_config

    tok_dir = make_tokenizer_dir(tmp_path / "tok")
    vocab = vocab_size_of(tok_dir)
    torch.manual_seed(1)
    hf = BertForMaskedLM._from_config(hf_config(tiny_config(vocab)), attn_implementation="sdpa")
    hf.save_pretrained(tmp_path / "hf")
    ours = import_hf(tmp_path / "hf")
    ids, mask, types = _padded_inputs(vocab)
    with torch.no_grad():
        a = ours(ids, mask, types, return_logits=True).mlm_logits
        b = hf.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    real = mask.bool()
    assert (a[real] - b[real]).abs().max().item() <= 1e-4


def test_export_rejects_vocab_mismatch_and_import_bad_dirs(tmp_path):
    tok_dir = make_tokenizer_dir(tmp_path / "tok")
    model = _trained_like(vocab_size_of(tok_dir) + 3)
    with pytest.raises(UserError, match="embedding rows"):
        export_hf(model, tok_dir, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with pytest.raises(UserError, match="config.json"):
        import_hf(tmp_path / "nothing")
    (tmp_path / "gpt").mkdir()
    (tmp_path / "gpt" / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(UserError, match="model_type"):
        import_hf(tmp_path / "gpt")
