"""README.md's results table is exactly what the committed demo run's files say."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _run_demo_module():
    return load_script("examples/run_demo.py")


def test_readme_results_tables_match_committed_results():
    """Each demo preset's README block is the table of its committed reference run."""
    run_demo = _run_demo_module()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for preset, (folder, name) in run_demo.REFERENCES.items():
        start, end = run_demo.readme_markers(name)
        block = readme.split(start, 1)[1].split(end, 1)[0]
        assert block.strip() == run_demo.results_table(ROOT / folder).strip(), preset
        meta = json.loads((ROOT / folder / "training_history.json").read_text())["meta"]
        assert meta["preset"] == preset
    assert run_demo.readme_markers("demo-results") == (run_demo.README_START, run_demo.README_END)


def test_readme_shows_every_committed_figure():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    figures = sorted(p.name for p in (ROOT / "results" / "demo_bf16").glob("*.png"))
    assert figures, "the demo figures are committed in results/demo_bf16/"
    for name in figures:
        if name != "comparison_50k_100k.png":
            assert f"results/demo_bf16/{name}" in readme, name
