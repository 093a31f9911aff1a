"""The Python API the CLI calls. Importable from `svqcast` (lazily)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from svqcast.config import load_config


def build_model(
    preset_or_config: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
):
    """Build the `torch.nn.Module` of a preset, TOML file or config dict.

    The module maps normalised `(B, T_in, C, H, W)` to `(B, T_out, C, H, W)`; `overrides`
    takes the dotted keys of `--set`, e.g. `{"model.codebook_size": 4096}`.
    """
    from svqcast.models.factory import build_model_from_config

    return build_model_from_config(load_config(preset_or_config, overrides))


def load_model(ref: str | Path | None = None, *, device: str = "cpu"):
    """A `Forecaster` for a zoo name, `hf://org/repo@rev` or a checkpoint/run directory
    (None: the zoo's default model); `.predict(xarray obj, steps=...)` -> CF xarray.Dataset."""
    from svqcast.forecast import load_model as _load_model

    return _load_model(ref, device=device)


__all__ = ["build_model", "load_config", "load_model"]
