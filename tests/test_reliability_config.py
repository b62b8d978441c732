"""Out-of-range settings and unreadable JSON are one-line errors (issue 25, items 3 and 7)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import main_train
from zhbert.config import SECTIONS, TrainConfig, build_config
from zhbert.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _numeric_fields() -> list[tuple[str, typing.Any]]:
    """``(section.key, annotation)`` of every int, float or list-of-int field of every section."""
    cfg = TrainConfig()
    out = []
    for section in SECTIONS:
        obj = getattr(cfg, section)
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            tp = hints[f.name]
            item = typing.get_args(tp)[0] if typing.get_origin(tp) is list else tp
            if item in (int, float):
                out.append((f"{section}.{f.name}", tp))
    return out


NUMERIC = _numeric_fields()
# Values no numeric setting accepts: no setting here may be negative (zero is valid for several,
# e.g. run.time_budget_s=0 is "no budget", optim.clip_norm=0 "no clipping"; see test_zero...).
BAD_VALUES = {"wrong type": "abc", "NaN": "NaN", "infinity": "Infinity",
              "large negative": "-1000000000000"}


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def test_the_walk_finds_every_numeric_field_and_each_has_a_range():
    from zhbert.config import RANGES, numeric_keys

    keys = [key for key, _ in NUMERIC]
    assert {"model.initializer_range", "data.eval_seed", "optim.eps", "run.milestones",
            "run.time_budget_s"} <= set(keys)
    assert keys == numeric_keys(TrainConfig()) and set(keys) == set(RANGES)


@pytest.mark.parametrize("key", [key for key, _ in NUMERIC])
def test_every_numeric_setting_refuses_bad_values(key):
    for what, bad in BAD_VALUES.items():
        try:
            build_config("smoke", overrides=[f"{key}={bad}"])
        except UserError as exc:
            assert key in str(exc) and "\n" not in str(exc), (what, str(exc))
        else:
            pytest.fail(f"{key}={bad} ({what}) was accepted")


@pytest.mark.parametrize("item", [
    "run.seed=-1", "data.eval_seed=-1", "optim.eps=0", "optim.eps=-1e-8", "optim.eps=NaN",
    "model.initializer_range=-0.02", "model.initializer_range=0", "model.initializer_range=NaN",
    "model.type_vocab_size=0", "optim.lr=Infinity", "optim.weight_decay=Infinity",
    "optim.clip_norm=Infinity", "optim.max_skipped_steps=0", "run.milestones=[10, -5]",
    "model.layer_norm_eps=0", "run.max_steps=1e19", "model.pad_token_id=20000",
])
def test_audited_out_of_range_values_are_refused(item):
    with pytest.raises(UserError, match=item.split("=")[0].replace(".", r"\.")):
        build_config("smoke", overrides=[item])


@pytest.mark.parametrize("item", [
    "run.time_budget_s=0", "optim.clip_norm=0", "optim.weight_decay=0", "optim.warmup_steps=0",
    "optim.total_steps=0", "data.prefetch=0", "run.num_threads=0", "model.local_window=0",
    "model.dropout=0", "optim.beta1=0", "run.seed=0", "data.eval_seed=0", "run.milestones=[]",
])
def test_zero_is_valid_where_it_means_off_or_none(item):
    build_config("smoke", overrides=[item])


def test_a_huge_integer_in_an_override_is_one_error():
    with pytest.raises(UserError, match="run.seed"):
        build_config("smoke", overrides=["run.seed=" + "9" * 5000])


@pytest.mark.parametrize("item", ["run.seed=-1", "optim.eps=NaN", "optim.lr=Infinity",
                                  "model.type_vocab_size=0", "run.milestones=-3"])
def test_dry_run_refuses_out_of_range_values(item, tmp_path):
    with pytest.raises(UserError, match=item.split("=")[0].replace(".", r"\.")):
        main_train.main(["--preset", "smoke", "--dry-run", "--set", item,
                         "--set", f"data.corpus_dir={tmp_path / 'none'}"])


def test_dry_run_out_of_range_is_one_line(tmp_path):
    proc = _run("main_train.py", "--preset", "smoke", "--dry-run", "--set",
                "model.initializer_range=-1", "--set", f"data.corpus_dir={tmp_path / 'none'}")
    _one_line_error(proc, "model.initializer_range")


def _history(path: Path) -> Path:
    n = 30
    path.write_text(json.dumps({"steps": list(range(100, 100 * n + 1, 100)),
                                "mlm_acc": [0.1 + 0.01 * i for i in range(n)]}))
    return path


def test_analyze_negative_seed_is_one_line(tmp_path):
    history = _history(tmp_path / "h.json")
    proc = _run("analyze_100k.py", "--history", str(history), "--seed", "-1", "--n-boot", "5")
    _one_line_error(proc, "--seed")
    assert not (tmp_path / "analysis_result.json").exists()


# ----------------------------------------------------------------------- item 7: JSON limits

UNREADABLE = {
    "deep nesting": ("[" * 100000, "nested too deeply"),
    "5000-digit integer": ('{"optim": {"lr": ' + "1" * 5000 + "}}", "digits"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_unreadable_config_file_is_one_line(kind, tmp_path):
    text, needle = UNREADABLE[kind]
    config = tmp_path / "c.json"
    config.write_text(text)
    proc = _run("main_train.py", "--preset", "smoke", "--config", str(config), "--run-dir",
                str(tmp_path / "run"), "--set", f"data.corpus_dir={tmp_path / 'none'}")
    _one_line_error(proc, str(config), needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
def test_unreadable_history_is_one_line(kind, tmp_path):
    text, needle = UNREADABLE[kind]
    if kind != "deep nesting":
        text = '{"steps": [' + "1" * 5000 + '], "mlm_acc": [0.1]}'
    history = tmp_path / "h.json"
    history.write_text(text)
    proc = _run("analyze_100k.py", "--history", str(history), "--n-boot", "5")
    _one_line_error(proc, str(history), needle)
    assert not (tmp_path / "analysis_result.json").exists()
