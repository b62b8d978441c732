"""The benchmark tables in docs/TRAINING.md are the scripts' own tables of the committed records
(``markdown_table`` of benchmarks/train_throughput.py and benchmarks/optimizer_step.py applied to
results/bench_train_throughput.json and results/bench_optimizer_step.json), so a new record
cannot leave the doc behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("script", "record"), [
    ("benchmarks/train_throughput.py", "results/bench_train_throughput.json"),
    ("benchmarks/optimizer_step.py", "results/bench_optimizer_step.json"),
])
def test_training_doc_holds_the_table_of_the_committed_record(script, record):
    records = json.loads((ROOT / record).read_text(encoding="utf-8"))
    table = load_script(script).markdown_table(records)
    doc = (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    lines = [line.strip() for line in doc.splitlines()]
    want = [line.strip() for line in table.splitlines()]
    starts = [i for i, line in enumerate(lines) if line == want[0]]
    assert any(lines[i:i + len(want)] == want for i in starts), f"{record}: table not in the doc"


def test_no_placeholder_is_left():
    doc = (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    assert "bench-table" not in doc and "predates" not in doc
