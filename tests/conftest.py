"""Shared fixtures of the training tests: ONE tiny prepared corpus per test session (worker)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A prepared corpus from the first 150 documents of the demo corpus (a few seconds)."""
    from zhbert.corpus import PrepareOptions, prepare_corpus

    out = tmp_path_factory.mktemp("corpus") / "tiny"
    prepare_corpus("demo", out_dir=out, progress=False,
                   options=PrepareOptions(max_documents=150, min_val_sentences=60))
    return out


@pytest.fixture()
def smoke_args(tiny_corpus, tmp_path):
    """CLI arguments of a smoke run on the tiny corpus in a fresh run dir."""
    run_dir = tmp_path / "run"
    return ["--preset", "smoke", "--set", f"data.corpus_dir={tiny_corpus}",
            "--run-dir", str(run_dir)], run_dir


def _train_cli(args, timeout=180, **kw):
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **kw.pop("env", {})}
    return subprocess.run([sys.executable, str(ROOT / "main_train.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env, **kw)


@pytest.fixture()
def train_cli():
    """``train_cli(args)`` runs main_train.py in a subprocess (offline, one thread)."""
    return _train_cli
