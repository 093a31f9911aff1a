"""Large-kernel-attention families: gSTA (SimVP v2), TAU and VAN (docs/reference/official-behaviour.md §2.4).

All three share the residual pattern
    x = x + DP(ls1 * attn(BN(x)));  x = x + DP(ls2 * MixMlp(BN(x)))
and differ only in the attention's gating:
    gSTA: sigmoid(g) * f with (f, g) = split(conv1(dw7x7_d3(dw5x5(x))))       [dim -> 2 dim]
    VAN:  x * conv1(dw7x7_d3(dw5x5(x)))                                        [dim -> dim]
    TAU:  SE(x) * conv1(dw7x7_d3(dw5x5(x))) * x, SE = avgpool-FC-ReLU-FC-sigmoid
"""

from __future__ import annotations

import torch
from torch import nn

from svqcast.models.layers import make_init, maybe_drop_path
from svqcast.models.translators.base import BlockSpec, register_subblock


def _lka_geometry(kernel_size: int = 21, dilation: int = 3) -> tuple[int, int, int, int]:
    """Decompose a `kernel_size` large kernel into dw (d_k, pad d_p) + dilated dw (dd_k, dd_p):
    21 -> 5x5 pad 2, then 7x7 dilation 3 pad 9."""
    d_k = 2 * dilation - 1
    d_p = (d_k - 1) // 2
    dd_k = kernel_size // dilation + ((kernel_size // dilation) % 2 - 1)
    dd_p = dilation * (dd_k - 1) // 2
    return d_k, d_p, dd_k, dd_p


class _LargeKernel(nn.Module):
    """conv0 (dw 5x5) -> conv_spatial (dw 7x7, dilation 3) -> conv1 (1x1 dim -> out)."""

    def __init__(self, dim: int, out: int, kernel_size: int = 21) -> None:
        super().__init__()
        d_k, d_p, dd_k, dd_p = _lka_geometry(kernel_size)
        self.conv0 = nn.Conv2d(dim, dim, d_k, padding=d_p, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, dd_k, padding=dd_p, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, out, 1)

    def lka(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.conv_spatial(self.conv0(x)))


class AttentionModule(_LargeKernel):
    """gSTA gating: sigmoid(g) * f."""

    def __init__(self, dim: int, kernel_size: int = 21) -> None:
        super().__init__(dim, 2 * dim, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = torch.chunk(self.lka(x), 2, dim=1)
        return torch.sigmoid(g) * f


class LKA(_LargeKernel):
    """VAN gating: u * attn."""

    def __init__(self, dim: int, kernel_size: int = 21) -> None:
        super().__init__(dim, dim, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.lka(x)


class TemporalAttentionModule(_LargeKernel):
    """TAU: squeeze-excitation (no biases) times the large-kernel map times the input."""

    def __init__(self, dim: int, kernel_size: int = 21, reduction: int = 16) -> None:
        super().__init__(dim, dim, kernel_size)
        self.reduction = max(dim // reduction, 4)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(dim, dim // self.reduction, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(dim // self.reduction, dim, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        se = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return se * self.lka(x) * x


class GatedAttention(nn.Module):
    """proj_1 -> GELU -> gating unit -> proj_2, plus the shortcut (SpatialAttention /
    TemporalAttention of the official code; the attribute names are theirs)."""

    def __init__(self, dim: int, gating: nn.Module) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = gating
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x)))) + x


class DWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class MixMlp(nn.Module):
    """1x1 dim -> hidden, depthwise 3x3, GELU, 1x1 back."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        return self.drop(self.fc2(x))


class LKABlock(nn.Module):
    """The shared gSTA/TAU/VAN block. `attn` is built by the family; layer scales are
    per-channel vectors initialised to `init_value` (1e-2)."""

    def __init__(
        self,
        dim: int,
        attn: nn.Module,
        mlp_ratio: float,
        drop: float,
        drop_path: float,
        init_value: float = 1e-2,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = attn
        self.drop_path = maybe_drop_path(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = MixMlp(dim, int(dim * mlp_ratio), drop)
        self.layer_scale_1 = nn.Parameter(init_value * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ls1 = self.layer_scale_1[:, None, None]
        ls2 = self.layer_scale_2[:, None, None]
        x = x + self.drop_path(ls1 * self.attn(self.norm1(x)))
        return x + self.drop_path(ls2 * self.mlp(self.norm2(x)))


_INIT = make_init()


@register_subblock("gsta")
def gsta_block(spec: BlockSpec) -> nn.Module:
    """gSTA (`GASubBlock`): every conv fan-out normal, linears trunc .02."""
    block = LKABlock(
        spec.dim, GatedAttention(spec.dim, AttentionModule(spec.dim)), spec.mlp_ratio, spec.drop, spec.drop_path
    )
    block.apply(_INIT)
    return block


@register_subblock("van")
def van_block(spec: BlockSpec) -> nn.Module:
    block = LKABlock(spec.dim, GatedAttention(spec.dim, LKA(spec.dim)), spec.mlp_ratio, spec.drop, spec.drop_path)
    block.apply(_INIT)
    return block


@register_subblock("tau")
def tau_block(spec: BlockSpec) -> nn.Module:
    """TAU: the official subclass replaces `attn` *after* the init pass, so the temporal
    attention keeps PyTorch's default init; we reproduce that order."""
    block = LKABlock(
        spec.dim, GatedAttention(spec.dim, AttentionModule(spec.dim)), spec.mlp_ratio, spec.drop, spec.drop_path
    )
    block.apply(_INIT)
    block.attn = GatedAttention(spec.dim, TemporalAttentionModule(spec.dim))
    return block
