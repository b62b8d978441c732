"""A fine-tune's result as a record of ``RUN/downstream_scores.json`` (torch-free).

The result is the dict :func:`zhbert.downstream.finetune.finetune` returns (``result.json``);
the record's format is owned by :mod:`zhbert.downstream_schema`. ``examples/finetune.py
--record`` and the downstream study (``studies/downstream_study.py``) both write through here.
"""

from __future__ import annotations

from pathlib import Path

#: the fine-tuning settings that make two fine-tunes of one checkpoint comparable
BUDGET_KEYS = ("epochs", "max_steps", "batch_size", "lr", "max_length")


def budget_name(result: dict) -> str:
    """The record's budget: the settings that decide how much a fine-tune learns, as one name.

    >>> budget_name({"config": {"epochs": 1, "max_steps": 0, "batch_size": 32, "lr": 0.001,
    ...              "max_length": 64}, "examples": {"train": 2000}})
    'train2000-epochs1-max_steps0-batch_size32-lr0.001-max_length64'
    """
    cfg = result["config"]
    return "-".join([f"train{result['examples']['train']}",
                     *(f"{k}{cfg[k]}" for k in BUDGET_KEYS if k in cfg)])


def score_record(result: dict, out: Path | None = None) -> dict:
    """The ``downstream_scores.json`` record of a fine-tune's result (its test score);
    ``out`` is the folder holding its ``result.json``, when it was written.

    >>> r = {"task": "cws", "pretrain_step": 500, "init": "pretrained", "seed": 1,
    ...      "metric": "word_f1", "test": {"score": 0.9}, "dev": {"score": 0.8},
    ...      "config": {"epochs": 1}, "examples": {"train": 10}, "updates": 1, "time_s": 2.0,
    ...      "model": "runs/demo/checkpoints/step_500"}
    >>> rec = score_record(r)
    >>> rec["step"], rec["score"], rec["budget"], "checkpoint" in rec
    (500, 0.9, 'train10-epochs1', False)
    """
    record = {"task": result["task"], "step": int(result["pretrain_step"] or 0),
              "init": result["init"], "seed": int(result["seed"]), "split": "test",
              "metric": result["metric"], "score": float(result["test"]["score"]),
              "dev_score": float(result["dev"]["score"]), "budget": budget_name(result),
              "train_examples": int(result["examples"]["train"]),
              "optimizer_steps": int(result["updates"]), "elapsed_s": float(result["time_s"]),
              "scores": result["test"], "model": str(result["model"])}
    if out is not None:
        record["checkpoint"] = str(Path(out) / "result.json")
    if result.get("git_commit"):
        record["git_commit"] = str(result["git_commit"])
    return record


__all__ = ["BUDGET_KEYS", "budget_name", "score_record"]
