"""The `make demo` path end to end, with a reduced budget (smoke preset, a slice of the corpus)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers_scripts import load_script
from zhbert.errors import UserError
from zhbert.provenance import check_clean, git_state

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {"training_curves.png", "correlation_analysis.png", "loss_analysis.png",
           "learning_curve_fit.png", "phases.png"}


def _run_demo_module():
    return load_script("examples/run_demo.py")


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "examples/run_demo.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _smoke_args(tmp_path: Path) -> list[str]:
    return ["--preset", "smoke", "--max-documents", "400", "--corpus", str(tmp_path / "corpus"),
            "--run-dir", str(tmp_path / "run")]


def _tracked_state() -> dict[str, int]:
    """Modification times of the committed reference files and README (must not change)."""
    paths = [ROOT / "README.md", *sorted((ROOT / "results").iterdir())]
    return {str(p): p.stat().st_mtime_ns for p in paths}


def test_demo_runs_end_to_end_reuses_and_never_touches_the_repository(tmp_path):
    before = _tracked_state()
    first = _demo(*_smoke_args(tmp_path))
    assert first.returncode == 0, first.stderr[-2000:]
    out = tmp_path / "run" / "results"  # the default output folder is inside the run
    assert {p.name for p in out.glob("*.png")} >= FIGURES
    history = json.loads((tmp_path / "run" / "training_history.json").read_text())
    assert len(history["eval_steps"]) >= 2 and history["steps"][-1] > 0
    # provenance and the held-out set's real size are recorded
    assert "git_dirty" in history["meta"] and history["meta"]["git_commit"]
    ev = history["meta"]["eval"]
    assert ev["capped"] is (ev["masked_tokens"] < ev["min_masked_requested"])
    assert ev["stderr_max"] == pytest.approx((0.25 / ev["masked_tokens"]) ** 0.5, rel=1e-4)
    if ev["capped"]:
        assert "held-out set holds only" in (tmp_path / "run" / "train.log").read_text()
    analysis = json.loads((out / "analysis_result.json").read_text())
    assert analysis["data_points"] == analysis["series"]["n"] > 0
    assert analysis["backtest"]["rows"]  # the forecast backtest behind backtest.png
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    summary = json.loads((out / "demo_run.json").read_text())
    assert set(summary["steps_s"]) == {"prepare", "train", "analyze", "figures", "fill-mask",
                                       "probes"}
    probes = json.loads((out / "cloze_probes.json").read_text())
    assert summary["cloze_probes"]["n"] == probes["n"] >= 20
    assert summary["cloze_probes"]["top1_hits"] == sum(r["hit"] for r in probes["probes"])
    assert summary["reused"] == []
    hist = json.loads((tmp_path / "run" / "training_history.json").read_text())
    assert summary["held_out"]["mlm_acc"] == hist["eval_mlm_acc"][-1]
    assert summary["held_out"]["step"] == hist["eval_steps"][-1] == hist["steps"][-1]
    assert summary["held_out"]["baselines"] == hist["meta"]["baselines"]["acc"]
    assert summary["code"]["git_commit"] == hist["meta"]["git_commit"]
    assert "今天天气很" in first.stdout  # the quick start printed its sentences

    # A second run skips the finished preparation and training (their recorded times count).
    second = _demo(*_smoke_args(tmp_path))
    assert second.returncode == 0, second.stderr[-2000:]
    assert "reusing" in second.stdout
    summary2 = json.loads((out / "demo_run.json").read_text())
    assert summary2["reused"] == ["prepare", "train"]
    assert summary2["steps_s"]["train"] == history["elapsed_s"][-1]

    # Other settings than the finished run's: refused with the differing key, nothing retrained.
    third = _demo(*_smoke_args(tmp_path), "--set", "run.max_steps=30")
    assert third.returncode == 2 and "Traceback" not in third.stderr
    assert "run.max_steps: 20 -> 30" in third.stderr and "--redo" in third.stderr
    assert json.loads((tmp_path / "run" / "training_history.json").read_text()) == history

    # The explicit reference update copies the run and rewrites the README table it is given.
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- demo-results:start -->\nold\n<!-- demo-results:end -->\ntail\n",
                      encoding="utf-8")
    ref = tmp_path / "reference"
    fourth = _demo(*_smoke_args(tmp_path), "--update-reference", "--reference", str(ref),
                   "--readme", str(readme), "--allow-dirty")
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    assert {p.name for p in ref.iterdir()} >= FIGURES | {"training_history.json",
                                                         "analysis_result.json", "demo_run.json"}
    text = readme.read_text(encoding="utf-8")
    table = _run_demo_module().results_table(ref)
    assert table in text and text.endswith("tail\n") and "old" not in text
    assert _tracked_state() == before


def test_demo_bad_inputs_are_one_line_errors(tmp_path):
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--out-dir", str(a_file)], "is a file, not a directory"),
        (["--run-dir", str(a_file)], "is a file, not a directory"),
        (["--update-readme", "--reference", str(empty), "--readme", str(a_file)],
         "make reference"),
        (["--update-readme", "--reference", str(a_file)], "is a file, not a directory"),
        (["--set", "model.position_init=foo", "--run-dir", str(tmp_path / "r")], "position_init"),
        (["--max-documents", "0"], "--max-documents"),
    ]
    for args, message in cases:
        proc = _demo(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 or "usage:" in proc.stderr
    assert not (tmp_path / "r").exists()


def test_reference_from_uncommitted_code_is_refused(tmp_path, capsys):
    for meta in ({"git_commit": "abc", "git_dirty": True}, {"git_commit": "abc"}):
        with pytest.raises(UserError, match="refusing to update the reference"):
            check_clean({"demo run": meta}, allow_dirty=False)
    # a clean history from a dirty work tree is refused too, naming the changed file
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "code.py").write_text("a = 1\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "code.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    clean = {"run": {"git_commit": "abc", "git_dirty": False}}
    check_clean(clean, allow_dirty=False, root=tmp_path)  # clean: no error
    (tmp_path / "code.py").write_text("a = 2\n")
    with pytest.raises(UserError, match="uncommitted changes: code.py"):
        check_clean(clean, allow_dirty=False, what="the calibration", root=tmp_path)
    check_clean(clean, allow_dirty=True, root=tmp_path)  # allowed, but loudly
    assert "WARNING: the reference results from uncommitted code" in capsys.readouterr().err


def test_git_state_sees_changes_to_tracked_files(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    assert git_state(tmp_path).commit is None and git_state(tmp_path).dirty is None
    git("init", "-q")
    for name in ("a.py", "README.md"):
        (tmp_path / name).write_text("1")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    state = git_state(tmp_path)
    assert state.commit and state.dirty is False
    (tmp_path / "untracked.txt").write_text("new")  # untracked files do not count
    assert git_state(tmp_path).dirty is False
    (tmp_path / "README.md").write_text("2")
    assert git_state(tmp_path).changed == ("README.md",)
    assert git_state(tmp_path, ignore=("README.md",)).dirty is False


def test_make_demo_passes_settings_and_never_writes_results():
    proc = subprocess.run(["make", "-n", "demo-run", "PYTHON=python",
                           'SET=run.max_steps=3000 optim.lr=5e-4', "RUN=runs/long"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    cmd = proc.stdout.split()
    assert "--set run.max_steps=3000 --set optim.lr=5e-4" in " ".join(cmd)
    assert cmd[cmd.index("--run-dir") + 1] == "runs/long"
    assert "--update-reference" not in cmd and "results" not in " ".join(cmd)
    ref = subprocess.run(["make", "-n", "reference", "PYTHON=python"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "--update-reference" in ref


# ----------------------------------------------------------------------------- the demo's preset


def _choice(precision):
    from zhbert.training.precision import PrecisionChoice

    return lambda cfg, device: PrecisionChoice(precision, f"mocked {precision}", "auto")


def test_auto_preset_follows_the_precision_decision(capsys):
    demo = _run_demo_module()
    preset, record = demo.choose_demo_preset([], choose=_choice("fp32"))
    assert preset == "demo_fp32" and record == {"preset": "demo_fp32", "precision": "fp32",
                                                "reason": "mocked fp32"}
    assert demo.choose_demo_preset([], choose=_choice("bf16"))[0] == "demo"
    assert "demo_fp32: precision fp32" in capsys.readouterr().out
    # asking for fp32 picks the fp32 recipe on any machine (no probe involved)
    assert demo.choose_demo_preset(["run.precision=fp32"])[0] == "demo_fp32"


def test_auto_preset_on_a_cpu_without_native_bf16_is_demo_fp32(monkeypatch):
    from zhbert.training import precision as P

    monkeypatch.setattr(P, "cpu_native_bf16", lambda: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    args = _run_demo_module().parse_args(["--corpus", "data/demo"])
    assert args.preset == "demo_fp32" and args.run_dir == Path("runs/demo")
    assert "without native bf16" in args.preset_choice["reason"]


def test_both_demo_presets_end_inside_the_budget():
    from zhbert.config import DEMO_BUDGET_S, get_preset

    for name in ("demo", "demo_fp32"):
        run = get_preset(name).run
        assert run.time_budget_s == DEMO_BUDGET_S and run.max_steps >= 2000
    fp32, bf16 = get_preset("demo_fp32"), get_preset("demo")
    assert fp32.model == bf16.model  # one architecture: the export and probes do not change
