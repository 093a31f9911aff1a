"""Quantizer names -> constructors. Presets name a quantizer in `model.quantizer`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from svqcast.errors import UsageError
from svqcast.models.quantizers.base import Quantizer
from svqcast.models.quantizers.svq import SVQ

Builder = Callable[[Mapping[str, Any], int], Quantizer]
_REGISTRY: dict[str, Builder] = {}


def register_quantizer(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        return fn

    return deco


def _svq(model_cfg: Mapping[str, Any], dim: int, frozen: bool) -> SVQ:
    return SVQ(
        dim,
        codebook_size=int(model_cfg.get("codebook_size", 10000)),
        middim=int(model_cfg.get("middim", 128)),
        nonlinear=bool(model_cfg.get("nonlinear", True)),
        hid_relu=bool(model_cfg.get("hid_relu", True)),
        out_relu=bool(model_cfg.get("out_relu", False)),
        freeze_codebook=frozen,
        init=str(model_cfg.get("codebook_init", "normal")),
    )


@register_quantizer("svq")
def _svq_learnable(model_cfg: Mapping[str, Any], dim: int) -> Quantizer:
    return _svq(model_cfg, dim, frozen=False)


@register_quantizer("svq-frozen")
def _svq_frozen(model_cfg: Mapping[str, Any], dim: int) -> Quantizer:
    return _svq(model_cfg, dim, frozen=True)


def quantizer_names() -> list[str]:
    _load_optional()
    return sorted(_REGISTRY)


def _load_optional() -> None:
    """Import modules that register more quantizers (SVQ-raw, VQ baselines) if present."""

    for mod in ("svqcast.models.quantizers.svq_raw", "svqcast.models.quantizers.baselines"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise


def build_quantizer(model_cfg: Mapping[str, Any], dim: int) -> Quantizer | None:
    """Build the quantizer named by `model_cfg["quantizer"]` for `dim`-channel latents."""
    name = str(model_cfg.get("quantizer", "none")).lower()
    if name in {"", "none"}:
        return None
    _load_optional()
    if name not in _REGISTRY:
        raise UsageError(
            f"unknown quantizer '{name}'; choose one of: none, {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](model_cfg, dim)
