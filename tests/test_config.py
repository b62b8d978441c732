"""Config dataclasses, presets, key=value overrides, JSON round trip, docs table in sync."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zhbert.config import (
    PRESETS,
    TrainConfig,
    apply_overrides,
    build_config,
    from_dict,
    get_preset,
    validate,
)
from zhbert.config_table import TABLE_BEGIN, TABLE_END, field_table
from zhbert.errors import UserError
from zhbert.model import paper_parameter_counts

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_round_trips(name):
    cfg = get_preset(name)
    validate(cfg)
    again = from_dict(json.loads(cfg.to_json()))
    assert again == cfg and again.preset == name


def test_paper_preset_matches_the_original_setup():
    c = get_preset("paper")
    m, d, o, r = c.model, c.data, c.optim, c.run
    assert (m.hidden_size, m.num_layers, m.num_heads, m.intermediate_size) == (512, 12, 8, 2048)
    assert m.use_nsp and d.format == "pairs" and d.seq_len == 128 and m.dropout == 0.1
    assert (d.batch_size, o.grad_accum, o.lr, o.weight_decay) == (32, 4, 5e-5, 0.01)
    assert (o.warmup_steps, c.total_steps, r.max_steps, o.clip_norm) == (2000, 100_000, 100_000, 1.0)
    assert (r.log_interval, r.save_interval, r.eval_interval) == (100, 2000, 1000)


def test_efficient_differs_only_in_the_recipe():
    p, e = get_preset("paper"), get_preset("efficient")
    assert e.model.hidden_size == p.model.hidden_size and not e.model.use_nsp
    assert e.data.format == "packed" and e.data.whole_word_mask and e.data.mask_rate == 0.3
    assert e.data.eval_mask_rate == 0.15 and e.optim.lr > p.optim.lr
    assert e.run.max_steps == p.run.max_steps


def test_overrides_parse_and_type_check():
    cfg = get_preset("smoke")
    apply_overrides(cfg, ["optim.lr=3e-4", "max_steps=7", "data.whole_word_mask=true",
                          "run.milestones=[2, 4]", "data.corpus_dir=123", "run.precision=bf16",
                          "optim.weight_decay=0"])
    assert cfg.optim.lr == 3e-4 and cfg.run.max_steps == 7 and cfg.data.whole_word_mask is True
    assert cfg.run.milestones == [2, 4] and cfg.data.corpus_dir == "123"
    assert cfg.optim.weight_decay == 0.0 and isinstance(cfg.optim.weight_decay, float)
    apply_overrides(cfg, ["run.milestones=3,6"])
    assert cfg.run.milestones == [3, 6]


@pytest.mark.parametrize("item, message", [
    ("optim.lr=fast", "expected a number"),
    ("run.max_steps=2.5", "expected an integer"),
    ("data.whole_word_mask=maybe", "expected true/false"),
    ("nosuchkey=1", "unknown config key"),
    ("optim.nosuch=1", "unknown config key"),
    ("training.lr=1", "unknown config section"),
    ("optim.lr", "key=value"),
])
def test_bad_overrides_are_user_errors(item, message):
    with pytest.raises(UserError, match=message):
        apply_overrides(get_preset("smoke"), [item])


def test_invalid_values_and_unknown_preset():
    with pytest.raises(UserError, match="unknown preset"):
        get_preset("huge")
    with pytest.raises(UserError, match="num_heads"):
        build_config("smoke", overrides=["model.num_heads=3"])
    with pytest.raises(UserError, match="use_nsp"):
        build_config("smoke", overrides=["model.use_nsp=true"])
    with pytest.raises(UserError, match="precision"):
        build_config("smoke", overrides=["run.precision=int8"])


def test_json_config_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"optim": {"lr": 0.002}, "run": {"max_steps": 3}}))
    cfg = build_config("smoke", f, ["run.max_steps=4"])
    assert cfg.optim.lr == 0.002 and cfg.run.max_steps == 4  # --set wins over the file
    f.write_text(json.dumps({"optim": {"lr": "x"}}))
    with pytest.raises(UserError, match="optim.lr"):
        build_config("smoke", f)
    f.write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON"):
        build_config("smoke", f)


def test_training_doc_has_the_current_field_table():
    """docs/TRAINING.md embeds field_table(); regenerate it when a field changes."""
    doc = (ROOT / "docs" / "TRAINING.md").read_text(encoding="utf-8")
    assert f"{TABLE_BEGIN}\n{field_table()}\n{TABLE_END}" in doc  # sync_doc_table() needs both
    for name in PRESETS:
        assert f"`{name}`" in doc
    assert "## Performance" in doc


def test_field_table_lists_every_field():
    table = field_table()
    cfg = TrainConfig()
    for section in ("model", "data", "optim", "run"):
        for key in vars(getattr(cfg, section)):
            assert re.search(rf"`{section}\.{key}`", table), key


def test_dry_run_paper_reports_the_original_vocabulary(capsys, tmp_path):
    import main_train

    rc = main_train.main(["--preset", "paper", "--dry-run", "--set",
                          f"data.corpus_dir={tmp_path / 'none'}"])
    out = capsys.readouterr().out
    assert rc == 0 and '"vocab_size": 10054' in out
    n = int(re.search(r"^parameters: (\d+)$", out, re.M).group(1))
    assert n == paper_parameter_counts()["untied_nsp"]
    assert abs(n - 48_398_152) / 48_398_152 < 0.02  # the original's count, within 2 %


def test_config_doc_examples():
    """The module's examples, among them config_changes: a key added to the config since a run
    was saved counts as its default, a key removed since is ignored (old runs resume and are
    recognised by make demo without spurious changes)."""
    import doctest

    import zhbert.config

    assert doctest.testmod(zhbert.config).failed == 0


def test_old_demo_history_has_no_setting_changes(tmp_path):
    """A history saved before run.time_budget_s existed, holding the since-removed
    run.step_delay_s, matches the current preset (run_demo's settings check)."""
    from helpers_scripts import load_script

    demo = load_script("examples/run_demo.py")
    no_budget = ["run.time_budget_s=0"]  # the demo preset has a budget since; its default is 0
    saved = build_config("demo", overrides=no_budget).to_dict()
    del saved["run"]["time_budget_s"]
    saved["run"]["step_delay_s"] = 0.0
    (tmp_path / "training_history.json").write_text(json.dumps({"meta": {"config": saved}}))
    wanted = build_config("demo", overrides=no_budget).to_dict()
    assert demo.settings_changes(tmp_path, wanted) == []
    wanted["run"]["time_budget_s"] = 60.0
    assert demo.settings_changes(tmp_path, wanted) == ["run.time_budget_s: 0.0 -> 60.0"]
