"""Import one of the repository's scripts (examples/, benchmarks/, studies/) as a module, for its
functions."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(relative: str) -> ModuleType:
    """``load_script("examples/run_demo.py")``: the script as a module (its ``main`` not run).

    The module is registered in ``sys.modules`` while it executes: a dataclass defined in it looks
    its module up there.
    """
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
