"""README.md's results table is exactly what the committed demo run's files say."""

from __future__ import annotations

from pathlib import Path

from tests.helpers_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _run_demo_module():
    return load_script("examples/run_demo.py")


def test_readme_results_table_matches_committed_results():
    run_demo = _run_demo_module()
    table = run_demo.results_table(ROOT / "results")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split(run_demo.README_START, 1)[1].split(run_demo.README_END, 1)[0]
    assert block.strip() == table.strip()


def test_readme_shows_every_committed_figure():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    figures = sorted(p.name for p in (ROOT / "results").glob("*.png"))
    assert figures, "the demo figures are committed in results/"
    for name in figures:
        if name != "comparison_50k_100k.png":
            assert f"results/{name}" in readme, name
