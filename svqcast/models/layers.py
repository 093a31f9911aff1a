"""Small building blocks shared by the backbone and the translators.

Written from the behaviour described in docs/reference/official-behaviour.md §2 (the
official code takes these from timm; timm is deliberately not a dependency of svqcast).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def trunc_normal_(tensor: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    """timm's `trunc_normal_(t, std=.02)`: the bounds are absolute (+-2), i.e. ~100 std, so
    in practice this is an untruncated N(0, std^2). Kept as a helper so every block says
    which init the official code used."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0, b=2.0)


def init_conv_fan_out(module: nn.Conv2d) -> None:
    """Conv2d ~ N(0, sqrt(2 / fan_out)), fan_out = k_h * k_w * out / groups, bias 0 (the
    `_init_weights` of gSTA, VAN, MogaNet, ConvNeXt, ConvMixer, HorNet, Uniformer CBlock)."""
    fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
    with torch.no_grad():
        module.weight.normal_(0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            module.bias.zero_()


def init_linear_trunc(module: nn.Linear) -> None:
    """Linear: trunc_normal(.02) weight, zero bias (every transformer-style block)."""
    trunc_normal_(module.weight, std=0.02)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def init_norm(module: nn.Module) -> None:
    """Norm layers: weight 1, bias 0 (equal to PyTorch's defaults; spelled out for clarity)."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if isinstance(weight, torch.Tensor):
        nn.init.ones_(weight)
    if isinstance(bias, torch.Tensor):
        nn.init.zeros_(bias)


_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)


def make_init(
    *, linear: bool = True, conv: bool = True, norm: bool = True
) -> Callable[[nn.Module], None]:
    """An `_init_weights` for `module.apply`: which layer kinds get the official custom init."""

    def _init(m: nn.Module) -> None:
        if linear and isinstance(m, nn.Linear):
            init_linear_trunc(m)
        elif conv and isinstance(m, nn.Conv2d):
            init_conv_fan_out(m)
        elif norm and isinstance(m, _NORMS):
            init_norm(m)

    return _init


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth: drop whole residual branches, rescale survivors by
    1/keep so the expectation is unchanged (timm's `drop_path`, scale_by_keep=True)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth as a module (no parameters)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p:.4f}"


def maybe_drop_path(p: float) -> nn.Module:
    """The official blocks use `DropPath(p) if p > 0 else Identity()`."""
    return DropPath(p) if p > 0.0 else nn.Identity()


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (timm's LayerNorm2d: permute to
    channels-last, `F.layer_norm`, permute back)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ChannelsFirstLayerNorm(nn.Module):
    """HorNet's hand-written channels-first LayerNorm (mean/var over dim 1). Parameters
    `weight`, `bias` are plain ones/zeros like the vendored layer, whose init is untouched."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class Mlp(nn.Module):
    """Token MLP `fc1 -> act -> drop -> fc2 -> drop` on (..., C) (timm's `Mlp`)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ConvMlp(nn.Module):
    """The same MLP with 1x1 convolutions on NCHW (PoolFormer, Uniformer CBlock, ConvNeXt)."""

    def __init__(self, dim: int, hidden: int, out: int | None = None, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, out or dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def from_tokens(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), the official `reshape(B, H, W, C).permute(0, 3, 1, 2)`."""
    b, _, c = x.shape
    return x.reshape(b, h, w, c).permute(0, 3, 1, 2)
