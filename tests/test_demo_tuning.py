"""studies/demo_tuning.py: its commands, its table, and the committed record the doc shows
(no real training here)."""

from __future__ import annotations

import json

import pytest

from tests.helpers_scripts import load_script
from zhbert import history_schema as H
from zhbert.config import build_config
from zhbert.errors import UserError

tun = load_script("studies/demo_tuning.py")


def _history(steps, accs, commit="abc"):
    return {H.STEPS: list(steps), H.ELAPSED_S: [1.0, 12.5], H.EVAL_STEPS: list(steps),
            H.EVAL_MLM_ACC: list(accs), H.META_KEY: {"git_commit": commit, "git_dirty": False}}


def test_arm_settings_are_the_base_then_the_arms_own(tmp_path):
    cfg = build_config("demo", None, tun.arm_overrides("batch32", tmp_path))
    assert (cfg.run.max_steps, cfg.data.batch_size, cfg.optim.warmup_steps) == (800, 32, 200)
    assert cfg.data.mask_rate == 0.25 and cfg.run.eval_interval == 100
    cfg = build_config("demo", None, tun.arm_overrides("mask35", tmp_path))
    assert (cfg.run.max_steps, cfg.data.mask_rate, cfg.model.arch) == (400, 0.35, "modern")


def test_table_rows_read_the_held_out_points():
    row = tun.held_out_at(_history(range(50, 801, 50), [i / 100 for i in range(1, 17)]))
    assert row["at"] == {"100": 0.02, "200": 0.04, "300": 0.06, "400": 0.08}
    assert row["later"][-1] == [800, 0.16] and row["final"] == [800, 0.16]
    table = tun.markdown_table({"rows": [{"label": "x", **row}]})
    assert table.splitlines()[2] == ("| x | 2.0 % | 4.0 % | 6.0 % | 8.0 % | 13.0 % at 650, "
                                     "14.0 % at 700, 15.0 % at 750, 16.0 % at 800 |")
    short = tun.held_out_at(_history([50, 100, 150, 200], [0.1, 0.2, 0.3, 0.4]))
    assert "| — | — |" in tun.markdown_table({"rows": [{"label": "y", **short}]})


def test_main_trains_every_arm_then_copies_and_records(tmp_path, monkeypatch):
    def fake_train(name, preset, run_dir, overrides, redo):
        run_dir.mkdir(parents=True)
        steps = range(50, 401, 50)
        (run_dir / H.HISTORY_NAME).write_text(json.dumps(_history(steps, [0.1] * 8)))
        return {"command": name, "reused": False, "wall_s": 3.0}

    monkeypatch.setattr(tun.rs, "train_run", fake_train)
    monkeypatch.setattr(tun.rs, "ensure_corpus", lambda path: None)
    out = tmp_path / "out"
    assert tun.main(["--runs-dir", str(tmp_path / "runs"), "--out-dir", str(out),
                     "--arms", "base", "mask35"]) == 0
    rec = json.loads((out / "tuning.json").read_text())
    assert [r["arm"] for r in rec["rows"]] == ["bert_demo", "base", "mask35"]
    assert rec["table"] == tun.markdown_table(rec)
    assert rec["runs"]["base"]["train_s"] == 12.5
    assert (out / "mask35_history.json").is_file()
    # --skip-train tabulates the copies again, identically
    assert tun.main(["--out-dir", str(out), "--arms", "base", "mask35", "--skip-train"]) == 0
    assert json.loads((out / "tuning.json").read_text())["table"] == rec["table"]
    with pytest.raises(UserError, match="is a file"):
        tun.main(["--out-dir", str(out / "tuning.json")])



def test_training_doc_holds_the_committed_tuning_table():
    root = tun.ROOT
    rec = json.loads((root / "results" / "tuning" / "tuning.json").read_text())
    assert rec["table"] == tun.markdown_table(rec)
    doc = (root / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    assert rec["table"] in doc
    for n in tun.ARMS:  # every arm's history is committed and recorded a clean tree
        h = json.loads((root / "results" / "tuning" / f"{n}_history.json").read_text())
        assert h[H.META_KEY]["git_dirty"] is False
