"""Training: the loop, schedules, resumable state, run logging and torchrun support.

Entry point: :func:`svqcast.train.loop.train` (also `svqcast.train(...)` and `svqcast train`).

`svqcast.train` is both this package and the public function of the API: once the package
is imported, Python binds the attribute `svqcast.train` to it, which would shadow the lazily
exported function. The package module is therefore callable and forwards to
:func:`svqcast.api.train`, so `svqcast.train(...)` works before and after the import.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from svqcast.api import train as _train

        return _train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

from svqcast.train.loop import train  # noqa: E402

__all__ = ["train"]
