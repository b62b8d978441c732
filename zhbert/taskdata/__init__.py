"""The labelled data the downstream tasks use, read from installed packages, and its fixed splits.

Torch-free and below both the corpus pipeline and :mod:`zhbert.downstream`: the corpus pipeline
imports :mod:`zhbert.taskdata.heldout` to leave every dev and test sentence of every task out of
the pretraining corpus; :mod:`zhbert.downstream.tasks` builds the task registry on
:mod:`zhbert.taskdata.splits`. Nothing here downloads anything (docs/DOWNSTREAM.md).
"""
