"""What importing a module loads, checked in a fresh interpreter (pytest itself has loaded the
analysis stack by the time a test runs), and the import contracts of pyproject.toml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the statistics stack :mod:`zhbert.analysis` loads (and the analysis itself)
STATISTICS = ("scipy", "pandas", "statsmodels", "pymannkendall", "ruptures", "zhbert.analysis")


def loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """The modules of ``watched`` in ``sys.modules`` after running ``code`` in a new process
    started from the repository root."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {watched!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_the_trainer_does_not_load_the_statistics_stack():
    assert loaded_after("import zhbert.training.loop", STATISTICS) == []


def _monitor_code(forecast: bool) -> str:
    """Build a Monitor on rank 0 with ``run.forecast`` = ``forecast`` (TensorBoard off)."""
    return (
        "from types import SimpleNamespace as NS\n"
        "from zhbert.training.monitor import Monitor\n"
        f"cfg = NS(run=NS(forecast={forecast}, tensorboard=False))\n"
        "setup = NS(dist=NS(is_main=True), cfg=cfg, run_dir=None)\n"
        "Monitor(setup, NS(step=0, elapsed=lambda: 0.0))"
    )


def test_the_monitor_loads_the_forecast_only_when_it_is_on():
    assert loaded_after(_monitor_code(False), STATISTICS) == []
    assert loaded_after(_monitor_code(True), STATISTICS) == list(STATISTICS)


def test_the_config_does_not_load_torch():
    """Configs are read, validated and saved without torch: the model contract
    (``zhbert.model_config``) is torch-free."""
    assert loaded_after("import zhbert.config", ("torch",)) == []
    assert loaded_after("import zhbert.model_config", ("torch",)) == []


def test_every_architecture_has_a_model():
    from zhbert.model_config import ARCHITECTURES
    from zhbert.models import MODEL_CLASSES

    assert tuple(MODEL_CLASSES) == ARCHITECTURES


def _lint_imports() -> str | None:
    """import-linter's ``lint-imports`` beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "lint-imports"
    return str(beside) if beside.is_file() else shutil.which("lint-imports")


def test_the_import_contracts_hold():
    """``lint-imports`` as ``make lint`` runs it: no cycles, the layers of pyproject.toml."""
    exe = _lint_imports()
    if exe is None:
        pytest.skip("lint-imports is missing: `make install` installs import-linter "
                    "(requirements-dev.txt)")
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
