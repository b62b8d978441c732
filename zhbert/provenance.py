"""Where a result came from: the git commit of the code and whether the work tree was dirty.

A history records both in ``meta`` (``git_commit``, ``git_dirty``), so a run made from
uncommitted code says so. ``examples/run_demo.py --update-reference`` refuses to publish
reference results from a dirty tree.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class GitState:
    """The commit checked out (None outside a git work tree) and the paths that differ from it."""

    commit: str | None
    changed: tuple[str, ...] = ()

    @property
    def dirty(self) -> bool | None:
        """True when tracked files differ from the commit (None when there is no commit)."""
        return None if self.commit is None else bool(self.changed)


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, cwd=root)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state(root: str | Path = REPO_ROOT, ignore: Iterable[str] = ()) -> GitState:
    """Commit and changed tracked files of the work tree at ``root`` (untracked files ignored).

    Paths equal to, or under, an entry of ``ignore`` (relative to the repository root) do not
    count: the reference update ignores its own outputs (``results/``, ``README.md``).
    """
    commit = _git(Path(root), "rev-parse", "HEAD")
    if not commit:
        return GitState(None)
    status = _git(Path(root), "status", "--porcelain", "--untracked-files=no") or ""
    skip = tuple(p.rstrip("/") for p in ignore)
    changed = []
    for line in status.splitlines():
        path = line[3:].split(" -> ")[-1].strip('"')
        if not any(path == s or path.startswith(s + "/") for s in skip):
            changed.append(path)
    return GitState(commit.strip(), tuple(changed))
