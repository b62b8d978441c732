"""Repository-level checks: layout, pinned requirements, side-effect-free imports."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROMISED = [
    "main_train.py", "analyze_100k.py", "visualize_results.py", "examples", "benchmarks", "studies",
    "docs", "results", "data", "checkpoints", "requirements.txt", "README.md", "CHANGELOG.md",
    "LICENSE",
]


@pytest.mark.parametrize("name", PROMISED)
def test_promised_top_level_exists(name):
    assert (ROOT / name).exists(), f"{name} is promised at the top level"


@pytest.mark.parametrize("req", ["requirements.txt", "requirements-dev.txt",
                                 "requirements-nodeps.txt"])
def test_requirements_are_pinned_exactly(req):
    lines = [ln.split("#")[0].strip() for ln in (ROOT / req).read_text().splitlines()]
    specs = [ln for ln in lines if ln and not ln.startswith("-r")]
    assert specs, f"{req} lists no packages"
    for spec in specs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9.+]*", spec), spec


def test_torch_pin_is_the_local_cpu_build():
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text().splitlines()


def test_license_is_mit():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_changelog_follows_keep_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text and "## [Unreleased]" in text


def test_importing_every_module_prints_nothing():
    """Importing the package and all submodules has no visible side effects."""
    code = (
        "import importlib, pkgutil, zhbert\n"
        "for m in pkgutil.walk_packages(zhbert.__path__, 'zhbert.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""


def test_one_owner_for_the_ignore_label_and_the_seed_streams():
    """IGNORE_INDEX lives in zhbert.layout; the seed streams are named and distinct."""
    from zhbert import data, layout, masking

    assert masking.IGNORE_INDEX is layout.IGNORE_INDEX
    torch_code = [p for p in (ROOT / "zhbert").rglob("*.py")
                  if p.name not in ("layout.py", "baselines.py")]
    offenders = [str(p) for p in torch_code
                 if re.search(r"[!=]= -100\b", p.read_text(encoding="utf-8"))]
    assert offenders == []
    streams = {k: v for k, v in vars(data).items() if k.startswith("STREAM_")}
    assert len(streams) == 6 and len(set(streams.values())) == len(streams)
    assert not hasattr(masking, "fixed_eval_masks")  # test-only code left the API


def test_one_reader_for_json_files():
    """JSON files are read through zhbert.io_utils.read_json (one-line errors), not re-written
    per module: no ``json.loads(<path>.read_text(...))`` elsewhere in the package or scripts."""
    code = [p for p in ROOT.glob("*.py")] + [
        p for d in ("zhbert", "examples") for p in (ROOT / d).rglob("*.py")]
    pattern = re.compile(r"json\.loads?\([^)]*(read_text|open\()")
    offenders = [str(p.relative_to(ROOT)) for p in code if p.name != "io_utils.py"
                 and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


#: an edit of the interpreter's module path; the one allowed in a script puts a folder first that
#: is ``UP`` above the file (``ROOT``, when the file defines it so, or spelled out)
PATH_EDIT = re.compile(r"\bsys\.path\.(\w+)\((.*)\)")
UP = r"Path\(__file__\)\.resolve\(\)(?P<up>(?:\.parent)+|\.parents\[\d\])"
ROOT_EDIT = re.compile(rf"0, str\((ROOT|{UP})\)")
ROOT_LINE = re.compile(rf"^ROOT = {UP}$", re.M)


def _levels(up: str) -> int:
    """Folders climbed from a file: ``.parent`` 1, ``.parent.parent`` 2, ``.parents[1]`` 2."""
    return up.count(".parent") if "[" not in up else int(up[len(".parents["):-1]) + 1


def path_edits(path: Path) -> list[str]:
    """The edits of the module path in ``path`` other than putting the repository root first."""
    text = path.read_text(encoding="utf-8")
    root = ROOT_LINE.search(text)
    bad = []
    for m in PATH_EDIT.finditer(text):
        arg = ROOT_EDIT.fullmatch(m.group(2)) if m.group(1) == "insert" else None
        up = None if arg is None else arg.group("up") or (root and root.group("up"))
        if up is None or path.parents[_levels(up) - 1] != ROOT:
            bad.append(f"{path.relative_to(ROOT)}: {m.group(0)}")
    return bad


def test_scripts_put_only_the_repository_root_on_the_module_path():
    """Helpers shared by scripts live in the package (zhbert.bench) or in ``studies``, imported
    from the root: no script or test puts a folder of siblings on the path, the package nothing."""
    folders = ("zhbert", "examples", "benchmarks", "studies", "tests")
    code = [*ROOT.glob("*.py"), *(p for d in folders for p in (ROOT / d).rglob("*.py"))]
    code = [p for p in code if p != Path(__file__).resolve()]  # its own samples below
    assert len(code) > 50
    assert [bad for p in code for bad in path_edits(p)] == []
    assert [p for p in (ROOT / "zhbert").rglob("*.py")
            if PATH_EDIT.search(p.read_text(encoding="utf-8"))] == []


def test_a_sibling_folder_on_the_module_path_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "benchmarks").mkdir()
    script = tmp_path / "benchmarks" / "x.py"
    script.write_text("ROOT = Path(__file__).resolve().parents[1]\n"
                      "sys.path.insert(0, str(ROOT))\n"
                      "sys.path.insert(0, str(Path(__file__).resolve().parent.parent))\n"
                      "sys.path.insert(0, str(ROOT / 'benchmarks'))\n"
                      "sys.path.insert(0, str(Path(__file__).resolve().parent))\n"
                      "sys.path.append('.')\n", encoding="utf-8")
    assert path_edits(script) == [
        "benchmarks/x.py: sys.path.insert(0, str(ROOT / 'benchmarks'))",
        "benchmarks/x.py: sys.path.insert(0, str(Path(__file__).resolve().parent))",
        "benchmarks/x.py: sys.path.append('.')"]


def test_read_json_errors_name_the_problem(tmp_path):
    from zhbert.errors import UserError
    from zhbert.io_utils import read_json

    f = tmp_path / "a.json"
    with pytest.raises(UserError, match="file not found .*; run X first"):
        read_json(f, "a thing", hint="run X first")
    f.write_text("[1, 2]", encoding="utf-8")
    assert read_json(f, "a thing") == [1, 2]
    with pytest.raises(UserError, match="expected a JSON object"):
        read_json(f, "a thing", obj=True)
    with pytest.raises(UserError, match="is a directory"):
        read_json(tmp_path, "a thing")


def test_docstring_examples_hold():
    """Every ``>>>`` example in the package's docstrings runs and prints what it shows."""
    import doctest
    import importlib

    failed = []
    for path in sorted((ROOT / "zhbert").rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
        if result.failed:
            failed.append(name)
    assert not failed, f"doctest failures in {failed}"
