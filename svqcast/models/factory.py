"""Config -> model. `build_model_from_config(cfg)` reads `cfg["model"]` (docs/presets.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from svqcast.errors import UsageError
from svqcast.models.quantizers.registry import build_quantizer
from svqcast.models.simvp import SimVP
from svqcast.models.translators import build_translator, canonical_name

#: keys of [model] a SimVP build reads (the rest are quantizer keys, read by the registry)
_TRANSLATOR_OPTIONS = ("swin_shift_mask", "fused_attn")


def _shape(model_cfg: Mapping[str, Any]) -> tuple[int, int, int, int]:
    shape = model_cfg.get("in_shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != 4 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise UsageError(f"model.in_shape must be 4 positive integers [T, C, H, W], got {shape!r}")
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def build_simvp(model_cfg: Mapping[str, Any]) -> SimVP:
    """Build SimVP (+ quantizer) from the [model] section of a config."""
    t, c, h, w = _shape(model_cfg)
    hid_s, hid_t = int(model_cfg["hid_S"]), int(model_cfg["hid_T"])
    n_s, n_t = int(model_cfg["N_S"]), int(model_cfg["N_T"])
    if n_s < 2 or n_s % 2:
        raise UsageError(f"model.N_S must be an even number >= 2, got {n_s}")
    stride = 2 ** (n_s // 2)  # H, W need not divide: SimVP pads to the stride and crops back
    out_frames = int(model_cfg.get("out_frames", t))
    if out_frames < 1:
        raise UsageError(f"model.out_frames must be >= 1, got {out_frames}")
    name = canonical_name(str(model_cfg.get("translator", "gsta")))
    options = {k: model_cfg[k] for k in _TRANSLATOR_OPTIONS if k in model_cfg}
    try:
        translator = build_translator(
            name,
            channel_in=t * hid_s,
            channel_hid=hid_t,
            n_blocks=n_t,
            resolution=(-(-h // stride), -(-w // stride)),
            mlp_ratio=float(model_cfg.get("mlp_ratio", 8.0)),
            drop=float(model_cfg.get("drop", 0.0)),
            drop_path=float(model_cfg.get("drop_path", 0.1)),
            options=options,
        )
    except ValueError as exc:
        raise UsageError(f"cannot build translator '{name}': {exc}") from None
    quantizer = build_quantizer(model_cfg, hid_s)
    if bool(model_cfg.get("freeze_projection", False)):
        _freeze_projection(quantizer)
    return SimVP(
        (t, c, h, w),
        out_frames,
        hid_S=hid_s,
        hid_T=hid_t,
        N_S=n_s,
        translator=translator,
        quantizer=quantizer,
        post_vq=bool(model_cfg.get("post_vq", False)),
        spatio_kernel_enc=int(model_cfg.get("spatio_kernel_enc", 3)),
        spatio_kernel_dec=int(model_cfg.get("spatio_kernel_dec", 3)),
        translator_name=name,
        residual=str(model_cfg.get("residual", "none")),
        residual_period=int(model_cfg.get("residual_period", 24)),
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


def build_model_from_config(cfg: Mapping[str, Any]) -> nn.Module:
    """Build the model a resolved config describes (`cfg["model"]`)."""
    model_cfg = cfg.get("model", cfg)
    arch = str(model_cfg.get("arch", "simvp")).lower()
    if arch != "simvp":
        raise UsageError(f"unknown model.arch '{arch}'; svqcast builds 'simvp'")
    return build_simvp(model_cfg)
