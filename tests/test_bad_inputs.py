"""Bad inputs from an audit: each gets one line naming the problem, a non-zero exit, no traceback,
and nothing existing is lost (issue 14, items 4, 5 and 8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def _history(tmp_path: Path, name: str = "h.json", n: int = 30, **over) -> Path:
    steps = list(range(100, 100 * n + 1, 100))
    data = {"steps": steps, "mlm_acc": [0.1 + 0.01 * i for i in range(n)],
            "loss": [3.0 - 0.01 * i for i in range(n)], "lr": [1e-4] * n, **over}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# ----------------------------------------------------------------------- item 4: --overwrite


def test_overwrite_refuses_a_directory_that_is_not_a_corpus(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    proc = _run("examples/prepare_dataset.py", "--quiet", "--max-documents", "20",
                "--out-dir", str(out), "--overwrite")
    _one_line_error(proc, "not a prepared corpus")
    assert (out / "notes.txt").read_text() == "keep me"


def test_overwrite_of_the_current_directory_is_one_error(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    proc = _run(str(ROOT / "examples" / "prepare_dataset.py"), "--quiet", "--max-documents",
                "20", "--out-dir", ".", "--overwrite", cwd=tmp_path)
    _one_line_error(proc, "not a prepared corpus")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


# ----------------------------------------------------------------------- item 5: analysis


@pytest.mark.parametrize("front", ["analyze_100k.py", "visualize_results.py",
                                   "examples/load_and_analyze.py"])
def test_a_number_where_a_list_is_expected(tmp_path, front):
    path = _history(tmp_path, mlm_acc=0.5)
    extra = ["--out-dir", str(tmp_path / "figs")] if front == "visualize_results.py" else []
    proc = _run(front, "--history", str(path), *extra)
    _one_line_error(proc, "'mlm_acc' must be a list")


def test_steps_near_1e18_draw_or_give_one_line(tmp_path):
    """Steps spread up to 1e18 draw every figure; steps 1e18 + 100 i, which float64 cannot tell
    apart, are one error naming the steps (no traceback, no output folder)."""
    from zhbert.plots import FIGURES, NEEDS

    spread = _history(tmp_path, "spread.json", steps=[10**18 // 30 * (i + 1) for i in range(30)])
    proc = _run("visualize_results.py", "--history", str(spread), "--out-dir",
                str(tmp_path / "figs"))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.stem for p in (tmp_path / "figs").glob("*.png")) == sorted(
        set(FIGURES) - set(NEEDS))  # no backtest nor downstream scores: neither figure
    close = _history(tmp_path, "close.json", steps=[10**18 + 100 * i for i in range(30)])
    proc = _run("visualize_results.py", "--history", str(close), "--out-dir",
                str(tmp_path / "figs2"))
    _one_line_error(proc, str(close), "steps")
    assert not (tmp_path / "figs2").exists()


def test_negative_steps(tmp_path):
    path = _history(tmp_path, steps=list(range(-1000, 2000, 100)))
    _one_line_error(_run("analyze_100k.py", "--history", str(path)), "negative")


def test_output_that_is_a_directory_keeps_it(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    proc = _run("analyze_100k.py", "--history", str(_history(tmp_path)), "--n-boot", "10",
                "--output", str(out))
    _one_line_error(proc, str(out), "is a directory")
    assert (out / "keep.txt").read_text() == "x"


def test_load_and_analyze_negative_n_boot(tmp_path):
    proc = _run("examples/load_and_analyze.py", "--history", str(_history(tmp_path)),
                "--n-boot", "-1")
    _one_line_error(proc, "--n-boot")


def test_load_and_analyze_n_boot_0_forecasts_without_an_interval(tmp_path, capsys):
    """Issue 25 item 9: --n-boot 0 means no bootstrap (as in analyze_100k.py): the forecast is
    printed without an interval instead of a TypeError on the missing one."""
    from helpers_scripts import load_script

    from zhbert.errors import run_cli

    script = load_script("examples/load_and_analyze.py")
    with pytest.raises(SystemExit) as exc:
        run_cli(script.main, ["--history", str(_history(tmp_path)), "--n-boot", "0"])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    assert "no 95% interval with --n-boot 0, no bootstrap" in out


def test_full_disk_is_one_error(tmp_path, monkeypatch):
    """An ENOSPC while writing becomes a UserError naming the file; no temp file is left."""
    import errno

    from zhbert import io_utils
    from zhbert.errors import UserError

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    real = os.fdopen
    monkeypatch.setattr(io_utils.os, "fdopen", lambda fd, mode: Full(real(fd, mode)))
    with pytest.raises(UserError, match=r"cannot write .*a\.json: No space left on device"):
        io_utils.atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_png_refuses_a_garbage_event_file(tmp_path, capsys):
    """Issue 25 item 11: random bytes named like an event file are one error naming the file,
    and no PNG is written; a real event file whose last record is cut short still draws."""
    import numpy as np
    from helpers_scripts import load_script
    from torch.utils.tensorboard import SummaryWriter

    from zhbert.errors import run_cli

    script = load_script("examples/tensorboard_png.py")
    bad = tmp_path / "bad"
    bad.mkdir()
    garbage = bad / "events.out.tfevents.x"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    png = tmp_path / "tb.png"
    with pytest.raises(SystemExit) as exc:
        run_cli(script.main, ["--logdir", str(bad), "--out", str(png)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith(f"error: {garbage}: not a TensorBoard event file") and err.count("\n") == 1
    assert not png.exists() and list(tmp_path.glob("*.png")) == []
    good = tmp_path / "good"
    with SummaryWriter(str(good)) as writer:
        for step in range(20):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step)
    event = next(good.glob("events.out.tfevents.*"))
    event.write_bytes(event.read_bytes()[:-5])  # a run still writing its last record
    assert script.main(["--logdir", str(good), "--out", str(png), "--dpi", "30"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


# ----------------------------------------------------------------------- item 8: file vs dir


def test_history_that_is_a_directory_is_called_a_directory(tmp_path):
    proc = _run("analyze_100k.py", "--history", str(tmp_path))  # read as a TensorBoard run
    _one_line_error(proc, "is a directory", "holds no event files", "give the file")


def test_corpus_dir_that_is_a_file_is_called_a_file(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("x")
    proc = _run("main_train.py", "--preset", "smoke", "--set", f"data.corpus_dir={f}",
                "--run-dir", str(tmp_path / "run"))
    _one_line_error(proc, "is a file", "corpus directory")


def test_input_that_is_a_directory_is_called_a_directory(tmp_path):
    proc = _run("examples/prepare_dataset.py", "--quiet", "--source", "text", "--input",
                str(tmp_path), "--out-dir", str(tmp_path / "out"))
    _one_line_error(proc, "is a directory")
