"""Atomic file and directory writes, so that a crash never leaves a half-written output."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zhbert.errors import UserError

#: errno values of a full disk and of an exhausted disk quota
NO_SPACE_ERRNOS = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e)


@contextlib.contextmanager
def no_space_is_user_error(target: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError of a full disk (ENOSPC) or quota (EDQUOT) raised in the block into one
    UserError naming ``target``; any other error passes through unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE_ERRNOS:
            raise
        detail = " (disk quota exceeded)" if exc.errno != errno.ENOSPC else ""
        raise UserError(f"cannot write {target}: no space left on device{detail}") from None


def _default_mode(kind: str) -> int:
    """Permissions a plain ``open``/``mkdir`` would give (mkstemp/mkdtemp default to 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o666 if kind == "file" else 0o777) & ~umask


def _ensure_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create directory {path.parent}: {exc.strerror or exc}") from None


def _fsync(path: str | os.PathLike, directory: bool = False) -> None:
    """Flush a file (or a directory's entries) to disk; directories that refuse are skipped."""
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (before it is renamed into place)."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            _fsync(os.path.join(dirpath, name))
        _fsync(dirpath, directory=True)


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path when it is a file; else a UserError saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected {what}")
    if not path.is_file():
        raise UserError(f"{path}: file not found ({what})")
    return path


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path when it is a directory; else a UserError saying what it is instead."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file, expected {what}")
    if not path.is_dir():
        raise UserError(f"{path}: directory not found ({what})")
    return path


def read_json(path: str | os.PathLike, what: str, *, obj: bool = False, hint: str = "") -> Any:
    """Parse the JSON file ``path``; a missing, unreadable or invalid file is one UserError.

    ``what`` names the file in messages; ``obj=True`` also requires a JSON object (a dict);
    ``hint`` is appended to the message when the file is missing (what to run first).
    """
    path = Path(path)
    if hint and not path.exists():
        raise UserError(f"{path}: file not found ({what}); {hint}")
    path = require_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text ({what})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply to read ({what})") from None
    except ValueError as exc:  # an integer longer than Python's int_max_str_digits
        raise UserError(f"{path}: unreadable JSON ({what}): {str(exc).split(';')[0]}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if obj and not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object ({what})")
    return data


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename.

    Any OS error (a full disk, ``path`` being a directory) is one UserError naming ``path``;
    the temporary file is removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"cannot write {path}: is a directory")
    _ensure_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode("file"))
        os.replace(tmp, path)
        _fsync(path.parent, directory=True)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def replace_marked_block(path: str | os.PathLike, block: str, body: str) -> None:
    """Replace the text between ``<!-- block:start -->`` and ``<!-- block:end -->`` in the file
    at ``path`` with ``body`` (atomically); a UserError when the markers are missing."""
    start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
    text = Path(path).read_text("utf-8")
    if start not in text or end not in text:
        raise UserError(f"{path}: no {start} ... {end} block to update")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(path, f"{head}{start}\n{body.rstrip()}\n{end}{tail}")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as UTF-8 JSON (non-ASCII kept readable) atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``final``; rename it to ``final`` on success.

    Every file is fsynced before the rename. On an exception the temporary directory is removed
    and an existing ``final`` is left untouched.
    An existing ``final`` is replaced only once the new one is complete.
    """
    final = Path(final)
    _ensure_parent(final)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as exc:
        raise UserError(f"cannot write {final}: {exc.strerror or exc}") from None
    try:
        yield tmp
        os.chmod(tmp, _default_mode("dir"))
        _fsync_tree(tmp)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync(final.parent, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_labels(paths: list[str | os.PathLike]) -> list[str]:
    """Distinct short labels for history files: the run directory's name for a file called
    ``training_history.json`` (``runs/a/training_history.json`` -> ``a``), else the file's stem;
    numbered ``run 1``, ``run 2``, ... when two would still be equal."""
    paths = [Path(p) for p in paths]
    names = [p.parent.name if p.stem == "training_history" and p.parent.name else p.stem
             for p in paths]
    if len(set(names)) < len(names):
        names = [f"run {i + 1}" for i in range(len(paths))]
    return names
