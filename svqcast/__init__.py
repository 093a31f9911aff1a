"""svqcast: spatiotemporal forecasting with Sparse Vector Quantization (SVQ).

Everything in :data:`__all__` is the public Python API. The names are resolved lazily on
first access (PEP 562), so that `import svqcast` stays cheap: the CLI's `--help` must not
pay for importing torch. `dir(svqcast)` lists them all.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from svqcast._version import __version__

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "build_model": "svqcast.api",
    "load_model": "svqcast.api",
    "load_config": "svqcast.api",
    "train": "svqcast.api",
    "evaluate": "svqcast.api",
    "predict": "svqcast.api",
    "get_split_dataset": "svqcast.api",
    "prepare_dataset": "svqcast.api",
    "convert_openstl": "svqcast.api",
    "Forecaster": "svqcast.forecast.forecaster",
    "DataSpec": "svqcast.data.spec",
    "SimVP": "svqcast.models.simvp",
    "ModelOutput": "svqcast.models.simvp",
    "Quantizer": "svqcast.models.quantizers.base",
    "QuantizerOutput": "svqcast.models.quantizers.base",
    "SVQ": "svqcast.models.quantizers.svq",
    "SVQRaw": "svqcast.models.quantizers.svq_raw",
    "SvqcastError": "svqcast.errors",
    "UsageError": "svqcast.errors",
    "DataError": "svqcast.errors",
    "NetworkError": "svqcast.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what IDEs and type checkers see; nothing is imported at run time
    from svqcast.api import build_model as build_model
    from svqcast.api import convert_openstl as convert_openstl
    from svqcast.api import evaluate as evaluate
    from svqcast.api import get_split_dataset as get_split_dataset
    from svqcast.api import load_config as load_config
    from svqcast.api import load_model as load_model
    from svqcast.api import predict as predict
    from svqcast.api import prepare_dataset as prepare_dataset
    from svqcast.api import train as train
    from svqcast.data.spec import DataSpec as DataSpec
    from svqcast.errors import DataError as DataError
    from svqcast.errors import NetworkError as NetworkError
    from svqcast.errors import SvqcastError as SvqcastError
    from svqcast.errors import UsageError as UsageError
    from svqcast.forecast.forecaster import Forecaster as Forecaster
    from svqcast.models.quantizers.base import Quantizer as Quantizer
    from svqcast.models.quantizers.base import QuantizerOutput as QuantizerOutput
    from svqcast.models.quantizers.svq import SVQ as SVQ
    from svqcast.models.quantizers.svq_raw import SVQRaw as SVQRaw
    from svqcast.models.simvp import ModelOutput as ModelOutput
    from svqcast.models.simvp import SimVP as SimVP


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'svqcast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
