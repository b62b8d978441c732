"""benchmarks/train_throughput.py on a tiny corpus and architecture, and the model's CPU fast paths
(rand-mask dropout, written-out attention with dropout) that the benchmark measures."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from zhbert.fastops import attention_with_dropout, dropout

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location(
        "train_throughput", ROOT / "benchmarks" / "train_throughput.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_records_with_matching_losses(tiny_corpus, tmp_path, capsys,
                                                       monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bench = _load_benchmark()
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
    pairs, packed = records
    assert pairs["real_tokens_per_step"] <= pairs["padded_tokens_per_step"] == 4 * 32
    assert packed["real_tokens_per_step"] == packed["padded_tokens_per_step"] == 4 * 32
    table = capsys.readouterr().out
    assert "| case |" in table and "smoke/packed/fp32" in table


def test_benchmark_rejects_bad_case(tiny_corpus):
    from zhbert.errors import UserError

    with pytest.raises(UserError, match="--cases"):
        _load_benchmark().run_benchmark(["--corpus", str(tiny_corpus), "--cases", "paper/x/fp32"])


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
