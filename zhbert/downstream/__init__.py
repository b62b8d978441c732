"""Downstream tasks: fine-tune a run's export or checkpoints on labelled Chinese data.

Submodules import what they need; this package imports nothing, so that the torch-free record
format (:mod:`zhbert.downstream.schema`) loads without torch.
"""
