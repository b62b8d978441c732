"""zhbert: pretrain a small Chinese BERT and study how its MLM accuracy grows with training steps.

Importing the package has no side effects; the submodules hold the logic:
``corpus`` (data preparation), ``model``, ``masking``, ``training``, ``analysis``, ``plots``.
"""

__version__ = "0.1.0"
