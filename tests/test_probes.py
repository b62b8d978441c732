"""Tests for zhbert.probes and examples/cloze_probes.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers_model import make_tokenizer_dir, tiny_config, vocab_size_of
from zhbert.errors import UserError
from zhbert.export import export_hf
from zhbert.models import build_model
from zhbert.predict import fill_mask, load_for_inference
from zhbert.probes import Probe, load_probes, score_probes, seen_in_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_committed_probe_set_is_well_formed():
    probes = load_probes()
    assert len(probes) >= 20
    assert len({p.text for p in probes}) == len(probes)
    assert all(p.text.count("[MASK]") == 1 and len(p.answer) == 1 for p in probes)


@pytest.mark.parametrize("content, message", [
    ("not json", "invalid JSON"),
    ('{"probes": [{"text": "no mask", "answer": "x"}]}', "one \\[MASK\\]"),
    ('{"probes": [{"text": "a[MASK]", "answer": "xy"}]}', "one-character"),
    ('{"probes": [{"text": "a[MASK]"}]}', "text and an answer"),
    ('{"items": []}', "not a probe file"),
])
def test_bad_probe_files_are_refused(tmp_path, content, message):
    path = tmp_path / "p.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        load_probes(path)
    with pytest.raises(UserError, match="not found"):
        load_probes(tmp_path / "missing.json")


def test_seen_in_corpus_ignores_final_punctuation():
    probes = [Probe("北[MASK]大学。", "京"), Probe("上[MASK]。", "海")]
    assert seen_in_corpus(probes, ["他在北京大学读书", "南方"]) == [True, False]


def test_score_counts_hits_against_the_models_own_predictions(tmp_path):
    tok = make_tokenizer_dir(tmp_path / "tok")
    torch.manual_seed(0)
    model = build_model(tiny_config(vocab_size_of(tok), arch="modern"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    model, tokenizer = load_for_inference(export_hf(model, tok, tmp_path / "final"))
    texts = ["今天天气很[MASK]。", "我[MASK]中国。", "他们不在[MASK]。"]
    top = [r[0][0]["token"] for r in fill_mask(model, tokenizer, texts, top_k=3)]
    wrong = next(c for c in "今天气很好" if c != top[2])
    probes = [Probe(texts[0], top[0]), Probe(texts[1], top[1]), Probe(texts[2], wrong)]
    result = score_probes(model, tokenizer, probes, top_k=3)
    assert result["top1_hits"] == 2 and result["n"] == 3
    assert [r["hit"] for r in result["probes"]] == [True, True, False]
    assert result["probes"][0]["rank"] == 1
    assert abs(result["top1_rate"] - 2 / 3) < 1e-12


def test_cli_writes_json_and_flags_probes_seen_in_training(tmp_path, tiny_corpus):
    from zhbert.corpus.binary import load_split

    model = build_model(tiny_config(vocab_size_of(tiny_corpus), arch="modern"))
    final = export_hf(model, tiny_corpus, tmp_path / "final")
    vocab = (tiny_corpus / "vocab.txt").read_text(encoding="utf-8").splitlines()
    first = "".join(vocab[t] for t in load_split(tiny_corpus, "train").sentence(0))
    probes = tmp_path / "probes.json"
    probes.write_text(json.dumps({"probes": [
        {"text": first[:5] + "[MASK]" + first[6:], "answer": first[5]},
        {"text": "火星上的[MASK]", "answer": "人"}]}, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "cloze_probes.py"), "--model",
                           str(final), "--probes", str(probes), "--corpus", str(tiny_corpus),
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["n"] == 2 and result["in_train_split"] == 1
    assert [r["in_train_split"] for r in result["probes"]] == [True, False]
    assert "top-1:" in proc.stdout

    bad = subprocess.run([sys.executable, str(ROOT / "examples" / "cloze_probes.py"), "--model",
                          str(tmp_path / "nowhere")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
