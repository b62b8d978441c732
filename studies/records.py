"""The studies' records and doc tables: the shared options' checks, a record read back for
``--from-record``, and tables written into a doc's marked blocks for ``--update-docs``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from zhbert.errors import UserError
from zhbert.io_utils import read_json, replace_marked_block


def check_run_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--cuts`` strictly inside (0, 1) and distinct, ``--n-boot`` at least 1, ``--seed`` not
    negative (those the parser has); ``p.error`` otherwise."""
    cuts = getattr(args, "cuts", None)
    if cuts is not None and (not cuts or any(not 0 < q < 1 for q in cuts)):
        p.error("--cuts must lie strictly between 0 and 1")
    if cuts is not None and len(set(cuts)) != len(cuts):
        p.error("--cuts must be distinct (a repeated cut would count its forecasts twice)")
    if getattr(args, "n_boot", 1) < 1:
        p.error("--n-boot must be at least 1")
    if getattr(args, "seed", 0) < 0:
        p.error("--seed must not be negative")


def require_blocks(doc: Path | None, *blocks: str) -> None:
    """Before any work: ``doc`` (None: nothing asked) is a readable UTF-8 file holding every
    ``<!-- block:start -->`` ... ``<!-- block:end -->`` pair; one UserError otherwise."""
    if doc is None:
        return
    try:
        text = Path(doc).read_text("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{doc}: not UTF-8 text (--update-docs)") from None
    except OSError as e:
        raise UserError(f"{doc}: cannot read ({e.strerror or e}) (--update-docs)") from None
    for block in blocks:
        if f"<!-- {block}:start -->" not in text or f"<!-- {block}:end -->" not in text:
            raise UserError(f"{doc}: no <!-- {block}:start --> ... <!-- {block}:end --> block "
                            "to update")


def render_record(path: Path, what: str, keys: tuple[str, ...], script: str,
                  render: Callable[[dict], object]):
    """``render(record)`` of the JSON object at ``path``; a missing or invalid file, one without
    ``keys`` (or with one empty), or one ``render`` cannot read is one UserError naming ``what`` and the ``script``
    that writes it."""
    record = read_json(path, what, hint=f"write one with {script}")
    if not isinstance(record, dict) or not set(keys) <= set(record) or not all(
            record[k] for k in keys):
        raise UserError(f"{path}: not {what} (no {' and '.join(keys)}; write one with {script})")
    try:
        return render(record)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        raise UserError(f"{path}: not {what} (unreadable {type(e).__name__}: {e}; write one "
                        f"with {script})") from None


def publish(doc: Path | None, blocks: dict[str, str]) -> None:
    """Print each table and, with a ``doc`` (checked by :func:`require_blocks`), write each into
    its block: ``blocks`` maps block name -> table, all built before anything is written."""
    for md in blocks.values():
        print(md)
    if doc is not None:
        require_blocks(doc, *blocks)
        for block, md in blocks.items():
            replace_marked_block(doc, block, md)
