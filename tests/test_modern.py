"""Tests for zhbert.modern: the pre-LN rotary encoder, its ModernBERT export and fill-mask parity."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers_model import make_tokenizer_dir, tiny_config, vocab_size_of
from zhbert.config import build_config
from zhbert.errors import UserError
from zhbert.export import export_hf, import_hf
from zhbert.models import build_model
from zhbert.modern import ModernBertForPretraining, band_mask, modern_parameter_count, rotate
from zhbert.predict import fill_mask, load_for_inference

TEXTS = ["今天天气很[MASK]。", "我[MASK]中国[MASK]。", "他们不在[MASK]。"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _modern(vocab: int, scale: float = 0.05, **overrides) -> ModernBertForPretraining:
    """A tiny modern model with perturbed weights (norms and the decoder bias not trivially 1/0)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(vocab, arch="modern", layer_norm_eps=1e-5, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval()


def _padded(vocab: int, length: int = 12):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(5, vocab, (3, length), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    return ids * mask, mask


def test_rotation_makes_scores_depend_on_offset_only():
    """q·k after rotary depends on the position difference, not on the positions."""
    from zhbert.modern import rotary_table

    cos, sin = rotary_table(16, 8, 10000.0)
    q, k = torch.randn(8), torch.randn(8)
    rq = rotate(q.expand(16, 8), cos, sin)
    rk = rotate(k.expand(16, 8), cos, sin)
    assert torch.allclose(rq[3] @ rk[1], rq[10] @ rk[8], atol=1e-5)
    assert not torch.allclose(rq[3] @ rk[1], rq[3] @ rk[2], atol=1e-3)


def test_band_mask_matches_window():
    m = band_mask(6, 4, torch.device("cpu"))
    assert m[0].tolist() == [True, True, True, False, False, False]
    assert m.sum().item() == 6 + 2 * (5 + 4)


def test_parameter_count_and_no_biases():
    cfg = tiny_config(50, arch="modern")
    model = build_model(cfg)
    assert model.num_parameters() == modern_parameter_count(cfg)
    biases = [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert biases == ["decoder_bias"]  # the output bias only: no Linear or LayerNorm biases
    assert model.embeddings.tok_embeddings.weight[cfg.pad_token_id].abs().sum() == 0


def test_padding_does_not_change_real_tokens():
    model = _modern(40)
    ids, mask = _padded(40)
    with torch.no_grad():
        full = model(ids, mask, return_logits=True).mlm_logits
        alone = model(ids[2:, :3], return_logits=True).mlm_logits
    assert torch.allclose(full[2, :3], alone[0], atol=1e-5)
    assert full[2, 3:].abs().max() == 0


def test_sparse_loss_equals_dense_loss():
    model = _modern(40)
    ids, mask = _padded(40)
    labels = torch.full_like(ids, -100)
    labels[0, [1, 4]] = ids[0, [1, 4]]
    labels[1, 2] = ids[1, 2]
    labels[2, 5] = 7  # on padding: ignored
    with torch.no_grad():
        out = model(ids, mask, mlm_labels=labels, return_logits=True)
    dense = out.mlm_logits[labels.masked_fill(~mask.bool(), -100) != -100]
    targets = labels[(labels != -100) & mask.bool()]
    assert int(out.mlm_count) == 3
    assert abs(float(out.mlm_loss) - float(torch.nn.functional.cross_entropy(dense, targets))) < 1e-5


def test_modern_learns_a_copy_task():
    """Every token is doubled and the first of each pair masked: the model must learn to copy its
    right neighbour, which needs attention to a relative offset (rotary) to work."""
    torch.manual_seed(0)
    model = build_model(tiny_config(30, arch="modern", layer_norm_eps=1e-5)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        ids = torch.randint(5, 30, (16, 8)).repeat_interleave(2, dim=1)
        labels = torch.full_like(ids, -100)
        labels[:, ::2] = ids[:, ::2]
        out = model(ids.masked_fill(labels != -100, 4), mlm_labels=labels)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert int(out.mlm_correct) / int(out.mlm_count) > 0.9


@pytest.mark.parametrize("window", [0, 4])
def test_transformers_loads_modern_export_and_logits_match(tmp_path, window):
    from transformers import ModernBertForMaskedLM

    tok_dir = make_tokenizer_dir(tmp_path / "tok")
    vocab = vocab_size_of(tok_dir)
    model = _modern(vocab, local_window=window, global_every=2, num_layers=3)
    out = export_hf(model, tok_dir, tmp_path / "export")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "modernbert"
    assert config["architectures"] == ["ModernBertForMaskedLM"]
    keys = set(load_file(out / "model.safetensors"))
    assert "model.layers.1.attn.Wqkv.weight" in keys and "decoder.bias" in keys
    assert "decoder.weight" not in keys  # tied to the token embeddings

    hf, info = ModernBertForMaskedLM.from_pretrained(out, output_loading_info=True,
                                                     attn_implementation="sdpa")
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert hf.config.layer_types == (["full_attention"] * 3 if not window else
                                     ["full_attention", "sliding_attention", "full_attention"])
    ids, mask = _padded(vocab, length=12)
    with torch.no_grad():
        ours = model(ids, mask, return_logits=True).mlm_logits
        theirs = hf.eval()(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() <= 1e-4


def test_modern_fill_mask_matches_pipeline_and_round_trip(tmp_path):
    from transformers import pipeline

    tok_dir = make_tokenizer_dir(tmp_path / "tok")
    model = _modern(vocab_size_of(tok_dir), scale=0.3)
    out = export_hf(model, tok_dir, tmp_path / "final")
    back = import_hf(out)
    assert back.config == model.config
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items(),
                                  strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    loaded, tokenizer = load_for_inference(out)
    ours = fill_mask(loaded, tokenizer, TEXTS, top_k=4)
    pipe = pipeline("fill-mask", model=str(out))
    for text, per_text in zip(TEXTS, ours, strict=True):
        theirs = pipe(text, top_k=4)
        if isinstance(theirs[0], dict):
            theirs = [theirs]
        for mine, ref in zip(per_text, theirs, strict=True):
            assert [c["token"] for c in mine] == [r["token_str"] for r in ref]
            assert all(abs(c["score"] - r["score"]) <= 1e-4 for c, r in zip(mine, ref,
                                                                           strict=True))


def test_modern_config_is_validated():
    with pytest.raises(UserError, match="model.arch"):
        build_config("smoke", overrides=["model.arch=transformer"])
    with pytest.raises(UserError, match="NSP"):
        build_config("smoke", overrides=["model.arch=modern", "model.use_nsp=true",
                                         "data.format=pairs"])
    with pytest.raises(ValueError, match="arch"):
        tiny_config(10, arch="rnn")


def test_efficient_preset_is_modern_at_paper_scale():
    from zhbert.config import get_preset

    cfg = get_preset("efficient").model
    assert (cfg.arch, cfg.hidden_size, cfg.num_layers, cfg.num_heads) == ("modern", 512, 12, 8)
    assert modern_parameter_count(cfg) == 42_788_678  # the figure zhbert/config.py documents
    assert get_preset("paper").model.arch == "bert"


def test_smoke_run_with_the_modern_arch_trains_and_exports(smoke_args, train_cli):
    from zhbert.history_schema import EVAL_MLM_ACC

    args, run_dir = smoke_args
    proc = train_cli(args + ["--set", "model.arch=modern", "--set", "model.layer_norm_eps=1e-5",
                             "--set", "model.dropout=0", "--set", "model.attention_dropout=0"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    history = json.loads((run_dir / "training_history.json").read_text(encoding="utf-8"))
    assert history["meta"]["config"]["model"]["arch"] == "modern"
    assert len(history[EVAL_MLM_ACC]) >= 2
    final = json.loads((run_dir / "final" / "config.json").read_text(encoding="utf-8"))
    assert final["model_type"] == "modernbert"
    model, tokenizer = load_for_inference(run_dir / "final")
    assert isinstance(model, ModernBertForPretraining)
    assert fill_mask(model, tokenizer, ["今天天气很[MASK]。"], top_k=2)[0][0][0]["token"]


def test_host_built_layout_gives_the_same_loss():
    """The trainer passes zhbert.layout's host-built layout; the result must not change."""
    from zhbert.layout import batch_layout

    model = _modern(40)
    ids, mask = _padded(40)
    labels = torch.full_like(ids, -100)
    labels[0, [1, 4]] = ids[0, [1, 4]]
    labels[1, 2] = ids[1, 2]
    with torch.no_grad():
        plain = model(ids, mask, mlm_labels=labels)
        layout = batch_layout(ids, mask, labels)
        ids2, mask2, labels2 = ids[:, :layout.length], mask[:, :layout.length], \
            labels[:, :layout.length]
        laid = model(ids2, mask2, mlm_labels=labels2, layout=layout)
    assert int(laid.mlm_count) == int(plain.mlm_count) == 3
    assert abs(float(laid.mlm_loss) - float(plain.mlm_loss)) < 1e-6


def test_demo_shapes_benchmark_writes_ratios(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "shapes.json"
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "demo_shapes.py"),
                           "--rounds", "1", "--steps", "1", "--threads", "1", "--batch", "2",
                           "--seq-len", "16", "--vocab", "100", "--json", str(out)],
                          capture_output=True, text=True, cwd=root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    result = json.loads(out.read_text())
    assert result["step_time_ratio"]["256x4"] == 1.0
    assert set(result["step_time_ratio"]) == {"256x4", "256x3", "256x6", "320x4", "384x4",
                                              "192x4", "256x2", "256x4-sdpa"}
    assert result["parameters"]["384x4"] > result["parameters"]["256x4"]
    assert all(v > 0 for v in result["mean_step_s"].values())


def _reference_rotate(x, cos, sin):
    """The textbook half-split rotation through autograd (what the fused ops must equal)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * torch.cat([cos, cos], -1) + rotated * torch.cat([sin, sin], -1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_rotary_qkv_matches_autograd_reference(dtype):
    from zhbert.fastops import RotaryQKV
    from zhbert.modern import rotary_table
    torch.manual_seed(1)
    B, L, heads, d = 2, 6, 3, 8
    cos, sin = (t[:, : d // 2] for t in rotary_table(L, d, 10000.0))
    qkv = torch.randn(B, L, 3, heads, d, dtype=dtype, requires_grad=True)
    q, k, v = RotaryQKV.apply(qkv, cos, sin)
    grads = [torch.randn_like(t) for t in (q, k, v)]
    torch.autograd.backward((q, k, v), grads)
    ref_in = qkv.detach().float().requires_grad_()
    t = ref_in.permute(2, 0, 3, 1, 4)
    ref = (_reference_rotate(t[0], cos, sin), _reference_rotate(t[1], cos, sin), t[2])
    torch.autograd.backward(ref, [g.float() for g in grads])
    tol = 1e-6 if dtype == torch.float32 else 2e-2
    for ours, theirs in zip((q, k, v), ref, strict=True):
        assert ours.dtype == dtype and ours.shape == (B, heads, L, d)
        assert torch.allclose(ours.float(), theirs, atol=tol)
    assert torch.allclose(qkv.grad.float(), ref_in.grad, atol=tol)


def test_masked_lm_loss_matches_cross_entropy_and_top1():
    from zhbert.fastops import MaskedLMLoss
    from zhbert.model import top1_hits
    torch.manual_seed(2)
    logits = torch.randn(7, 11, requires_grad=True)
    target = torch.tensor([0, 3, 10, 3, 5, 1, 2])
    with torch.no_grad():
        logits[1, 3] = 9.0  # two sure hits
        logits[4, 5] = 9.0
    loss, hits = MaskedLMLoss.apply(logits, target)
    (2.0 * loss).backward()
    ref_in = logits.detach().clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy(ref_in, target)
    (2.0 * ref).backward()
    assert abs(loss.item() - ref.item()) < 1e-6
    assert int(hits) == int(top1_hits(logits.detach(), target)) >= 2
    assert not hits.requires_grad
    assert torch.allclose(logits.grad, ref_in.grad, atol=1e-7)


@pytest.mark.parametrize("window", [0, 4])
def test_last_layer_at_labelled_rows_equals_the_full_pass(window):
    """Training's loss runs the last layer only at the labelled rows: same loss and gradients."""
    model = _modern(40, local_window=window, global_every=2, dropout=0.0, attention_dropout=0.0).train()
    ids, mask = _padded(40)
    labels = torch.full_like(ids, -100)
    labels[0, [1, 4, 9]] = ids[0, [1, 4, 9]]
    labels[1, 2] = ids[1, 2]
    sparse = model(ids, mask, mlm_labels=labels)
    sparse.loss.backward()
    g_sparse = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    dense = model(ids, mask, mlm_labels=labels, return_logits=True)  # the full pass
    dense.loss.backward()
    assert abs(sparse.loss.item() - dense.loss.item()) < 1e-6
    assert int(sparse.mlm_correct) == int(dense.mlm_correct)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, g_sparse[n], atol=1e-6), n
    h = model.encode(ids, mask)
    rows = torch.tensor([1, 4, 14])
    assert torch.allclose(model.encode(ids, mask, rows), h.reshape(-1, h.shape[-1])[rows], atol=1e-6)
