"""What `pip install -r requirements.txt` downloads from PyPI on one machine, without installing.

python benchmarks/install_size.py                                   # Linux x86_64, CPython 3.11
python benchmarks/install_size.py --cpu-wheel torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \
    --json results/bench_install_size.json

It asks PyPI's JSON simple API (PEP 691) for every project's files and sizes and reads each chosen
wheel's dependencies from its PEP 658 metadata file (``<wheel url>.metadata``) or, where the index
has none, from the wheel's METADATA read with a few byte-range requests: no wheel is downloaded
(``pypi_index.py``). Environment markers and extras are evaluated for the target (``--python``,
``--arch``, ``--glibc``) with ``packaging``; the best wheel is the one whose tag ranks first for
the target, as pip ranks them. Reported per package: version, file, compressed download size;
totals; and the part that is torch with its CUDA libraries (``nvidia-*``, ``cuda-*``,
``triton``), which PyTorch's CPU build does not need.

``--cpu-wheel PATH`` repeats the resolution with torch taken from a local wheel (its size and its
own METADATA) instead of the index: the CPU build lives on PyTorch's own index (the Makefile's
``TORCH_INDEX``), which this script does not query, so a copy of that wheel stands in. torch's
own dependencies are still counted from PyPI (pip on PyTorch's index may take other versions).

The resolver is simple: packages are chosen breadth-first, the requirements file's first; an
unpinned one gets the newest release that satisfies every specifier seen so far and has a file
the target can install (within a release a wheel beats a source distribution, as in pip). When a later specifier
excludes a version already chosen, resolution restarts with that specifier known from the start
(no backtracking search). Dependencies of a source distribution cannot be read without building
it: they are taken from an installed copy of the same version when this interpreter has one, and
listed as unknown otherwise. Sizes are decimal (1 MB = 10^6 bytes); the installed size on disk is
not known from these files.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pypi_index import (  # noqa: E402
    PYPI_SIMPLE,
    Fetch,
    Target,
    applies,
    choose_file,
    file_requires,
    file_version,
    installed_requires,
    make_fetch,
    metadata_requires,
    needed,
    project_files,
    tag_ranks,
    wheel_metadata,
)

from zhbert.errors import UserError, run_cli  # noqa: E402
from zhbert.io_utils import atomic_write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GPU_PREFIXES = ("nvidia-", "cuda-")
GPU_NAMES = {"torch", "triton"}
MAX_RESTARTS = 20


@dataclass
class Chosen:
    """One package of the resolved set."""

    name: str
    version: str
    filename: str
    size: int
    requires: list[str] | None  # None: unknown (a source distribution not installed here)
    source: str = "pypi"  # or the local path of a wheel given with --cpu-wheel
    extras: set[str] = field(default_factory=set)


def local_wheel(path: Path, ranks: dict[Tag, int]) -> Chosen:
    """A wheel on disk as a resolved package: its size and the Requires-Dist of its METADATA."""
    if not path.is_file():
        raise UserError(f"--cpu-wheel: no such file: {path}")
    found = file_version(path.name, ranks)
    if found is None or not path.name.endswith(".whl"):
        raise UserError(f"--cpu-wheel: {path.name} is not a wheel the target can install")
    name = parse_wheel_filename(path.name)[0]
    try:
        with zipfile.ZipFile(path) as wheel:
            requires = metadata_requires(wheel_metadata(wheel))
    except zipfile.BadZipFile:
        raise UserError(f"--cpu-wheel: {path} is not a wheel (not a zip file)") from None
    return Chosen(str(name), str(found[0]), path.name, path.stat().st_size, requires,
                  source=str(path))


# ---------------------------------------------------------------- resolving


class Conflict(Exception):
    """A specifier arrived that excludes the version already chosen for its package."""

    def __init__(self, name: str, spec: SpecifierSet):
        super().__init__(name)
        self.name, self.spec = name, spec


def read_requirements(path: Path) -> list[Requirement]:
    """Requirements of a pip requirements file, following ``-r other.txt`` includes."""
    if not path.is_file():
        raise UserError(f"no such requirements file: {path}")
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            out += read_requirements(path.parent / line.split(None, 1)[1])
            continue
        try:
            out.append(Requirement(line))
        except InvalidRequirement as exc:
            raise UserError(f"{path}:{number}: not a requirement this script reads: {exc}") from None
    return out


def resolve_once(roots: Sequence[Requirement], target: Target, fetch: Fetch, index: str,
                 known: dict[str, SpecifierSet], local: dict[str, Chosen],
                 fallback: Callable[[str, str], list[str] | None]) -> dict[str, Chosen]:
    """One breadth-first pass (see the module docstring); raises ``Conflict``.

    ``known`` holds specifiers learnt from earlier passes, ``local`` packages that come from a
    local wheel instead of the index.
    """
    ranks = tag_ranks(target)
    chosen: dict[str, Chosen] = {}
    specs: dict[str, SpecifierSet] = {}
    expanded: set[str] = set()  # packages whose dependencies are queued (for their extras)
    queue = deque(r for r in roots if applies(r.marker, target, []))
    while queue:
        req = queue.popleft()
        name = canonicalize_name(req.name)
        specs[name] = specs.get(name, SpecifierSet()) & req.specifier
        if name not in chosen:
            spec = specs[name] & known.get(name, SpecifierSet())
            chosen[name] = (replace(local[name], extras=set()) if name in local else
                            choose_package(fetch, index, req.name, spec, target, ranks, fallback))
        pkg = chosen[name]
        if not specs[name].contains(pkg.version, prereleases=True):
            raise Conflict(name, specs[name])
        old, new = set(pkg.extras), set(pkg.extras) | set(req.extras)
        if (name in expanded and new == old) or pkg.requires is None:
            continue
        queued = {str(r) for r in needed(pkg.requires, target, old)} if name in expanded else set()
        queue.extend(r for r in needed(pkg.requires, target, new) if str(r) not in queued)
        pkg.extras, expanded = new, expanded | {name}
    return chosen


def choose_package(fetch: Fetch, index: str, name: str, spec: SpecifierSet, target: Target,
                   ranks: dict[Tag, int], fallback: Callable[[str, str], list[str] | None]) -> Chosen:
    """The index's best file of ``name`` under ``spec`` for the target, with its dependencies."""
    found = choose_file(project_files(fetch, index, name), spec, target, ranks)
    if found is None:
        raise UserError(f"no file of {name}{spec} installs on CPython "
                        f"{'.'.join(map(str, target.python))} {target.arch}")
    version, info = found
    requires = file_requires(fetch, info, name, str(version), fallback)
    return Chosen(str(canonicalize_name(name)), str(version), info["filename"], int(info["size"]),
                  requires)


def resolve(roots: Sequence[Requirement], target: Target, fetch: Fetch, index: str = PYPI_SIMPLE,
            local: dict[str, Chosen] | None = None,
            fallback: Callable[[str, str], list[str] | None] = installed_requires
            ) -> list[Chosen]:
    """The packages pip would download for ``roots`` on ``target``, sorted by name."""
    known: dict[str, SpecifierSet] = {}
    local = {canonicalize_name(k): v for k, v in (local or {}).items()}
    for _ in range(MAX_RESTARTS):
        try:
            chosen = resolve_once(roots, target, fetch, index, known, local, fallback)
        except Conflict as exc:
            merged = known.get(exc.name, SpecifierSet()) & exc.spec
            if exc.name in known and merged == known[exc.name]:
                raise UserError(f"no version of {exc.name} satisfies {exc.spec} together with the "
                                f"other choices (this resolver does not backtrack)") from None
            known[exc.name] = merged
            continue
        return sorted(chosen.values(), key=lambda p: p.name)
    raise UserError(f"resolution did not settle after {MAX_RESTARTS} restarts")


# ---------------------------------------------------------------- reporting


def is_gpu_part(name: str) -> bool:
    """torch and the CUDA libraries its Linux wheel on PyPI pulls in."""
    return name in GPU_NAMES or name.startswith(GPU_PREFIXES)


def totals(packages: Sequence[Chosen]) -> dict:
    """Download totals in bytes: all, torch with its CUDA libraries, the rest; unknown deps."""
    gpu = [p for p in packages if is_gpu_part(p.name)]
    total = sum(p.size for p in packages)
    return {"files": len(packages), "total_bytes": total,
            "torch_cuda_bytes": sum(p.size for p in gpu),
            "torch_cuda_files": len(gpu),
            "rest_bytes": total - sum(p.size for p in gpu),
            "sdists": [p.name for p in packages if not p.filename.endswith(".whl")],
            "unknown_dependencies": [p.name for p in packages if p.requires is None]}


def mb(size: int) -> str:
    """Bytes as decimal megabytes, one decimal."""
    return f"{size / 1e6:,.1f} MB"


def format_case(title: str, packages: Sequence[Chosen]) -> str:
    """A table of one resolution and its totals."""
    width = max(len(p.name) for p in packages)
    lines = [f"## {title}", f"{'package':<{width}}  {'version':<12} {'download':>12}  file"]
    for p in packages:
        mark = " *" if is_gpu_part(p.name) else ""
        lines.append(f"{p.name:<{width}}  {p.version:<12} {mb(p.size):>12}  {p.filename}{mark}")
    t = totals(packages)
    lines += [f"total: {t['files']} file(s), {mb(t['total_bytes'])}",
              f"  * torch and its CUDA libraries: {t['torch_cuda_files']} file(s), "
              f"{mb(t['torch_cuda_bytes'])}; everything else {mb(t['rest_bytes'])}"]
    if t["sdists"]:
        lines.append(f"  source distributions (built locally): {', '.join(t['sdists'])}")
    if t["unknown_dependencies"]:
        lines.append("  dependencies not known (a source distribution with no installed copy here): "
                     + ", ".join(t["unknown_dependencies"]))
    return "\n".join(lines)


def case_record(packages: Sequence[Chosen]) -> dict:
    """A resolution as JSON: its packages and its totals."""
    rows = [{k: v for k, v in asdict(p).items() if k not in ("requires", "extras")}
            | {"extras": sorted(p.extras), "dependencies_known": p.requires is not None}
            for p in packages]
    return {"packages": rows, **totals(packages)}


# ---------------------------------------------------------------- command line


def _version_tuple(text: str, parts: int, flag: str) -> tuple[int, ...]:
    """``"3.11"`` -> ``(3, 11, 0)`` for ``parts=3``; a UserError for anything else."""
    try:
        numbers = tuple(int(x) for x in text.split("."))
    except ValueError:
        numbers = ()
    if not 2 <= len(numbers) <= parts:
        raise UserError(f"{flag} {text!r}: expected a version like {'3.11' if parts == 3 else '2.35'}")
    return numbers + (0,) * (parts - len(numbers))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt",
                   help="pip requirements file to resolve (`-r` includes are followed)")
    p.add_argument("--python", default="3.11", help="target CPython version, e.g. 3.11 or 3.12.4")
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "aarch64"],
                   help="target CPU architecture (Linux)")
    p.add_argument("--glibc", default="2.35",
                   help="target glibc version; manylinux wheels up to it are accepted")
    p.add_argument("--index", default=PYPI_SIMPLE, help="PEP 691 JSON simple index URL")
    p.add_argument("--cpu-wheel", type=Path, default=None,
                   help="a local CPU torch wheel: also resolve with torch taken from it")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder that keeps the index's answers between runs (created)")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON here")
    args = p.parse_args(argv)
    args.target = Target(_version_tuple(args.python, 3, "--python"), args.arch,
                         _version_tuple(args.glibc, 2, "--glibc"))
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Resolve, print the tables and the comparison, and write the JSON report."""
    args = parse_args(argv)
    roots = read_requirements(args.requirements)
    local = {}
    if args.cpu_wheel is not None:
        local["torch"] = local_wheel(args.cpu_wheel, tag_ranks(args.target))
    fetch = make_fetch(args.timeout, args.cache)
    cases = {"pypi_default": resolve(roots, args.target, fetch, args.index)}
    if local:
        cases["cpu_wheel"] = resolve(roots, args.target, fetch, args.index, local=local)
    target = args.target
    where = (f"CPython {'.'.join(map(str, target.python))}, Linux {target.arch}, "
             f"glibc {'.'.join(map(str, target.glibc))}")
    titles = {"pypi_default": f"pip install -r {args.requirements.name} from {args.index} ({where})",
              "cpu_wheel": f"the same with torch from {args.cpu_wheel}"}
    print("\n\n".join(format_case(titles[k], v) for k, v in cases.items()))
    if args.json is not None:
        report = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                  "command": "python benchmarks/install_size.py " + " ".join(argv or sys.argv[1:]),
                  "requirements": args.requirements.name, "index": args.index,
                  "target": asdict(target),
                  "cases": {k: case_record(v) for k, v in cases.items()}}
        atomic_write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)

