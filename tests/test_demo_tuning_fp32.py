"""studies/demo_tuning_fp32.py: equal-token arms, the table, and the committed record the
doc shows; the demo_fp32 preset is the arm the record supports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers_scripts import load_script
from zhbert.config import build_config

ROOT = Path(__file__).resolve().parents[1]


def _tun():
    return load_script("studies/demo_tuning_fp32.py")


def test_every_arm_sees_the_same_tokens_in_fp32_without_a_budget(tmp_path):
    tun = _tun()
    for name in tun.ARMS:
        cfg = build_config("demo", None, tun.arm_overrides(name, tmp_path))
        assert cfg.run.precision == "fp32" and cfg.run.time_budget_s == 0
        assert cfg.run.max_steps * cfg.data.batch_size * cfg.data.seq_len == 4_096_000


def test_table_reads_accuracy_by_tokens():
    tun = _tun()
    row = {"label": "x", "train_s": 10.0,
           "curve_tokens": [[819_200, 0.1], [1_638_400, 0.2], [4_096_000, 0.4]]}
    line = tun.markdown_table({"rows": [row]}).splitlines()[2]
    assert line == "| x | 10.0 % | 20.0 % | — | — | 40.0 % | 10 |"


def test_training_doc_holds_the_committed_fp32_table_and_the_preset_follows_it():
    tun = _tun()
    rec = json.loads((ROOT / "results" / "tuning_fp32" / "tuning_fp32.json").read_text())
    assert rec["table"] == tun.markdown_table(rec)
    assert rec["table"] in (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    best = max(rec["rows"], key=lambda r: r["final_acc"])
    assert best["arm"] == "batch32"
    fp32 = build_config("demo_fp32")
    assert (fp32.data.batch_size, fp32.optim.warmup_steps) == (32, 200)
    for row in rec["rows"]:
        assert row["precision"] == "fp32" and "asked for" in row["precision_reason"]
