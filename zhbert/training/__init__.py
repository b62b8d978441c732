"""The hand-written training loop and its parts (schedule, optimizer, checkpoints, history, eval).

``zhbert.training.loop.train(cfg, run_dir, resume=..., overwrite=...)`` is the entry point that
``main_train.py`` calls; see docs/TRAINING.md.
"""
