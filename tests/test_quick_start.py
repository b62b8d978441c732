"""Tests for zhbert.predict and examples/quick_start.py (fill-mask, errors as one line)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers_model import make_tokenizer_dir, tiny_config, vocab_size_of
from tests.helpers_scripts import load_script
from zhbert.errors import UserError
from zhbert.export import export_hf
from zhbert.model import BertForPretraining
from zhbert.predict import fill_mask, load_for_inference

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "quick_start.py"
TEXTS = ["今天天气很[MASK]。", "我[MASK]中国[MASK]。"]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def dirs(tmp_path):
    """An exported dir and a training-checkpoint dir holding the same (perturbed) tiny model."""
    tok = make_tokenizer_dir(tmp_path / "tok")
    torch.manual_seed(0)
    model = BertForPretraining(tiny_config(vocab_size_of(tok)))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)  # make predictions non-uniform
    exported = export_hf(model, tok, tmp_path / "final")
    ckpt = tmp_path / "checkpoints" / "step_10"
    ckpt.mkdir(parents=True)
    save_file(model.state_dict(), str(ckpt / "model.safetensors"))
    config = {"model": dataclasses.asdict(model.config), "step": 10, "lr": 1e-4}
    (ckpt / "config.json").write_text(json.dumps(config))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (ckpt / name).write_bytes((tok / name).read_bytes())
    return exported, ckpt


def test_fill_mask_matches_transformers_pipeline(dirs):
    from transformers import pipeline

    exported, _ = dirs
    model, tokenizer = load_for_inference(exported)
    ours = fill_mask(model, tokenizer, TEXTS, top_k=4)
    pipe = pipeline("fill-mask", model=str(exported))
    for text, per_text in zip(TEXTS, ours, strict=True):
        theirs = pipe(text, top_k=4)
        if isinstance(theirs[0], dict):  # one [MASK]: a flat list
            theirs = [theirs]
        assert len(per_text) == len(theirs) == text.count("[MASK]")
        for mine, ref in zip(per_text, theirs, strict=True):
            assert [c["token"] for c in mine] == [r["token_str"] for r in ref]
            for c, r in zip(mine, ref, strict=True):
                assert abs(c["score"] - r["score"]) <= 1e-4
    assert ours[0][0][0]["score"] > ours[0][0][1]["score"] > 0


def test_checkpoint_dir_gives_same_predictions(dirs):
    exported, ckpt = dirs
    a = fill_mask(*load_for_inference(exported), TEXTS, top_k=3)
    b = fill_mask(*load_for_inference(ckpt), TEXTS, top_k=3)
    for x, y in zip(a, b, strict=True):
        for m1, m2 in zip(x, y, strict=True):
            assert [c["token"] for c in m1] == [c["token"] for c in m2]
            assert all(abs(c1["score"] - c2["score"]) < 1e-6 for c1, c2 in zip(m1, m2, strict=True))


def test_cli_json_is_one_list_per_mask(dirs, capsys):
    quick_start = load_script("examples/quick_start.py")
    exported, _ = dirs
    args = ["--model", str(exported), "--top-k", "3", "--json"]
    for t in TEXTS:
        args += ["--text", t]
    assert quick_start.main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = [m for per in fill_mask(*load_for_inference(exported), TEXTS, top_k=3) for m in per]
    assert len(printed) == 3  # 1 + 2 masks, flattened in order
    assert [[c["token"] for c in m] for m in printed] == [[c["token"] for c in m] for m in expected]
    assert set(printed[0][0]) == {"token", "score"}
    assert quick_start.main(["--model", str(exported), "--text", TEXTS[0]]) == 0
    human = capsys.readouterr().out
    assert TEXTS[0] in human and "[MASK] 1:" in human and expected[0][0]["token"] in human


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert "Traceback" not in proc.stderr


def test_cli_errors_via_subprocess(dirs, tmp_path):
    exported, _ = dirs
    _assert_one_line_error(_run_cli("--model", str(exported), "--text", "今天天气很好。"), "[MASK]")
    _assert_one_line_error(
        _run_cli("--model", str(tmp_path / "missing"), "--text", "[MASK]"), "not found"
    )


def _expect_user_error(path, fragment, text="今天[MASK]。"):
    with pytest.raises(UserError, match=fragment):
        fill_mask(*load_for_inference(path), [text])


def test_bad_inputs_are_user_errors(dirs, tmp_path):
    exported, ckpt = dirs
    _expect_user_error(exported, "empty", text="  ")
    (ckpt / "model.safetensors").unlink()
    _expect_user_error(ckpt, "model.safetensors")
    (exported / "tokenizer.json").unlink()
    vocab = (exported / "vocab.txt").read_text(encoding="utf-8")
    (exported / "vocab.txt").write_text(vocab + "[extra]\n", encoding="utf-8")
    _expect_user_error(exported, "embedding rows")
    config = json.loads((exported / "config.json").read_text())
    config["model_type"] = "gpt2"
    (exported / "config.json").write_text(json.dumps(config))
    _expect_user_error(exported, "model_type")
    config["model_type"], config["architectures"] = "bert", ["BertForSequenceClassification"]
    (exported / "config.json").write_text(json.dumps(config))
    _expect_user_error(exported, "architectures")
    (exported / "config.json").unlink()
    _expect_user_error(exported, "config.json")
