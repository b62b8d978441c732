"""Where a result came from: the git commit of the code and whether the work tree was dirty.

A history records both in ``meta`` (``git_commit``, ``git_dirty``), so a run made from
uncommitted code says so. Every producer of committed reference results refuses a dirty tree
(:func:`check_clean`): ``examples/run_demo.py --update-reference`` (``make reference``),
``examples/run_study.py`` (``make study-reference``, or any ``--out-dir`` under ``results/``),
and the run sets in ``studies/`` (``calibration_runs.py``, ``demo_tuning.py``,
``demo_tuning_fp32.py``) when they write into ``results/``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zhbert.errors import UserError

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


def in_results(path: str | Path, root: str | Path = REPO_ROOT) -> bool:
    """Whether ``path`` is the repository's committed ``results/`` folder or lies under it."""
    path, results = Path(path).resolve(), Path(root).resolve() / "results"
    return results == path or results in path.parents


def check_clean(metas: Mapping[str, dict], allow_dirty: bool, what: str = "the reference results",
                ignore: Iterable[str] = ("results", "README.md"), root: str | Path = REPO_ROOT,
                ) -> None:
    """Refuse (UserError) or, with ``allow_dirty``, warn loudly about results from uncommitted
    code: each history ``meta`` (by label) must record a clean tree (``git_dirty`` false), and
    the work tree the results are written from must have no changes outside ``ignore``.

    >>> check_clean({"run": {"git_commit": "abc", "git_dirty": False}}, False, root="/")
    Traceback (most recent call last):
    zhbert.errors.UserError: refusing to update the reference results: the repository has no git commit (commit, retrain from a clean commit, or pass --allow-dirty)
    """
    metas = {label: meta if isinstance(meta, dict) else {} for label, meta in metas.items()}
    problems = [f"the {label} history does not record a clean git work tree (git_commit="
                f"{meta.get('git_commit')}, git_dirty={meta.get('git_dirty')})"
                for label, meta in metas.items() if meta.get("git_dirty") is not False]
    now = git_state(root, ignore=ignore)
    if now.dirty is not False:
        problems.append("the work tree has uncommitted changes: " + ", ".join(now.changed[:5])
                        if now.changed else "the repository has no git commit")
    if not problems:
        return
    if not allow_dirty:
        raise UserError(f"refusing to update {what}: " + "; ".join(problems)
                        + " (commit, retrain from a clean commit, or pass --allow-dirty)")
    print("\n" + "!" * 78 + f"\nWARNING: {what} from uncommitted code: " + "; ".join(problems)
          + "\n" + "!" * 78, file=sys.stderr, flush=True)
