"""The studies' records and doc tables: read a record back for ``--from-record``, and print a
table and write it into a doc's marked block for ``--update-docs``."""

from __future__ import annotations

from pathlib import Path

from zhbert.errors import UserError
from zhbert.io_utils import read_json, replace_marked_block


def load_record(path: Path, what: str, keys: tuple[str, ...], script: str) -> dict:
    """The JSON object at ``path`` holding ``keys``; anything else is one UserError naming
    ``what`` and the ``script`` that writes it."""
    record = read_json(path, what, hint=f"write one with {script}")
    if not isinstance(record, dict) or not set(keys) <= set(record):
        raise UserError(f"{path}: not {what} (no {' and '.join(keys)}; write one with {script})")
    return record


def publish(md: str, doc: Path | None, block: str) -> None:
    """Print ``md`` and, with a ``doc``, write it into that doc's ``block``."""
    if doc is not None:
        replace_marked_block(doc, block, md)
    print(md)
