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
    ("benchmarks/train_throughput.py", "results/bench_train_throughput_avx2.json"),
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


def test_live_overhead_figures_are_the_committed_record():
    """The overhead sentence of docs/TRAINING.md states what results/bench_live_overhead.json holds."""
    rec = json.loads((ROOT / "results" / "bench_live_overhead.json").read_text())["replay"]
    doc = (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    assert f"**Overhead on the demo preset: {100 * rec['overhead_wall']:.2f} %**" in doc
    assert f"times it: {rec['forecast_cpu_s']:.2f}\nCPU seconds" in doc
    assert f"(here {rec['forecast_wall_s']:.2f} wall s)" in doc
    assert f"{rec['forecasts']} of them give a forecast" in doc


def test_data_wait_figures_are_the_committed_records():
    """Every statement of the largest data-wait share in docs/TRAINING.md is the records' maximum."""
    hist = json.loads((ROOT / "results" / "training_history.json").read_text())
    bench = json.loads((ROOT / "results" / "bench_train_throughput.json").read_text())
    demo = f"{100 * max(hist['data_wait_frac']):.2f} %"
    cases = f"{100 * max(r['data_wait_frac'] for r in bench):.2f} %"
    doc = (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8").replace("\n", " ")
    assert doc.count(f"at most {demo} in the committed demo run") == 2
    assert doc.count(f"{cases} in the benchmark cases") == 3
    assert f"| largest `data_wait_frac` | {demo} |" in doc


def test_corpus_preparation_timings_are_the_committed_record():
    """docs/DATASET.md's tokenisation share is the committed history's ``meta.dataset.stats``."""
    hist = json.loads((ROOT / "results" / "training_history.json").read_text())
    t = hist["meta"]["dataset"]["stats"]["timings_s"]
    doc = (ROOT / "docs" / "DATASET.md").read_text(encoding="utf-8").replace("\n  ", " ")
    assert f"{t['tokenize_train']:.2f} of {sum(t.values()):.2f} s" in doc
    assert f"({sum(t.values()):.2f} s in the library" in doc


def test_gpu_tables_are_the_committed_gpu_records():
    """docs/TRAINING.md's GPU tables are benchmarks/gpu_report.py's tables of results/gpu/, and
    the README's GPU figures are those records'."""
    report = load_script("benchmarks/gpu_report.py")
    results = ROOT / "results" / "gpu"
    doc = [line.strip() for line in (ROOT / "docs" / "TRAINING.md").read_text(
        encoding="utf-8").splitlines()]
    for make in (report.check_table, report.throughput_table, report.runs_table,
                 report.resume_table):
        want = [line.strip() for line in make(results).splitlines()]
        starts = [i for i, line in enumerate(doc) if line == want[0]]
        assert any(doc[i:i + len(want)] == want for i in starts), make.__name__
    h = json.loads((results / "runs" / "paper" / "training_history.json").read_text())
    rate = h["steps"][-1] / h["elapsed_s"][-1]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"at {rate:.2f} steps/s in bf16" in readme
    assert f"({rate / report.ORIGINAL_STEPS_PER_S:.1f}x;" in readme
    assert "ours 109809 tok/s, HF 86830 tok/s, ratio 1.26" in (results / "compile.log").read_text()


def test_analysis_doc_holds_the_forecast_peers_tables_of_the_committed_record():
    """docs/ANALYSIS.md's head-to-head tables are studies/forecast_peers.py's ``markdown_table``
    of results/forecast_peers/peers.json, and its target sentence states the record's."""
    record = json.loads((ROOT / "results" / "forecast_peers" / "peers.json").read_text())
    table = load_script("studies/forecast_peers.py").markdown_table(record)
    lines = [line.strip() for line in (ROOT / "docs" / "ANALYSIS.md").read_text(
        encoding="utf-8").splitlines()]
    want = [line.strip() for line in table.splitlines()]
    starts = [i for i, line in enumerate(lines) if line == want[0]]
    assert any(lines[i:i + len(want)] == want for i in starts), "peers table not in the doc"
