"""`describe`: parameter counts, FLOPs and shapes of a config's model (no weights needed).

The model is built on the meta device, so describing a full-size model costs no memory
and no compute. Two FLOP numbers are reported:

* `flops`: the paper / OpenSTL convention (fvcore on `torch.ones(1, T, C, H, W)`, one model
  call), with SVQ counted in its official *materialised* form (W = MLP(x), then W @ M);
  this is what the paper's Table 12 and docs/reference/official-behaviour.md §8 list.
* `flops_fused`: what svqcast actually executes (the fused SVQ never builds W), counted
  exactly: unlike fvcore it includes convolutions with `padding="same"` (ConvMixer's
  depthwise 11x11), which fvcore silently skips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from svqcast.config import list_presets, load_config, typed_config
from svqcast.config_schema import SvqcastConfig
from svqcast.models.factory import build_model_from_config
from svqcast.models.flops import count_flops
from svqcast.models.simvp import SimVP


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters incl. a frozen codebook, trainable ones); buffers excluded."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _set_fused(model: nn.Module, fused: bool) -> list[tuple[nn.Module, bool]]:
    changed: list[tuple[nn.Module, bool]] = []
    for m in model.modules():
        if hasattr(m, "fused") and isinstance(m.fused, bool):
            changed.append((m, m.fused))
            m.fused = fused
    return changed


def model_flops(
    model: nn.Module,
    in_shape: Iterable[int],
    *,
    fused: bool,
    fvcore_quirks: bool = True,
    device: str | torch.device = "meta",
) -> dict[str, Any]:
    """fvcore-convention FLOPs of ONE model call on a (1, T, C, H, W) input (T frames out),
    as OpenSTL counts them; an autoregressive forecast costs `model_calls` times this."""
    x = torch.ones((1, *in_shape), device=device)
    changed = _set_fused(model, fused)
    out_frames = getattr(model, "out_frames", None)
    if out_frames is not None:
        model.out_frames = int(x.shape[1])  # type: ignore[assignment]  # a plain int attribute (see above)
    try:
        report = count_flops(model, x, fvcore_quirks=fvcore_quirks)
    finally:
        for m, old in changed:
            m.fused = old  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors/modules only
        if out_frames is not None:
            model.out_frames = out_frames
    return {"total": report.total, "by_module": report.by_module, "by_op": report.by_op}


def _build_and_count(
    cfg: SvqcastConfig, in_shape: list[int], device: str
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    with torch.device(device):
        model = build_model_from_config(cfg)
    paper = model_flops(model, in_shape, fused=False, device=device)
    fused = model_flops(model, in_shape, fused=True, fvcore_quirks=False, device=device)
    return model, paper, fused


def describe_config(config: Mapping[str, Any] | SvqcastConfig) -> dict[str, Any]:
    """Summary of the model a config describes (what `svqcast models describe` prints)."""
    cfg = typed_config(config)
    in_shape = list(cfg.model.in_shape)
    try:
        model, paper, fused = _build_and_count(cfg, in_shape, "meta")
    except (RuntimeError, NotImplementedError):
        # Some third-party quantizers (vector-quantize-pytorch) call .item() or copy data
        # while building or running: count those on a real CPU model instead.
        model, paper, fused = _build_and_count(cfg, in_shape, "cpu")
    assert isinstance(model, SimVP)  # the only architecture (`arch` below)
    params, trainable = count_params(model)
    t, c, h, w = in_shape
    out_frames = cfg.model.out_frames
    quantizer = model.quantizer
    calls = 1 if out_frames <= t else -(-out_frames // t)
    return {
        "name": cfg.name or "custom",  # the loader always names a config; a bare dict is "custom"
        "arch": "simvp",
        "translator": model.translator_name,
        "quantizer": cfg.model.quantizer,
        "params": params,
        "trainable_params": trainable,
        "quantizer_params": count_params(quantizer)[0] if quantizer is not None else 0,
        "flops": paper["total"],
        "flops_fused": fused["total"],
        "flops_by_module": paper["by_module"],
        "flops_fused_by_module": fused["by_module"],
        "flops_convention": (
            "fvcore: 1 multiply-add = 1 flop; ONE model call (T_in frames out) on "
            "torch.ones(1, T, C, H, W) in eval mode; flops = official materialised SVQ"
        ),
        "input_shape": [1, t, c, h, w],
        "output_shape": [1, out_frames, c, h, w],
        "latent_shape": list(model.latent_shape),
        "model_calls": calls,
        "flops_fused_per_forecast": fused["total"] * calls,
    }


def describe(ref: str | Path | Mapping[str, Any], overrides: Any = None) -> dict[str, Any]:
    """`describe("weatherbench-s-t2m_gsta_svq", {"model.codebook_size": 4096})`."""

    return describe_config(load_config(ref, overrides))


def preset_rows() -> list[dict[str, Any]]:
    """One row per shipped preset: name, dataset, translator, quantizer, description."""

    rows = []
    for name in list_presets():
        cfg = typed_config(load_config(name))
        m = cfg.model
        rows.append(
            {
                "name": name,
                "dataset": cfg.data.dataset,
                "translator": m.translator,
                "quantizer": m.quantizer,
                "codebook_size": m.codebook_size if m.quantizer != "none" else None,
                "in_shape": list(m.in_shape),
                "out_frames": m.out_frames,
                "description": cfg.description,
            }
        )
    return rows
