"""What a PEP 691 package index (PyPI) offers one machine: its wheel tags, environment markers,
the file pip would pick for a version range, and a file's dependencies, read without downloading
the file (PEP 658 metadata, or byte ranges of the wheel). Used by ``install_size.py``."""

from __future__ import annotations

import email.parser
import hashlib
import importlib.metadata
import io
import json
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zhbert.errors import UserError  # noqa: E402
from zhbert.io_utils import atomic_write_bytes  # noqa: E402

PYPI_SIMPLE = "https://pypi.org/simple"
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"

Fetch = Callable[..., bytes]  # fetch(url, span=None): the body, or bytes span[0]..span[1]


class NotFound(UserError):
    """The index answered 404 for a URL (a project or a metadata file that does not exist)."""


@dataclass(frozen=True)
class Target:
    """The machine pip runs on: CPython version, CPU architecture, glibc version (Linux only)."""

    python: tuple[int, int, int] = (3, 11, 0)
    arch: str = "x86_64"
    glibc: tuple[int, int] = (2, 35)


# ---------------------------------------------------------------- the target machine


def platform_tags(target: Target) -> list[str]:
    """Linux platform tags the target accepts, best first (manylinux down to glibc 2.5, linux)."""
    legacy = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
    major, newest = target.glibc
    tags = []
    for minor in range(newest, 4, -1):
        tags.append(f"manylinux_{major}_{minor}_{target.arch}")
        if (major, minor) in legacy:
            tags.append(f"{legacy[major, minor]}_{target.arch}")
    return tags + [f"linux_{target.arch}"]


def tag_ranks(target: Target) -> dict[Tag, int]:
    """Every wheel tag the target's CPython accepts, mapped to its rank (0 is preferred)."""
    version, platforms = target.python[:2], platform_tags(target)
    interpreter = f"cp{version[0]}{version[1]}"
    tags = [*cpython_tags(version, [interpreter, "abi3", "none"], platforms),
            *compatible_tags(version, interpreter, platforms)]
    ranks: dict[Tag, int] = {}
    for tag in tags:
        ranks.setdefault(tag, len(ranks))
    return ranks


def marker_environment(target: Target, extra: str = "") -> dict[str, str]:
    """The values PEP 508 environment markers see on the target."""
    full = ".".join(map(str, target.python))
    return {"python_version": f"{target.python[0]}.{target.python[1]}",
            "python_full_version": full, "implementation_version": full,
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": target.arch, "platform_release": "", "platform_version": "",
            "extra": extra}


def applies(marker: Marker | None, target: Target, extras: Iterable[str]) -> bool:
    """Whether a requirement with ``marker`` is needed on ``target`` when ``extras`` are asked."""
    if marker is None:
        return True
    return any(marker.evaluate(marker_environment(target, extra)) for extra in ["", *extras])


def needed(requires: Sequence[str], target: Target, extras: Iterable[str]) -> list[Requirement]:
    """The Requires-Dist entries that apply on ``target`` with ``extras`` (others dropped)."""
    out = []
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise UserError(f"unreadable requirement {line!r}: {exc}") from None
        if applies(req.marker, target, extras):
            out.append(req)
    return out


# ---------------------------------------------------------------- choosing a file


def file_version(filename: str, ranks: dict[Tag, int]) -> tuple[Version, int] | None:
    """``(version, rank)`` of a file the target can install (sdists rank last), else None."""
    try:
        if filename.endswith(".whl"):
            _, version, _, tags = parse_wheel_filename(filename)
            usable = [ranks[t] for t in tags if t in ranks]
            return (version, min(usable)) if usable else None
        _, version = parse_sdist_filename(filename)
        return version, len(ranks)
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None


def python_allowed(requires_python: str | None, python: Version) -> bool:
    """Whether a file's ``requires-python`` admits ``python`` (an unreadable one does, as in pip)."""
    try:
        return not requires_python or python in SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True


def choose_file(files: Sequence[dict], spec: SpecifierSet, target: Target,
                ranks: dict[Tag, int]) -> tuple[Version, dict] | None:
    """The newest version allowed by ``spec`` with an installable file, and its best file.

    Files whose ``requires-python`` excludes the target's Python are skipped, and yanked files
    unless ``spec`` pins their version exactly (pip's rule). Pre-releases only when ``spec``
    names one.
    """
    python = Version(".".join(map(str, target.python)))
    best: dict[Version, tuple[int, dict]] = {}
    for info in files:
        found = file_version(info["filename"], ranks)
        if found is None:
            continue
        version, rank = found
        if not python_allowed(info.get("requires-python"), python):
            continue
        if info.get("yanked") and not any(s.operator in ("==", "===") for s in spec):
            continue
        if version not in best or rank < best[version][0]:
            best[version] = (rank, info)
    allowed = list(spec.filter(best))
    if not allowed:
        return None
    version = max(allowed)
    return version, best[version][1]


# ---------------------------------------------------------------- talking to the index


def make_fetch(timeout: float, cache: Path | None = None) -> Fetch:
    """A function ``fetch(url, span=None)`` that GETs a URL, or bytes ``span = (start, end)``
    (inclusive) of it, with ``timeout``; network errors become one-line ``UserError``s."""
    def fetch(url: str, span: tuple[int, int] | None = None) -> bytes:
        key = url if span is None else f"{url} bytes={span[0]}-{span[1]}"
        cached = cache / hashlib.sha256(key.encode()).hexdigest() if cache else None
        if cached is not None and cached.is_file():
            return cached.read_bytes()
        headers = {"Accept": JSON_ACCEPT, "User-Agent": "zhbert-install-size"}
        if span is not None:
            headers["Range"] = f"bytes={span[0]}-{span[1]}"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                        timeout=timeout) as response:
                if span is not None and response.status != 206:
                    raise UserError(f"{url}: the server ignored a byte-range request")
                data = response.read()
        except urllib.error.HTTPError as exc:
            error = NotFound if exc.code == 404 else UserError
            raise error(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UserError(f"cannot reach {url}: {reason} (this script needs network access "
                            f"to the package index)") from None
        if cached is not None:
            atomic_write_bytes(cached, data)
        return data
    return fetch


class RemoteFile(io.RawIOBase):
    """A read-only, seekable view of a remote file of known ``size`` that fetches byte ranges,
    so ``zipfile`` reads a wheel's METADATA with a few small requests (as pip's fast-deps)."""

    def __init__(self, fetch: Fetch, url: str, size: int):
        super().__init__()
        self.fetch, self.url, self.size, self.pos = fetch, url, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        end = min(self.pos + len(buffer), self.size)
        if end <= self.pos:
            return 0
        data = self.fetch(self.url, (self.pos, end - 1))
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


def wheel_metadata(wheel: zipfile.ZipFile) -> str:
    """The text of a wheel's ``*.dist-info/METADATA``."""
    names = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if not names:
        raise UserError(f"{wheel.filename}: a wheel without .dist-info/METADATA")
    return wheel.read(names[0]).decode("utf-8")


def project_files(fetch: Fetch, index: str, name: str) -> list[dict]:
    """The files of project ``name`` from the index's PEP 691 JSON page."""
    url = f"{index.rstrip('/')}/{canonicalize_name(name)}/"
    try:
        page = json.loads(fetch(url))
    except NotFound:
        raise UserError(f"{name} is not on {index}") from None
    except ValueError:
        raise UserError(f"{url} did not answer JSON (is it a PEP 691 index?)") from None
    return page.get("files", [])


def metadata_requires(text: str) -> list[str]:
    """The Requires-Dist lines of a core metadata file (METADATA / PKG-INFO)."""
    message = email.parser.HeaderParser().parsestr(text)
    return message.get_all("Requires-Dist") or []


def installed_requires(name: str, version: str) -> list[str] | None:
    """Requires-Dist of this interpreter's installed copy of ``name`` when it is ``version``."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return list(dist.requires or []) if Version(dist.version) == Version(version) else None


def file_requires(fetch: Fetch, info: dict, name: str, version: str,
                  fallback: Callable[[str, str], list[str] | None]) -> list[str] | None:
    """A file's dependencies. A wheel's come from its PEP 658 metadata file, or, when the index
    has none, from METADATA read out of the remote wheel with byte-range requests; a source
    distribution's from ``fallback(name, version)`` (None: unknown)."""
    if not info["filename"].endswith(".whl"):
        return fallback(name, version)
    if info.get("core-metadata", info.get("data-dist-info-metadata", True)):
        try:
            return metadata_requires(fetch(info["url"] + ".metadata").decode("utf-8"))
        except NotFound:
            pass
    remote = io.BufferedReader(RemoteFile(fetch, info["url"], int(info["size"])), 1 << 16)
    try:
        with zipfile.ZipFile(remote) as wheel:
            return metadata_requires(wheel_metadata(wheel))
    except zipfile.BadZipFile:
        raise UserError(f"{info['url']} is not a readable wheel") from None
