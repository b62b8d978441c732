"""studies/calibration_runs.py: its training commands, when a finished run is reused, which
histories it collects, and its pooled figures (no real training here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers_scripts import load_script
from zhbert import history_schema as H
from zhbert.analysis.schedule import Schedule
from zhbert.analysis.synthetic import make_scheduled_history
from zhbert.config import build_config
from zhbert.errors import UserError

cal = load_script("studies/calibration_runs.py")


def _sets(cmd: list[str]) -> dict[str, str]:
    """``--set key=value`` pairs of a command."""
    pairs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    return dict(p.split("=", 1) for p in pairs)


def test_commands_spell_out_each_runs_schedule(tmp_path):
    cmd = cal.train_command("run_b", tmp_path / "corpus", tmp_path / "runs")
    sets = _sets(cmd)
    assert cmd[cmd.index("--run-dir") + 1] == str(tmp_path / "runs" / "run_b")
    assert sets["optim.schedule"] == "linear" and sets["optim.lr"] == "4e-3"
    assert sets["run.max_steps"] == "480" and sets["run.eval_interval"] == "12"
    assert sets["model.position_init"] == "sinusoidal" and sets["data.corpus_dir"].endswith("corpus")
    assert sets["run.tensorboard"] == "false" and sets["run.export_final"] == "false"
    cfg = build_config(cal.PRESET, None, cal.run_overrides("run_a", tmp_path)).to_dict()
    assert cfg["model"]["hidden_size"] == 128 and cfg["run"]["eval_interval"] * 40 == 1200


def _fake_run(run_dir, overrides, last_step):
    cfg = build_config(cal.PRESET, None, overrides).to_dict()
    cfg["model"]["vocab_size"] = 5255  # taken from the corpus at run time: not a setting
    run_dir.mkdir(parents=True)
    (run_dir / H.HISTORY_NAME).write_text(json.dumps({H.STEPS: [5, last_step],
                                                      H.META_KEY: {H.META_CONFIG: cfg}}))


def test_only_a_finished_run_with_the_same_settings_is_reused(tmp_path):
    def finished(run_dir, overrides):
        return cal.rs.finished(run_dir, cal.PRESET, overrides)

    wanted = cal.run_overrides("run_c", tmp_path)
    assert finished(tmp_path / "none", wanted) == "no history yet"
    _fake_run(tmp_path / "done", wanted, 480)
    assert finished(tmp_path / "done", wanted) is None
    _fake_run(tmp_path / "short", wanted, 240)
    assert "stopped at step 240 of 480" in finished(tmp_path / "short", wanted)
    other = cal.run_overrides("run_b", tmp_path)  # linear, lr 4e-3, seed 1
    why = finished(tmp_path / "done", other)
    assert "optim.lr" in why and "optim.schedule" in why and "run.seed" in why


def test_histories_are_collected_and_a_missing_one_is_named(tmp_path):
    with pytest.raises(UserError, match="run_a_history.json: history not found"):
        cal.collect_histories(["run_a"], tmp_path)
    (tmp_path / "run_a_history.json").write_text("{}")
    (tmp_path / cal.BERT_DEMO_NAME).write_text("{}")
    found = cal.collect_histories(["run_a"], tmp_path)
    assert [g for _, g, _ in found] == ["short runs"] + ["demo and study"] * 3
    assert found[-2][2] == cal.ROOT / "results" / "training_history.json"


def _row(source, group, series, cut, covered, error=0.01, width=0.1):
    return {"source": source, "group": group, "series": series, "cut": cut,
            "covered": covered, "error": error if covered is not None else None,
            "ci95": [0.5, 0.5 + width] if covered is not None else [None, None]}


def test_pooled_figures_per_group_and_overall():
    rows = [_row("a", "short runs", "eval", 0.5, True, error=0.01),
            _row("a", "short runs", "eval", 0.2, False, error=-0.05),
            _row("a", "short runs", "train", 0.3, None),
            _row("b", "demo and study", "eval", 0.5, True, error=-0.03),
            _row("s", "synthetic", "train", 0.5, True, error=0.02, width=0.3),
            _row("s", "synthetic", "train", 0.1, False)]  # before the 20 % cut: not pooled
    p = cal.group_pooled(rows)
    assert set(p) == {"all", "real", "short runs", "demo and study", "synthetic"}
    assert p["all"]["n_forecasts"] == 4 and p["all"]["coverage_cuts_from_20pct"] == 0.75
    assert p["real"]["n_covered"] == 2 and p["real"]["n_forecasts"] == 3
    assert p["all"]["mae_50pct_eval_points"] == pytest.approx(2.0)
    assert p["all"]["max_abs_error_50pct_eval_points"] == pytest.approx(3.0)
    assert p["synthetic"]["median_width_points"] == pytest.approx(30.0)
    table = cal.source_table(rows, [0.2, 0.3, 0.5])
    a_train = next(t for t in table if t["source"] == "a" and t["series"] == "train")
    assert a_train["cuts"]["30%"] == "— (0/1 forecast)"
    a_eval = next(t for t in table if t["source"] == "a" and t["series"] == "eval")
    assert a_eval["cuts"]["20%"] == "0/1, 5.0" and a_eval["cuts"]["50%"] == "1/1, 1.0"


def test_skip_train_calibrates_the_copies_and_writes_the_json(tmp_path):
    plan = Schedule(4e-3, 40, 480, "linear")
    h = make_scheduled_history(plan, n=96, seed=3, eval_every=12)
    h[H.ELAPSED_S] = [0.5 * (i + 1) for i in range(len(h[H.STEPS]))]
    (tmp_path / "run_b_history.json").write_text(json.dumps(h))
    (tmp_path / cal.BERT_DEMO_NAME).write_text(json.dumps(h))
    command = " ".join(["python", *cal.train_command("run_b", Path("data/demo"),
                                                      Path("runs/calibration"))[1:]])
    (tmp_path / "calibration.json").write_text(json.dumps(  # as left by an earlier full run
        {"runs": {"run_b": {"command": command, "wall_s": 50.0}}}))
    assert cal.main(["--skip-train", "--runs", "run_b", "--out-dir", str(tmp_path),
                     "--synthetic", "1", "--cuts", "0.5", "--n-boot", "10"]) == 0
    out = json.loads((tmp_path / "calibration.json").read_text())
    assert out["runs"]["run_b"]["train_s"] == h[H.ELAPSED_S][-1]
    assert out["runs"]["run_b"]["wall_s"] == 50.0  # kept from the run that trained it
    assert "optim.schedule=linear" in out["runs"]["run_b"]["command"]
    sources = {r["source"] for r in out["rows"]}
    assert {"run_b (linear, lr 4e-3, 480 steps)", "BERT demo (earlier)", "modern demo",
            "study original arm"} <= sources
    done = [r for r in out["rows"] if r["covered"] is not None]
    assert out["pooled"]["all"]["n_forecasts"] == len(done)


def test_bad_cuts_are_refused(tmp_path):
    with pytest.raises(UserError, match="--cuts"):
        cal.main(["--skip-train", "--cuts", "1.5", "--out-dir", str(tmp_path)])


def test_analysis_doc_shows_the_committed_calibration():
    """docs/ANALYSIS.md's tables and headline figures are those of results/calibration/."""
    out = json.loads((cal.ROOT / "results" / "calibration" / "calibration.json").read_text())
    doc = (cal.ROOT / "docs" / "ANALYSIS.md").read_text()
    assert cal.source_markdown(out["source_table"], out["settings"]["cuts"]) in doc
    assert cal.pooled_markdown(out["pooled"]) in doc
    p = out["pooled"]
    assert f"**{p['all']['coverage_cuts_from_20pct']:.1%}**".replace("%", " %") in doc
    assert f"**{p['real']['coverage_cuts_from_20pct']:.1%}**".replace("%", " %") in doc
    assert f"**{p['all']['mae_50pct_eval_points']:.2f} points**" in doc
    # the record names the script where it stood when it ran: under benchmarks/ before studies/
    assert out["command"].replace("benchmarks/", "studies/") in doc
    assert {h["path"] for h in out["histories"]} >= {
        "results/training_history.json", "results/study/history_original.json"}


def test_writing_the_committed_calibration_checks_provenance_first(tmp_path, monkeypatch):
    """Into the repository's results/ only from committed code (checked before any training or
    writing); anywhere else (here tmp_path) no check is made."""
    calls = []

    def refuse(metas, allow_dirty, what, ignore):
        calls.append((dict(metas), what, tuple(ignore)))
        raise UserError("refused")

    monkeypatch.setattr(cal.rs, "check_clean", refuse)
    committed = cal.ROOT / "results" / "calibration"
    before = {p.name: p.stat().st_mtime_ns for p in committed.iterdir()}
    with pytest.raises(UserError, match="refused"):
        cal.main(["--out-dir", str(committed), "--skip-train", "--synthetic", "0"])
    assert calls == [({}, "the committed calibration", ("results",))]
    assert {p.name: p.stat().st_mtime_ns for p in committed.iterdir()} == before
    calls.clear()
    with pytest.raises(UserError, match="run_a_history.json"):  # no check; a missing file
        cal.main(["--out-dir", str(tmp_path), "--skip-train", "--synthetic", "0"])
    assert calls == []


def test_all_runs_train_before_a_copy_changes_a_tracked_file(tmp_path, monkeypatch):
    """A copy into results/ made between two runs would mark the later runs' work tree dirty (it
    did): every run trains, then the provenance check reads the run directories, then copies."""
    events = []

    def fake_train(name, preset, run_dir, overrides, redo):
        events.append(("train", name))
        _fake_run(run_dir, overrides, 480)
        return {"command": name}

    def refuse(metas, allow_dirty, what, ignore):
        events.append(("check", tuple(metas)))
        if metas:
            raise UserError("refused")

    monkeypatch.setattr(cal.rs, "train_run", fake_train)
    monkeypatch.setattr(cal.rs, "check_clean", refuse)
    monkeypatch.setattr(cal.rs, "ensure_corpus", lambda path: None)
    committed = cal.ROOT / "results" / "calibration"
    before = {p.name: p.stat().st_mtime_ns for p in committed.iterdir()}
    with pytest.raises(UserError, match="refused"):
        cal.main(["--out-dir", str(committed), "--runs-dir", str(tmp_path), "--runs", "run_b",
                  "run_c", "--synthetic", "0"])
    assert events == [("check", ()), ("train", "run_b"), ("train", "run_c"),
                      ("check", ("run_b", "run_c"))]
    assert {p.name: p.stat().st_mtime_ns for p in committed.iterdir()} == before
