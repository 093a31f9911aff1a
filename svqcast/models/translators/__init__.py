"""The 13 translator families behind one registry: `TRANSLATORS[name](**kwargs)` or
`build_translator(name, ...)`. Importing this package registers every family."""

from svqcast.models.translators import convs, gsta, incepu, transformers  # noqa: F401  (registration)
from svqcast.models.translators.base import (
    ALIASES,
    SUBBLOCKS,
    TRANSLATORS,
    BlockSpec,
    MetaBlock,
    MidMetaNet,
    build_translator,
    canonical_name,
)
from svqcast.models.translators.incepu import MidIncepNet

TRANSLATOR_NAMES = (
    "gsta", "incepu", "swin", "vit", "poolformer", "uniformer", "mlpmixer",
    "convmixer", "convnext", "van", "hornet", "moganet", "tau",
)

__all__ = [
    "ALIASES", "SUBBLOCKS", "TRANSLATORS", "TRANSLATOR_NAMES", "BlockSpec", "MetaBlock",
    "MidIncepNet", "MidMetaNet", "build_translator", "canonical_name",
]
