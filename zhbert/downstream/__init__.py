"""Downstream tasks for a pretrained checkpoint: the task registry, the scorers, the baselines,
and fine-tuning through transformers.

:mod:`zhbert.downstream.tasks` holds ``TASKS`` (data, splits and scorer of each task; torch-free),
:mod:`zhbert.downstream.scoring` the scorers, :mod:`zhbert.downstream.baselines` the non-neural
baselines on the same splits; :mod:`zhbert.downstream.finetune` fine-tunes an export or a
checkpoint (:mod:`~zhbert.downstream.source`, :mod:`~zhbert.downstream.encode`) and
:mod:`zhbert.downstream_schema` owns the per-checkpoint scores ``RUN/downstream_scores.json``
(torch-free). docs/DOWNSTREAM.md describes the tasks, splits and results.

Submodules import what they need; this package imports nothing, so that the torch-free modules
load without torch.
"""
