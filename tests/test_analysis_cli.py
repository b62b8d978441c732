"""End-to-end tests: analyze() on histories, the CLI's outputs and its bad-input handling."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zhbert.analysis import analyze, load_history, select_series
from zhbert.analysis.synthetic import ORIGINAL_TARGETS, make_history, make_original_like
from zhbert.errors import UserError, run_cli

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, name: str, obj) -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_original_fixture_reproduces_published_statistics(tmp_path):
    h = make_original_like()
    acc = np.array(h["mlm_acc"])
    assert acc.min() == ORIGINAL_TARGETS["min"] and acc.max() == ORIGINAL_TARGETS["max"]
    out = tmp_path / "a.json"
    res = _run("analyze_100k.py", "--history", str(_write(tmp_path, "h.json", h)),
               "--n-boot", "30", "--output", str(out))
    assert res.returncode == 0, res.stderr
    for text in ("相关性分析 | Correlation", "r = 0.7869", "R^2 = 0.6193", "p < 0.001",
                 "[0.76, 0.81]", "mean 50.53%", "max 66.35%", "8.96 -> 2.97 (-66.8%)"):
        assert text in res.stdout, text
    r = json.loads(out.read_text())
    assert r["pearson_correlation"] == pytest.approx(0.7869267513, abs=1e-9)
    assert r["r_squared"] == pytest.approx(r["pearson_correlation"] ** 2)
    assert r["r_squared"] == pytest.approx(0.6193, abs=5e-5)
    assert r["mlm_stats"]["std"] == pytest.approx(np.std(acc)) == pytest.approx(0.1048085262)
    lo, hi = r["pearson"]["ci95"]
    assert lo == pytest.approx(0.762, abs=1e-3) and hi == pytest.approx(0.809, abs=1e-3)
    assert r["loss_stats"]["decrease"] == pytest.approx(5.98440432548523)
    assert r["loss_stats"]["decrease_pct"] == pytest.approx(66.81, abs=0.01)
    assert (r["total_steps"], r["data_points"]) == (100_000, 1000)
    assert r["input"]["format"] == "original"
    assert (r["series"]["kind"], r["series"]["n"], r["series"]["requested"]) == ("train", 1000,
                                                                                "auto")
    assert "no held-out series" in r["series"]["reason"]
    assert r["noise"]["series_kind"] == "train" and "training batches" in r["noise"]["note"]
    assert "comparison_with_50k" not in r and "goal_achieved" not in r


def test_analyze_prefers_eval_series_and_has_every_block(tmp_path):
    h = load_history(_write(tmp_path, "z.json", make_history(n=300, eval_every=10)))
    assert h.format == "zhbert" and select_series(h, "auto").kind == "eval"
    assert select_series(h, "train").n == 300
    with pytest.raises(UserError, match="past the planned last step 100,000"):
        analyze(h, n_boot=20, target_step=150_000)
    r = analyze(h, n_boot=20, target_step=150_000, continue_lr="1e-5",
                compare=[("short", load_history(_write(tmp_path, "s.json",
                                                       make_history(n=150, last_step=50_000))))])
    assert r["series"]["kind"] == "eval" and r["data_points"] == 30
    assert r["extrapolation"]["target_step"] == 150_000 and r["extrapolation"]["ok"]
    assert r["extrapolation"]["schedule"]["continue_lr"] == 1e-5
    assert len(r["phases"]["quarters"]) == 4 and r["phases"]["lr_events"]
    assert [g["fraction"] for g in r["marginal_gain"]] == [0.1, 0.25, 0.5, 0.75, 1.0]
    assert r["loss_fit"]["family"] == "loss_power_law" and r["loss_fit"]["converged"]
    assert r["comparison"]["matched"][0]["overlap"][1] == 50_000
    assert r["trend"]["modified_mann_kendall"]["method"] == "hamed_rao"
    json.dumps(r, allow_nan=False)  # strict JSON: no NaN anywhere


def test_few_nonfinite_rows_dropped_with_warning(tmp_path):
    h = make_history(n=100)
    h["mlm_acc"][5] = float("nan")
    h["loss"][7] = float("inf")
    path = _write(tmp_path, "h.json", json.dumps(h))  # Python's json writes NaN/Infinity
    hist = load_history(path)
    assert hist.dropped_nonfinite == 2 and len(hist.train) == 98
    res = _run("analyze_100k.py", "--history", str(path), "--n-boot", "10")
    assert res.returncode == 0, res.stderr
    assert "warning:" in res.stderr and (tmp_path / "analysis_result.json").is_file()


def _bad_cases() -> dict:
    good = make_history(n=40)
    unequal = {**good, "loss": good["loss"][:-1]}
    many_nan = {**good, "mlm_acc": [None] * 10 + good["mlm_acc"][10:]}
    concat = {k: v + v for k, v in good.items()}
    short = {k: v[:5] for k, v in good.items()}
    return {"missing": None, "invalid": "{not json", "keys": {"steps": [1, 2]},
            "unequal": unequal, "many_nan": many_nan, "concat": concat, "short": short,
            "range": {**good, "mlm_acc": [1000 * a for a in good["mlm_acc"]]},
            "negative": {**good, "mlm_acc": [a - 0.5 for a in good["mlm_acc"]]}}


@pytest.mark.parametrize(("case", "needle"), [
    ("missing", "not found"), ("invalid", "invalid JSON"), ("keys", "missing key"),
    ("unequal", "unequal lengths"), ("many_nan", "NaN/inf"), ("concat", "strictly increasing"),
    ("short", "at least 10"), ("range", "fractions"), ("negative", "fractions")])
def test_bad_input_is_one_error_line(tmp_path, case, needle):
    obj = _bad_cases()[case]
    path = tmp_path / "h.json" if obj is None else _write(tmp_path, "h.json", obj)
    with pytest.raises(UserError, match=needle):
        load_history(path)
    if case in ("missing", "concat"):  # the CLI path: one line, exit 2, no traceback
        res = _run("analyze_100k.py", "--history", str(path))
        assert res.returncode == 2
        assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1
        assert "Traceback" not in res.stderr and needle in res.stderr


def test_accuracies_in_percent_are_read_as_fractions_with_a_warning(tmp_path):
    good = make_history(n=40, eval_every=4)
    pct = {**good, "mlm_acc": [100 * a for a in good["mlm_acc"]],
           "eval_mlm_acc": [100 * a for a in good["eval_mlm_acc"]],
           "eval_stderr": [100 * e for e in good["eval_stderr"]]}
    h = load_history(_write(tmp_path, "h.json", pct))
    ref = load_history(_write(tmp_path, "g.json", good))
    assert np.allclose(h.train["mlm_acc"], ref.train["mlm_acc"])
    assert np.allclose(h.eval["eval_mlm_acc"], ref.eval["eval_mlm_acc"])
    assert np.allclose(h.eval["eval_stderr"], ref.eval["eval_stderr"])
    assert [w.split(": ", 1)[1].split(" accuracies")[0] for w in h.warnings] == ["train", "eval"]
    assert all("read as percentages" in w for w in h.warnings)
    # an NSP column already in fractions beside percent MLM accuracies stays as it is
    nsp = {**pct, "nsp_acc": [0.5 + 0.001 * i for i in range(len(pct["mlm_acc"]))]}
    h = load_history(_write(tmp_path, "n.json", nsp))
    assert h.train["nsp_acc"].tolist() == nsp["nsp_acc"]


@pytest.mark.parametrize(("series", "value"), [("train", 1.2), ("train", -0.1),
                                               ("eval", 1.2), ("percent", 130.0)])
def test_one_accuracy_out_of_range_is_refused_not_read_as_percent(tmp_path, series, value):
    """Issue 25 item 5: one value above 1 in a fraction series (or a negative one, or one above
    100 in a percent series) is one error naming the file, key, step and value; the series as
    a whole (its median) decides whether it is in percent, never one value."""
    good = make_history(n=40, eval_every=4)
    key = "eval_mlm_acc" if series == "eval" else "mlm_acc"
    steps = good["eval_steps" if series == "eval" else "steps"]
    h = {**good, key: list(good[key])}
    if series == "percent":
        h[key] = [100 * a for a in h[key]]
    h[key][5] = value
    path = _write(tmp_path, "h.json", h)
    with pytest.raises(UserError) as exc:
        load_history(path)
    message = str(exc.value)
    for needle in (str(path), key, f"step {steps[5]:g}", f"is {value:g}", "fractions"):
        assert needle in message, (needle, message)
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize(("meta", "needle"), [
    ([1, 2], "'meta' is a list"), ("run a", "'meta' is a string"),
    ({"source": "x", "config": [1]}, "'meta.config' is a list"),
    ({"source": "x", "config": "cfg"}, "'meta.config' is a string")])
def test_meta_of_the_wrong_type_is_one_warning(tmp_path, meta, needle):
    """Issue 25 item 13: a ``meta`` (or ``meta.config``) that is not an object is ignored with
    one warning line, which the analysis front ends print."""
    path = _write(tmp_path, "h.json", {**make_history(n=40), "meta": meta})
    h = load_history(path)
    assert [w for w in h.warnings if "meta" in w] == h.warnings and len(h.warnings) == 1
    assert needle in h.warnings[0] and str(path) in h.warnings[0]
    assert h.meta == ({"source": "x"} if isinstance(meta, dict) else {})
    for absent in (None, {"source": "x", "config": None}):  # null is no meta, no warning
        assert load_history(_write(tmp_path, "n.json", {**make_history(n=40),
                                                        "meta": absent})).warnings == []


def test_meta_warning_is_printed_by_the_analysis_cli(tmp_path, capsys):
    import analyze_100k

    path = _write(tmp_path, "h.json", {**make_history(n=40), "meta": {"config": [1]}})
    with pytest.raises(SystemExit) as exc:
        run_cli(analyze_100k.main, ["--history", str(path), "--n-boot", "0",
                                    "--output", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert exc.value.code == 0, err
    assert f"warning: {path}: 'meta.config' is a list, not an object" in err


def test_cli_label_mismatch_and_eval_missing(tmp_path):
    p = _write(tmp_path, "h.json", make_history(n=50))
    res = _run("analyze_100k.py", "--history", str(p), "--labels", "a", "b")
    assert res.returncode == 2 and "--labels" in res.stderr
    res = _run("analyze_100k.py", "--history", str(p), "--series", "eval")
    assert res.returncode == 2 and "held-out" in res.stderr


def test_example_script_runs(tmp_path):
    p = _write(tmp_path, "h.json", make_history(n=200))
    res = _run("examples/load_and_analyze.py", "--history", str(p), "--n-boot", "20")
    assert res.returncode == 0, res.stderr
    assert "forecast accuracy at step 100,000 (planned last step" in res.stdout
    value = float(res.stdout.split("schedule): ")[1].split()[0])
    assert math.isfinite(value) and 0 < value < 1


@pytest.mark.parametrize("value", [0.0, 0.05])
def test_constant_accuracy_reports_n_a_instead_of_a_traceback(tmp_path, value):
    """Issue 14 item 5: a constant (or all-zero) accuracy series gives undefined correlations;
    the report prints n/a and the JSON is still written."""
    n = 12
    history = tmp_path / "h.json"
    history.write_text(json.dumps({"steps": list(range(10, 10 * n + 1, 10)),
                                   "mlm_acc": [value] * n,
                                   "loss": [6.0 - 0.01 * i for i in range(n)],
                                   "lr": [1e-3] * n}))
    out = tmp_path / "a.json"
    proc = subprocess.run([sys.executable, str(ROOT / "analyze_100k.py"), "--history",
                           str(history), "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    assert "Pearson r = n/a" in proc.stdout and "series is constant" in proc.stdout
    # one line of our own instead of scipy / statsmodels / pymannkendall warnings
    assert proc.stderr.strip().splitlines() == [
        f"warning: the train accuracy series is constant ({value:.4g} at every point): "
        "correlations, trend tests and fits are undefined (n/a)"]
    result = json.loads(out.read_text())
    assert result["pearson"]["r"] is None and result["mlm_stats"]["max"] == value
