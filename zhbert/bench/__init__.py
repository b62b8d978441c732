"""What the timing benchmarks in ``benchmarks/`` share: the measurement environment
(:mod:`zhbert.bench.env`: machine description, device sync, the matmul peak MFU is measured
against, the demo corpus) and the models they time (:mod:`zhbert.bench.models`: presets as the
benchmarks build them, our model beside its transformers counterpart with identical weights, and
the FLOPs counted for them).

This package sits above the trainer and the models and nothing in ``zhbert`` imports it
(``[tool.importlinter]`` in pyproject.toml).
"""
