"""benchmarks/train_throughput.py and benchmarks/optimizer_step.py on a tiny corpus and
architecture (BERT and modern), the FLOP count of local attention, and the model's CPU fast paths
(rand-mask dropout, written-out attention with dropout) that the benchmark measures."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers_scripts import load_script
from zhbert.fastops import attention_with_dropout, dropout


def test_benchmark_writes_records_with_matching_losses(tiny_corpus, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bench = load_script("benchmarks/train_throughput.py")
    out = tmp_path / "tt.json"
    argv = ["--corpus", str(tiny_corpus), "--arch", "smoke", "--seq-len", "32",
            "--batch-size", "4", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--dtype", "fp32", "--json", str(out)]
    assert bench.main(argv) == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [r["case"] for r in records] == ["smoke/pairs/fp32", "smoke/packed/fp32"]
    for r in records:
        for key in ("ours_tokens_per_s", "hf_tokens_per_s", "ratio", "mfu_ours", "mfu_hf",
                    "ours_steps_per_s", "hf_steps_per_s", "data_wait_frac"):
            assert r[key] > 0 and math.isfinite(r[key]), key
        assert r["loss_diff"] <= 1e-4
        assert r["loss_ours"] == pytest.approx(r["loss_hf"], abs=1e-4)
        assert r["ratio"] == pytest.approx(r["ours_tokens_per_s"] / r["hf_tokens_per_s"])
        assert r["mfu_ours"] / r["mfu_hf"] == pytest.approx(r["ratio"], rel=1e-6)
        assert r["repeats"] == 1 and r["threads"] == 1 and r["batch_size"] == 4
        assert r["machine"]["torch"] == torch.__version__
        assert r["dropout"] == 0.1  # the smoke preset's: timed with dropout on
        assert "AdamW" in r["optimizer_ours"] and "AdamW" in r["optimizer_hf"]
        assert (r["arch_kind"], r["hf_model"], r["hf_attn_implementation"]) == (
            "bert", "BertForMaskedLM", "sdpa")
    pairs, packed = records
    assert pairs["real_tokens_per_step"] <= pairs["padded_tokens_per_step"] == 4 * 32
    assert packed["real_tokens_per_step"] == packed["padded_tokens_per_step"] == 4 * 32
    table = capsys.readouterr().out
    assert "| case |" in table and "smoke/packed/fp32" in table


def test_benchmark_accumulates_micro_batches_in_fp16(tiny_corpus, tmp_path, monkeypatch):
    # one timed step = --grad-accum micro-batches; fp16 runs with a GradScaler on both sides
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bench = load_script("benchmarks/train_throughput.py")
    out = tmp_path / "tt.json"
    argv = ["--corpus", str(tiny_corpus), "--arch", "smoke", "--batch-kind", "packed",
            "--seq-len", "32", "--batch-size", "4", "--repeats", "2", "--warmup", "0",
            "--threads", "1", "--dtype", "fp16", "fp32", "--grad-accum", "3", "--json", str(out)]
    assert bench.main(argv) == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [r["case"] for r in records] == ["smoke/packed/fp16", "smoke/packed/fp32"]
    for r in records:
        assert r["grad_accum"] == 3
        assert r["real_tokens_per_step"] == r["padded_tokens_per_step"] == 3 * 4 * 32
        assert r["loss_diff"] <= 1e-4 and r["ours_tokens_per_s"] > 0
    with pytest.raises(Exception, match="--grad-accum"):
        bench.main([*argv[:-2], "--grad-accum", "0"])


def test_step_flops_sum_the_micro_batches(tiny_corpus):
    bench = load_script("benchmarks/train_throughput.py")
    from zhbert.corpus import load_corpus_info
    from zhbert.models import build_model

    info = load_corpus_info(tiny_corpus)
    tcfg = bench.preset("smoke")
    cfg = bench.model_config("smoke", info, 32)
    batches, _ = bench.make_batches(info, tcfg.data, "pairs", 4, 32, 3)
    micro = [hf_b for _, hf_b in batches]
    n = bench.encoder_params(build_model(cfg))
    one = [bench.step_flops(cfg, n, [b]) for b in micro]
    assert bench.step_flops(cfg, n, micro) == pytest.approx(sum(one))
    assert bench.step_flops(cfg, n, micro[:2]) == pytest.approx(one[0] + one[1])
    assert min(one) > 0


def test_benchmark_rejects_bad_case(tiny_corpus):
    from zhbert.errors import UserError

    with pytest.raises(UserError, match="--cases"):
        load_script("benchmarks/train_throughput.py").run_benchmark(["--corpus", str(tiny_corpus), "--cases", "paper/x/fp32"])


MODERN = ["--set", "model.arch=modern", "--set", "model.layer_norm_eps=1e-5",
          "--set", "model.local_window=8", "--set", "model.global_every=2",
          "--set", "model.num_layers=3"]


@pytest.mark.parametrize("dense", [False, True])
def test_benchmark_times_the_modern_pair(tiny_corpus, tmp_path, monkeypatch, dense):
    """A smoke-sized modern model (3 layers, the middle one local) against ModernBertForMaskedLM."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "tt.json"
    argv = ["--corpus", str(tiny_corpus), "--arch", "smoke", *MODERN, "--batch-kind", "pairs",
            "--seq-len", "32", "--batch-size", "4", "--repeats", "1", "--warmup", "0",
            "--threads", "1", "--dtype", "fp32", "--json", str(out)]
    bench = load_script("benchmarks/train_throughput.py")
    assert bench.main(argv + (["--hf-dense-head"] if dense else [])) == 0
    (r,) = json.loads(out.read_text(encoding="utf-8"))
    assert (r["arch_kind"], r["hf_model"], r["hf_attn_implementation"]) == (
        "modern", "ModernBertForMaskedLM", "sdpa")
    assert r["hf_sparse_prediction"] is not dense
    assert r["local_window"] == 8 and "model.arch=modern" in r["overrides"]
    assert r["loss_diff"] <= 1e-4 and math.isfinite(r["loss_ours"])
    assert r["mfu_ours"] > 0 and r["ours_tokens_per_s"] > 0 and r["hf_tokens_per_s"] > 0
    model = r["encoder_params"]
    # 3 pre-LN layers of 4 H^2 + 3 H I weights, their norms (layer 0 has no attn_norm), the
    # embedding norm and the final norm; no biases
    H, inter = 32, 64
    assert model == 3 * (4 * H * H + 3 * H * inter) + (2 * 3 - 1) * H + 2 * H


def test_modern_loss_check_holds_on_padded_batches(tiny_corpus):
    """Ragged padding (a row shorter than the band, one fully inside it) and a local layer."""
    from zhbert.bench.models import build_pair
    from zhbert.corpus import load_corpus_info
    from zhbert.data import Batch
    from zhbert.export import modern_to_hf_state_dict

    bench = load_script("benchmarks/train_throughput.py")
    info = load_corpus_info(tiny_corpus)
    cfg = bench.model_config("smoke", info, 32, MODERN[1::2])
    torch.manual_seed(0)
    ours, hf, desc = build_pair(cfg, info.path)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, info.vocab_size, (3, 24), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    mask[2, 3:] = 0
    ids = ids * mask
    labels = torch.full_like(ids, -100)
    labels[0, [2, 9, 20]] = ids[0, [2, 9, 20]]
    labels[1, [0, 13]] = ids[1, [0, 13]]
    labels[2, 1] = ids[2, 1]
    batch = Batch(ids, mask, torch.zeros_like(ids), labels, None, int(mask.sum()))
    with torch.no_grad():  # perturb everything so that norms and the decoder bias matter
        for p in ours.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        hf.load_state_dict(modern_to_hf_state_dict(ours), strict=False)  # decoder stays tied
    a, h = bench.loss_check(ours, hf, batch, "cpu")
    assert math.isfinite(a) and abs(a - h) <= 1e-4
    assert desc["hf_sparse_prediction"] is True


def test_local_attention_flops_count_the_band():
    from zhbert.bench.models import attention_pairs, band_pairs, model_flops
    from zhbert.model_config import BertConfig
    from zhbert.modern import band_mask

    for n in (1, 2, 5, 9, 33):
        for w in (2, 4, 8, 64):
            assert band_pairs(n, w) == int(band_mask(n, w, torch.device("cpu")).sum()), (n, w)
    cfg = BertConfig(arch="modern", vocab_size=100, hidden_size=8, num_layers=4, num_heads=2,
                     intermediate_size=16, local_window=4, global_every=2)
    lengths = torch.tensor([10, 3])
    # layers 0 and 2 global (n^2), 1 and 3 local (the band)
    assert attention_pairs(cfg, lengths) == 2 * (100 + 9) + 2 * (band_pairs(10, 4) + 9)
    glob = BertConfig(arch="modern", vocab_size=100, hidden_size=8, num_layers=4, num_heads=2,
                      intermediate_size=16)
    assert attention_pairs(glob, lengths) == 4 * (100 + 9)
    base = model_flops(cfg, 1000, lengths, n_masked=0)
    assert base == 6 * 1000 * 13 + 12 * 8 * attention_pairs(cfg, lengths)


def test_optimizer_step_benchmark_writes_records(tiny_corpus, tmp_path, capsys):
    from zhbert.corpus import load_corpus_info
    from zhbert.models import build_model

    bench = load_script("benchmarks/optimizer_step.py")
    out = tmp_path / "opt.json"
    argv = ["--corpus", str(tiny_corpus), "--arch", "smoke", "--repeats", "2", "--warmup", "0",
            "--threads", "1", "--json", str(out)]
    assert bench.main(argv) == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [r["impl"] for r in records] == ["fused", "foreach", "default"]
    cfg = bench.model_config("smoke", load_corpus_info(tiny_corpus), mlm_only=False)
    for r in records:
        assert len(r["step_s"]) == 2 and r["step_s_median"] > 0
        assert r["step_s_min"] <= r["step_s_median"]
        assert r["parameters"] == build_model(cfg).num_parameters()
        assert r["arch_kind"] == "bert" and r["preset_resolves_to"] == "fused"
    assert [r["flags"] for r in records] == [{"fused": True, "foreach": False},
                                             {"fused": False, "foreach": True},
                                             {"fused": False, "foreach": False}]
    assert min(r["relative_to_fastest"] for r in records) == 1.0
    assert "for-loop" in capsys.readouterr().out


def test_benchmarks_reject_bad_overrides(tiny_corpus):
    from zhbert.errors import UserError

    for script in ("benchmarks/train_throughput.py", "benchmarks/optimizer_step.py"):
        with pytest.raises(UserError, match="model.arch"):
            load_script(script).run_benchmark(["--corpus", str(tiny_corpus), "--arch", "smoke",
                                               "--set", "model.arch=rnn"])


def test_dropout_keeps_1_minus_p_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = dropout(x, 0.1, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.9))
    assert dropout(x, 0.1, False) is x and dropout(x, 0.0, True) is x
    g = torch.randn(1000, requires_grad=True)
    out = dropout(g, 0.5, True)
    out.sum().backward()
    torch.testing.assert_close(g.grad, (out != 0).float() * 2.0)


def test_attention_with_dropout_is_sdpa():
    """Without dropout the written-out attention equals SDPA (key-padding mask included)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4) for _ in range(3))
    mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., 5:] = False
    bias = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(attention_with_dropout(q, k, v, bias, 0.0), ref)
    torch.testing.assert_close(attention_with_dropout(q, k, v, None, 0.0),
                               F.scaled_dot_product_attention(q, k, v))
    # with dropout every output row is still a combination of the values (no NaN, finite)
    assert torch.isfinite(attention_with_dropout(q, k, v, bias, 0.5)).all()
