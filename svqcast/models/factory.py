"""Config -> model. `build_model_from_config(cfg)` reads the typed `[model]` section
(`svqcast.config.model_config`: `_defaults.toml` merged under it; docs/presets.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from svqcast.config import model_config
from svqcast.config_schema import ModelConfig, SvqcastConfig
from svqcast.errors import UsageError
from svqcast.models.quantizers.registry import build_quantizer
from svqcast.models.simvp import SimVP
from svqcast.models.translators import build_translator, canonical_name


def _shape(shape: Any) -> tuple[int, int, int, int]:
    if not isinstance(shape, (list, tuple)) or len(shape) != 4 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise UsageError(f"model.in_shape must be 4 positive integers [T, C, H, W], got {shape!r}")
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def build_simvp(model_cfg: ModelConfig | Mapping[str, Any]) -> SimVP:
    """Build SimVP (+ quantizer) from the [model] section of a config (a dict is completed
    with the defaults and checked first)."""
    m = model_config(model_cfg)
    t, c, h, w = _shape(m.in_shape)
    hid_s, hid_t = m.hid_S, m.hid_T
    n_s, n_t = m.N_S, m.N_T
    if n_s < 2 or n_s % 2:
        raise UsageError(f"model.N_S must be an even number >= 2, got {n_s}")
    stride = 2 ** (n_s // 2)  # H, W need not divide: SimVP pads to the stride and crops back
    out_frames = m.out_frames
    if out_frames < 1:
        raise UsageError(f"model.out_frames must be >= 1, got {out_frames}")
    name = canonical_name(m.translator)
    options = {"swin_shift_mask": m.swin_shift_mask, "fused_attn": m.fused_attn}
    try:
        translator = build_translator(
            name,
            channel_in=t * hid_s,
            channel_hid=hid_t,
            n_blocks=n_t,
            resolution=(-(-h // stride), -(-w // stride)),
            mlp_ratio=m.mlp_ratio,
            drop=m.drop,
            drop_path=m.drop_path,
            options=options,
        )
    except ValueError as exc:
        raise UsageError(f"cannot build translator '{name}': {exc}") from None
    quantizer = build_quantizer(m, hid_s)
    if m.freeze_projection:
        _freeze_projection(quantizer)
    return SimVP(
        (t, c, h, w),
        out_frames,
        hid_S=hid_s,
        hid_T=hid_t,
        N_S=n_s,
        translator=translator,
        quantizer=quantizer,
        post_vq=m.post_vq,
        spatio_kernel_enc=m.spatio_kernel_enc,
        spatio_kernel_dec=m.spatio_kernel_dec,
        translator_name=name,
        residual=m.residual,
        residual_period=m.residual_period,
    )


def _freeze_projection(quantizer: nn.Module | None) -> None:
    """Table 14 / `ablation_appendix/freeze_*`: the SVQ projection stays at its random init.
    The official trainer sets requires_grad=False at the start of every epoch, i.e. before
    the first update; doing it at build time is equivalent and makes the parameter counts
    (`trainable_params`) honest. The parameters stay in the state dict."""
    proj = getattr(quantizer, "proj", None)
    if not isinstance(proj, nn.Module):
        raise UsageError("model.freeze_projection needs an SVQ quantizer (model.quantizer = svq or svq-frozen)")
    for p in proj.parameters():
        p.requires_grad_(False)


def build_model_from_config(cfg: Mapping[str, Any] | SvqcastConfig | ModelConfig) -> nn.Module:
    """Build the model a config describes: a whole config (dict or typed tree), or its
    `[model]` section alone; keys it lacks take the `_defaults.toml` values."""
    m = model_config(cfg)
    arch = m.arch.lower()
    if arch != "simvp":
        raise UsageError(f"unknown model.arch '{arch}'; svqcast builds 'simvp'")
    return build_simvp(m)
