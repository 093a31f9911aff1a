"""Quantizer names -> constructors. Presets name a quantizer in `model.quantizer`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from svqcast.config import model_config
from svqcast.config_schema import ModelConfig
from svqcast.errors import UsageError
from svqcast.models.quantizers.base import Quantizer
from svqcast.models.quantizers.svq import SVQ

#: (complete, checked [model] section, latent channels) -> quantizer
Builder = Callable[[ModelConfig, int], Quantizer]
_REGISTRY: dict[str, Builder] = {}


def register_quantizer(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        return fn

    return deco


def _svq(m: ModelConfig, dim: int, frozen: bool) -> SVQ:
    return SVQ(
        dim,
        codebook_size=m.codebook_size,
        middim=m.middim,
        nonlinear=m.nonlinear,
        hid_relu=m.hid_relu,
        out_relu=m.out_relu,
        freeze_codebook=frozen,
        init=m.codebook_init,
    )


@register_quantizer("svq")
def _svq_learnable(m: ModelConfig, dim: int) -> Quantizer:
    return _svq(m, dim, frozen=False)


@register_quantizer("svq-frozen")
def _svq_frozen(m: ModelConfig, dim: int) -> Quantizer:
    return _svq(m, dim, frozen=True)


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


def build_quantizer(model_cfg: ModelConfig | Mapping[str, Any], dim: int) -> Quantizer | None:
    """Build the quantizer named by `model.quantizer` for `dim`-channel latents, from a
    `[model]` section (a dict is completed with the defaults and checked first)."""
    m = model_config(model_cfg)
    name = m.quantizer.lower()
    if name in {"", "none"}:
        return None
    _load_optional()
    if name not in _REGISTRY:
        raise UsageError(
            f"unknown quantizer '{name}'; choose one of: none, {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](m, dim)
