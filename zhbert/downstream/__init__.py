"""Downstream tasks for a pretrained checkpoint: the task registry, the scorers and the baselines.

:mod:`zhbert.downstream.tasks` holds ``TASKS`` (data, splits and scorer of each task; torch-free),
:mod:`zhbert.downstream.scoring` the scorers, :mod:`zhbert.downstream.baselines` the non-neural
baselines on the same splits. docs/DOWNSTREAM.md describes the tasks, splits and results.
"""
