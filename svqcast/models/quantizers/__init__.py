"""Quantizers behind one interface: `build_quantizer(kind, dim, **options)`.

`svq` and `svq-frozen` live here; SVQ-raw and the VQ baselines register themselves in
the same table (see `registry.py`).
"""

from svqcast.models.quantizers.base import Quantizer, QuantizerOutput
from svqcast.models.quantizers.svq import SVQ

__all__ = ["Quantizer", "QuantizerOutput", "SVQ"]
