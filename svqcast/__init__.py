"""svqcast: spatiotemporal forecasting with Sparse Vector Quantization (SVQ).

The public Python API is re-exported here lazily, so that `import svqcast` stays cheap
(the CLI's `--help` must not pay for importing torch).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "build_model", "load_model", "load_config", "train", "evaluate"]


def __getattr__(name: str) -> Any:  # PEP 562 lazy exports
    if name in {"build_model", "load_model", "load_config", "train", "evaluate", "predict"}:
        from svqcast import api

        return getattr(api, name)
    raise AttributeError(f"module 'svqcast' has no attribute {name!r}")
