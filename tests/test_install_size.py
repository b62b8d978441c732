"""benchmarks/install_size.py and benchmarks/pypi_index.py on a fake index (no network).

The fake index answers like PyPI's PEP 691 JSON pages and PEP 658 metadata files, from small
dictionaries; one project has no metadata file, so its wheel is read with byte ranges.
"""

from __future__ import annotations

import io
import json
import random
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.helpers_scripts import load_script
from zhbert.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
size_mod = load_script("benchmarks/install_size.py")
index_mod = sys.modules["pypi_index"]
INDEX = "https://index.test/simple"
LINUX = index_mod.Target((3, 11, 0), "x86_64", (2, 35))


def _file(name: str, size: int, requires_python: str | None = None, yanked: bool = False) -> dict:
    return {"filename": name, "url": f"https://files.test/{name}", "size": size,
            "requires-python": requires_python, "yanked": yanked, "hashes": {}}


def _metadata(name: str, version: str, requires: list[str]) -> bytes:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    return ("\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n\n").encode()


def _wheel_bytes(name: str, version: str, requires: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        # incompressible, so the wheel is far larger than the few ranges that read its METADATA
        wheel.writestr(f"{name}/data.bin", random.Random(0).randbytes(300_000))
        wheel.writestr(f"{name}-{version}.dist-info/METADATA", _metadata(name, version, requires))
    return buffer.getvalue()


class FakeIndex:
    """``fetch(url, span=None)`` over projects {name: [(file dict, requires or None)]}.

    ``requires=None`` means no PEP 658 file: the wheel's bytes are served for byte ranges
    instead. Every request is recorded.
    """

    def __init__(self, projects: dict[str, list[tuple[dict, list[str] | None]]]):
        self.pages, self.blobs, self.requests = {}, {}, []
        for project, files in projects.items():
            for info, requires in files:
                name, version = info["filename"].split("-")[:2]
                if requires is not None:
                    self.blobs[info["url"] + ".metadata"] = _metadata(name, version, requires)
                else:
                    self.blobs[info["url"]] = _wheel_bytes(name, version, ["hidden-dep"])
                    info["size"] = len(self.blobs[info["url"]])
            self.pages[f"{INDEX}/{project}/"] = json.dumps(
                {"name": project, "files": [f for f, _ in files]}).encode()

    def __call__(self, url: str, span: tuple[int, int] | None = None) -> bytes:
        self.requests.append((url, span))
        data = self.pages.get(url, self.blobs.get(url))
        if data is None:
            raise index_mod.NotFound(f"{url}: HTTP 404")
        return data if span is None else data[span[0]:span[1] + 1]


ANY = "py3-none-any.whl"
M228 = "cp311-cp311-manylinux_2_28_x86_64.whl"
M217 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
MAC = "cp311-cp311-macosx_14_0_arm64.whl"
ALPHA = [_file(f"alpha-1.0-{ANY}", 10), _file(f"alpha-2.0-{M217}", 21),
         _file(f"alpha-2.0-{M228}", 22), _file(f"alpha-2.0-{MAC}", 23),
         _file(f"alpha-3.0-{MAC}", 30), _file(f"alpha-4.0rc1-{ANY}", 40),
         _file("alpha-2.0.tar.gz", 5)]


def _choose(files, spec="", target=LINUX):
    found = index_mod.choose_file(files, SpecifierSet(spec), target, index_mod.tag_ranks(target))
    return None if found is None else (str(found[0]), found[1]["filename"])


def test_wheel_choice_follows_the_platform_and_the_specifier():
    # 3.0 has only a macOS wheel and 4.0rc1 is a pre-release: 2.0, newest manylinux tag first
    assert _choose(ALPHA) == ("2.0", f"alpha-2.0-{M228}")
    old_glibc = index_mod.Target((3, 11, 0), "x86_64", (2, 17))
    assert _choose(ALPHA, target=old_glibc) == ("2.0", f"alpha-2.0-{M217}")
    assert _choose(ALPHA, "<2") == ("1.0", f"alpha-1.0-{ANY}")
    assert _choose(ALPHA, "==4.0rc1") == ("4.0rc1", f"alpha-4.0rc1-{ANY}")
    assert _choose(ALPHA, ">5") is None
    # another Python: the cp311 wheels do not apply, the source distribution does
    py312 = index_mod.Target((3, 12, 0), "x86_64", (2, 35))
    assert _choose(ALPHA, "==2.0", target=py312) == ("2.0", "alpha-2.0.tar.gz")


def test_another_architecture_skips_the_x86_64_wheels():
    arm = index_mod.Target((3, 11, 0), "aarch64", (2, 35))
    assert _choose(ALPHA, target=arm) == ("2.0", "alpha-2.0.tar.gz")
    assert _choose([f for f in ALPHA if not f["filename"].endswith(".gz")], target=arm) == \
        ("1.0", f"alpha-1.0-{ANY}")


def test_requires_python_yanked_and_newer_source_distributions():
    files = [_file(f"beta-1.0-{ANY}", 1), _file(f"beta-2.0-{ANY}", 2, requires_python=">=3.12"),
             _file(f"beta-1.5-{ANY}", 3, yanked=True), _file(f"beta-1.2-{ANY}", 4, ">= '2.7'")]
    assert _choose(files) == ("1.2", f"beta-1.2-{ANY}")  # an unreadable requires-python is kept
    assert _choose(files, "==1.5") == ("1.5", f"beta-1.5-{ANY}")  # yanked only when pinned
    # pip takes the newest version even when it has only a source distribution
    assert _choose(files + [_file("beta-1.9.tar.gz", 9)]) == ("1.9", "beta-1.9.tar.gz")


def test_markers_are_evaluated_for_the_target_with_extras():
    requires = ["a; extra == 'x'", "b; python_version < '3.10'", "c; platform_system == 'Linux'",
                "d; sys_platform == 'win32'", "e", "f; extra == 'y' and platform_machine == 'x86_64'"]
    names = lambda extras: [r.name for r in index_mod.needed(requires, LINUX, extras)]  # noqa: E731
    assert names([]) == ["c", "e"]
    assert names(["x"]) == ["a", "c", "e"]
    assert names(["x", "y"]) == ["a", "c", "e", "f"]
    arm = index_mod.Target((3, 11, 0), "aarch64", (2, 35))
    assert [r.name for r in index_mod.needed(requires, arm, ["y"])] == ["c", "e"]
    old = index_mod.Target((3, 9, 0), "x86_64", (2, 35))
    assert [r.name for r in index_mod.needed(requires, old, [])] == ["b", "c", "e"]
    with pytest.raises(UserError, match="unreadable requirement"):
        index_mod.needed(["??"], LINUX, [])


def _projects():
    """A torch-like package with CUDA libraries behind a Linux marker and an extras kit."""
    return {
        "gpu": [(_file(f"gpu-1.0-{M228}", 1000), ["kit[one]==1.0; platform_system == 'Linux'",
                                                  "nvidia-lib; platform_system == 'Linux'",
                                                  "shared>=1"])],
        "kit": [(_file(f"kit-1.0-{ANY}", 1), ["nvidia-one; extra == 'one'",
                                              "nvidia-two; extra == 'two'"])],
        "nvidia-one": [(_file(f"nvidia_one-1.0-{ANY}", 300), [])],
        "nvidia-two": [(_file(f"nvidia_two-1.0-{ANY}", 7000), [])],
        "nvidia-lib": [(_file(f"nvidia_lib-2.0-{ANY}", 0), None)],  # no PEP 658 file
        "hidden-dep": [(_file(f"hidden_dep-1.0-{ANY}", 2), [])],
        "lib": [(_file(f"lib-1.0-{ANY}", 10), ["shared"])],
        "other": [(_file(f"other-1.0-{ANY}", 20), ["shared<3"])],
        "shared": [(_file(f"shared-{v}-{ANY}", v * 100), []) for v in (1, 2, 3)],
        "plain": [(_file("plain-0.1.tar.gz", 50), [])],
    }


def _resolve(roots, fetch, **kw):
    kw.setdefault("fallback", lambda name, version: None)
    return {p.name: p for p in size_mod.resolve([Requirement(r) for r in roots], LINUX, fetch,
                                                INDEX, **kw)}


def test_resolver_follows_markers_extras_and_reads_wheels_without_metadata():
    fetch = FakeIndex(_projects())
    got = _resolve(["gpu==1.0", "plain"], fetch)
    assert sorted(got) == ["gpu", "hidden-dep", "kit", "nvidia-lib", "nvidia-one", "plain",
                           "shared"]  # not nvidia-two: only kit[one] is asked for
    assert got["shared"].version == "3"  # unpinned: the newest
    assert got["kit"].extras == {"one"}
    assert got["plain"].requires is None  # a source distribution with no installed copy
    # the wheel without a metadata file was read in byte ranges, never whole
    wheel_url = "https://files.test/nvidia_lib-2.0-py3-none-any.whl"
    spans = [span for url, span in fetch.requests if url == wheel_url]
    assert spans and all(span is not None for span in spans)
    assert sum(b - a + 1 for a, b in spans) < len(fetch.blobs[wheel_url])
    t = size_mod.totals(list(got.values()))
    assert t["total_bytes"] == 1000 + 1 + len(fetch.blobs[wheel_url]) + 300 + 2 + 50 + 300
    assert t["torch_cuda_bytes"] == len(fetch.blobs[wheel_url]) + 300  # nvidia-*; "gpu" is not torch
    assert t["sdists"] == ["plain"] and t["unknown_dependencies"] == ["plain"]


def test_resolver_adds_extras_asked_later_and_restarts_on_a_conflict():
    projects = _projects()
    projects["late"] = [(_file(f"late-1.0-{ANY}", 3), ["kit[two]"])]
    got = _resolve(["lib", "other==1.0", "kit==1.0", "late"], FakeIndex(projects))
    # lib took shared 3 first; other's shared<3 forced a restart with that known
    assert got["shared"].version == "2"
    assert got["kit"].extras == {"two"} and "nvidia-two" in got and "nvidia-one" not in got
    projects["stuck"] = [(_file(f"stuck-1.0-{ANY}", 3), ["shared>=3"])]
    with pytest.raises(UserError, match=r"no file of shared<3,>=3 installs"):
        _resolve(["other==1.0", "stuck"], FakeIndex(projects))
    with pytest.raises(UserError, match="no file of lib>5"):
        _resolve(["lib>5"], FakeIndex(projects))


def test_a_dependency_cycle_expands_each_package_once(monkeypatch):
    projects = {"a": [(_file(f"a-1.0-{ANY}", 1), ["b"])], "b": [(_file(f"b-1.0-{ANY}", 2), ["a"])]}
    expanded = []

    def counting_needed(requires, target, extras):
        expanded.append(list(requires))
        if len(expanded) > 10:
            raise AssertionError("the resolver keeps re-expanding packages")
        return index_mod.needed(requires, target, extras)

    monkeypatch.setattr(size_mod, "needed", counting_needed)
    assert sorted(_resolve(["a"], FakeIndex(projects))) == ["a", "b"]
    assert expanded == [["b"], ["a"]]


def test_torch_and_its_cuda_part_and_a_local_cpu_wheel(tmp_path):
    projects = {
        "torch": [(_file(f"torch-2.0-{M228}", 5000), ["nvidia-cublas; platform_system == 'Linux'",
                                                      "triton==3.0; platform_system == 'Linux'",
                                                      "cuda-bindings", "sympy"])],
        "nvidia-cublas": [(_file(f"nvidia_cublas-1.0-{ANY}", 4000), [])],
        "triton": [(_file(f"triton-3.0-{M228}", 700), [])],
        "cuda-bindings": [(_file(f"cuda_bindings-1.0-{M228}", 60), [])],
        "sympy": [(_file(f"sympy-1.0-{ANY}", 6), [])],
    }
    roots = ["torch==2.0"]
    cuda = size_mod.totals(list(_resolve(roots, FakeIndex(projects)).values()))
    assert (cuda["total_bytes"], cuda["torch_cuda_bytes"], cuda["rest_bytes"]) == (9766, 9760, 6)
    assert cuda["torch_cuda_files"] == 4
    wheel = tmp_path / f"torch-2.0+cpu-{M228}"
    wheel.write_bytes(_wheel_bytes("torch", "2.0+cpu", ["sympy"]))
    local = size_mod.local_wheel(wheel, index_mod.tag_ranks(LINUX))
    assert (local.version, local.size) == ("2.0+cpu", wheel.stat().st_size)
    got = _resolve(roots, FakeIndex(projects), local={"torch": local})
    assert sorted(got) == ["sympy", "torch"] and got["torch"].filename == wheel.name
    cpu = size_mod.totals(list(got.values()))
    assert cpu["total_bytes"] == wheel.stat().st_size + 6
    record = size_mod.case_record(list(got.values()))
    assert [(r["name"], r["filename"], r["size"]) for r in record["packages"]] == \
        [("sympy", f"sympy-1.0-{ANY}", 6), ("torch", wheel.name, wheel.stat().st_size)]
    assert record["files"] == 2 and record["total_bytes"] == cpu["total_bytes"]
    with pytest.raises(UserError, match="does not backtrack"):
        _resolve(["torch==3.0"], FakeIndex(projects), local={"torch": local})
    mac = tmp_path / f"torch-2.0+cpu-{MAC}"
    mac.write_bytes(wheel.read_bytes())
    with pytest.raises(UserError, match="not a wheel the target can install"):
        size_mod.local_wheel(mac, index_mod.tag_ranks(LINUX))


def test_read_requirements_follows_includes(tmp_path):
    (tmp_path / "base.txt").write_text("# pins\ntorch==2.0  # comment\nnumpy>=1\n")
    (tmp_path / "dev.txt").write_text("-r base.txt\n\npytest==9\n")
    assert [str(r) for r in size_mod.read_requirements(tmp_path / "dev.txt")] == \
        ["torch==2.0", "numpy>=1", "pytest==9"]
    (tmp_path / "bad.txt").write_text("-e .\n")
    with pytest.raises(UserError, match="bad.txt:1"):
        size_mod.read_requirements(tmp_path / "bad.txt")


def test_unreachable_index_is_one_line_without_traceback(tmp_path):
    """A refused connection (a closed local port) stands in for a machine without network."""
    cmd = [sys.executable, str(ROOT / "benchmarks/install_size.py"), "--index",
           "http://127.0.0.1:9/simple", "--timeout", "5", "--json", str(tmp_path / "out.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: cannot reach http://127.0.0.1:9/simple/torch/")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()
    with pytest.raises(UserError, match="--python"):
        size_mod.parse_args(["--python", "three"])


def test_readme_install_figures_come_from_the_committed_record():
    """README's install command parses as printed, and its sizes are the committed JSON's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"`python (benchmarks/install_size\.py[^`]*)`", readme)
    assert commands, "README names the command behind its install sizes"
    for command in commands:
        args = size_mod.parse_args(shlex.split(command)[1:])
        assert args.json == Path("results/bench_install_size.json")
        pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
                   if line.startswith("torch=="))
        assert args.cpu_wheel.name.startswith("torch-" + pin.split("==")[1] + "+cpu-")
    record = json.loads((ROOT / "results/bench_install_size.json").read_text())
    assert record["date"][:10] in readme
    for case in ("pypi_default", "cpu_wheel"):
        c = record["cases"][case]
        assert len(c["packages"]) == c["files"]
        assert sum(p["size"] for p in c["packages"]) == c["total_bytes"]
        for key in ("total_bytes", "torch_cuda_bytes"):
            assert size_mod.mb(c[key]) in readme, (case, key)
