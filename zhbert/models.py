"""Build the pretraining model a :class:`~zhbert.model_config.BertConfig` names.

The one module that knows both architectures: ``zhbert.model`` (the original post-LN BERT) and
``zhbert.modern`` (the modern encoder, which reuses the BERT's output type) import neither this
module nor each other's builder, so the model modules form no import cycle.
"""

from __future__ import annotations

from torch import nn

from zhbert.model import BertForPretraining
from zhbert.model_config import BertConfig
from zhbert.modern import ModernBertForPretraining

#: the module class of every architecture ``BertConfig.arch`` may name
MODEL_CLASSES: dict[str, type[nn.Module]] = {
    "bert": BertForPretraining,
    "modern": ModernBertForPretraining,
}


def build_model(config: BertConfig) -> nn.Module:
    """The pretraining model ``config.arch`` names (same forward contract for both)."""
    return MODEL_CLASSES[config.arch](config)


__all__ = ["MODEL_CLASSES", "build_model"]
