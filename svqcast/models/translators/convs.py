"""Convolutional MetaFormer families: ConvMixer, ConvNeXt, PoolFormer, HorNet, MogaNet
(docs/reference/official-behaviour.md §2.4; attribute names follow the official/timm modules)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from svqcast.models.layers import (
    ChannelsFirstLayerNorm,
    ConvMlp,
    LayerNorm2d,
    init_conv_fan_out,
    init_linear_trunc,
    init_norm,
    make_init,
    maybe_drop_path,
    trunc_normal_,
)
from svqcast.models.translators.base import BlockSpec, register_subblock


# ----------------------------------------------------------------------------- ConvMixer
class ConvMixerBlock(nn.Module):
    """x = x + BN(GELU(dw 11x11 'same')); x = BN(GELU(1x1)) -- no residual on the second
    step and no drop path, exactly as the official block."""

    def __init__(self, dim: int, kernel_size: int = 11) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same")
        self.act_1 = nn.GELU()
        self.norm_1 = nn.BatchNorm2d(dim)
        self.conv_pw = nn.Conv2d(dim, dim, 1)
        self.act_2 = nn.GELU()
        self.norm_2 = nn.BatchNorm2d(dim)
        self.apply(make_init())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.norm_1(self.act_1(self.conv_dw(x)))
        return self.norm_2(self.act_2(self.conv_pw(x)))


@register_subblock("convmixer")
def convmixer_block(spec: BlockSpec) -> nn.Module:
    return ConvMixerBlock(spec.dim)


# ------------------------------------------------------------------------------ ConvNeXt
class ConvNeXtBlock(nn.Module):
    """dw 7x7 -> LayerNorm2d(1e-6) -> 1x1 MLP (x8, GELU) -> gamma (1e-6) -> DP + residual."""

    def __init__(self, spec: BlockSpec, ls_init_value: float = 1e-6) -> None:
        super().__init__()
        dim = spec.dim
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.mlp = ConvMlp(dim, int(spec.mlp_ratio * dim), drop=spec.drop)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))
        self.drop_path = maybe_drop_path(spec.drop_path)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init_conv_fan_out(m)
            elif isinstance(m, nn.LayerNorm):
                init_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.conv_dw(x)))
        return x + self.drop_path(self.gamma.reshape(1, -1, 1, 1) * y)


@register_subblock("convnext")
def convnext_block(spec: BlockSpec) -> nn.Module:
    return ConvNeXtBlock(spec)


# ----------------------------------------------------------------------------- PoolFormer
class Pooling(nn.Module):
    """avgpool 3x3 (count_include_pad=False) minus identity."""

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class PoolFormerBlock(nn.Module):
    def __init__(self, spec: BlockSpec, init_value: float = 1e-5) -> None:
        super().__init__()
        dim = spec.dim
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = Pooling(3)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * spec.mlp_ratio), drop=spec.drop)
        self.drop_path = maybe_drop_path(spec.drop_path)
        self.layer_scale_1 = nn.Parameter(init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(init_value * torch.ones(dim))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                init_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.token_mixer(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


@register_subblock("poolformer")
def poolformer_block(spec: BlockSpec) -> nn.Module:
    return PoolFormerBlock(spec)


# --------------------------------------------------------------------------------- HorNet
class GnConv(nn.Module):
    """Recursive gated convolution of order 4: widths [d/8, d/4, d/2, d]."""

    def __init__(self, dim: int, order: int = 4) -> None:
        super().__init__()
        self.order = order
        self.dims = [dim // 2**i for i in range(order)][::-1]
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        total = sum(self.dims)
        self.dwconv = nn.Conv2d(total, total, 7, padding=3, groups=total)
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.pws = nn.ModuleList([nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1)])
        self.scale = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self.proj_in(x)
        pwa, abc = torch.split(fused, [self.dims[0], sum(self.dims)], dim=1)
        dw = torch.split(self.dwconv(abc) * self.scale, self.dims, dim=1)
        x = pwa * dw[0]
        for i in range(self.order - 1):
            x = self.pws[i](x) * dw[i + 1]
        return self.proj_out(x)


class HorBlock(nn.Module):
    def __init__(self, spec: BlockSpec, init_value: float = 1e-6) -> None:
        super().__init__()
        dim = spec.dim
        hidden = int(spec.mlp_ratio * dim)
        self.norm1 = ChannelsFirstLayerNorm(dim, eps=1e-6)
        self.gnconv = GnConv(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, dim)
        self.gamma1 = nn.Parameter(init_value * torch.ones(dim))
        self.gamma2 = nn.Parameter(init_value * torch.ones(dim))
        self.drop_path = maybe_drop_path(spec.drop_path)
        for m in self.modules():  # the official _init_weights: Linear trunc, Conv fan-out
            if isinstance(m, nn.Linear):
                init_linear_trunc(m)
            elif isinstance(m, nn.Conv2d):
                init_conv_fan_out(m)
            elif isinstance(m, nn.LayerNorm):
                init_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1[:, None, None] * self.gnconv(self.norm1(x)))
        y = self.norm2(x.permute(0, 2, 3, 1))
        y = self.gamma2 * self.pwconv2(self.act(self.pwconv1(y)))
        return x + self.drop_path(y.permute(0, 3, 1, 2))


@register_subblock("hornet")
def hornet_block(spec: BlockSpec) -> nn.Module:
    return HorBlock(spec)


# -------------------------------------------------------------------------------- MogaNet
class MultiOrderDWConv(nn.Module):
    """dw 5x5 on all channels; on the [1, 3, 4]/8 channel split, dw 5x5 dilation 2 on the
    3/8 part and dw 7x7 dilation 3 on the 4/8 part; then a 1x1 `PW_conv`."""

    def __init__(self, dim: int, dilation: tuple[int, int, int] = (1, 2, 3),
                 split: tuple[int, int, int] = (1, 3, 4)) -> None:
        super().__init__()
        total = sum(split)
        self.embed_dims_1 = int(split[1] / total * dim)
        self.embed_dims_2 = int(split[2] / total * dim)
        self.embed_dims_0 = dim - self.embed_dims_1 - self.embed_dims_2
        self.embed_dims = dim
        d0, d1, d2 = dilation
        self.DW_conv0 = nn.Conv2d(dim, dim, 5, padding=(1 + 4 * d0) // 2, groups=dim, dilation=d0)
        self.DW_conv1 = nn.Conv2d(
            self.embed_dims_1, self.embed_dims_1, 5, padding=(1 + 4 * d1) // 2, groups=self.embed_dims_1, dilation=d1
        )
        self.DW_conv2 = nn.Conv2d(
            self.embed_dims_2, self.embed_dims_2, 7, padding=(1 + 6 * d2) // 2, groups=self.embed_dims_2, dilation=d2
        )
        self.PW_conv = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.DW_conv0(x)
        e0, e1 = self.embed_dims_0, self.embed_dims_1
        x1 = self.DW_conv1(x0[:, e0 : e0 + e1])
        x2 = self.DW_conv2(x0[:, self.embed_dims - self.embed_dims_2 :])
        return self.PW_conv(torch.cat([x0[:, :e0], x1, x2], dim=1))


class MultiOrderGatedAggregation(nn.Module):
    """proj_1 -> x + sigma * (x - GAP(x)) -> SiLU; proj_2(SiLU(gate(x)) * SiLU(value(x))) + shortcut."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.gate = nn.Conv2d(dim, dim, 1)
        self.value = MultiOrderDWConv(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)
        self.act_value = nn.SiLU()
        self.act_gate = nn.SiLU()
        self.sigma = nn.Parameter(1e-5 * torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.proj_1(x)
        x = self.act_value(x + self.sigma * (x - F.adaptive_avg_pool2d(x, 1)))
        x = self.proj_2(self.act_gate(self.gate(x)) * self.act_gate(self.value(x)))
        return x + shortcut


class ChannelAggregationFFN(nn.Module):
    """1x1 -> dw 3x3 -> GELU -> x + sigma * (x - GELU(decompose(x))) -> 1x1."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)
        self.decompose = nn.Conv2d(hidden, 1, 1)
        self.sigma = nn.Parameter(1e-5 * torch.ones(1, hidden, 1, 1))
        self.decompose_act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        x = x + self.sigma * (x - self.decompose_act(self.decompose(x)))
        return self.drop(self.fc2(x))


class MogaBlock(nn.Module):
    def __init__(self, spec: BlockSpec, init_value: float = 1e-5) -> None:
        super().__init__()
        dim = spec.dim
        if dim % 8:
            raise ValueError(f"MogaNet needs a channel count divisible by 8, got {dim}")
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = MultiOrderGatedAggregation(dim)
        self.drop_path = maybe_drop_path(spec.drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ChannelAggregationFFN(dim, int(dim * spec.mlp_ratio), spec.drop)
        self.layer_scale_1 = nn.Parameter(init_value * torch.ones(1, dim, 1, 1))
        self.layer_scale_2 = nn.Parameter(init_value * torch.ones(1, dim, 1, 1))
        self.apply(make_init())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


@register_subblock("moganet")
def moga_block(spec: BlockSpec) -> nn.Module:
    return MogaBlock(spec)
