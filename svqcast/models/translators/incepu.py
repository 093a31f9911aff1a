"""IncepU (SimVP v1): a U-Net of gInception_ST blocks (docs/reference/official-behaviour.md §2.3).

No drop path and no custom init: everything keeps PyTorch's defaults, like the original.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from svqcast.models.translators.base import register_translator


class GroupConv2d(nn.Module):
    """Grouped conv -> GroupNorm(groups) -> LeakyReLU(0.2); groups fall back to 1 when the
    input width is not divisible."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__()
        if c_in % groups != 0:
            groups = 1
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, groups=groups)
        self.norm = nn.GroupNorm(groups, c_out)
        self.activate = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.norm(self.conv(x)))


class GInceptionST(nn.Module):
    """1x1 conv to C_hid, then the *sum* of one GroupConv2d branch per kernel size."""

    def __init__(self, c_in: int, c_hid: int, c_out: int, kernels: Sequence[int] = (3, 5, 7, 11),
                 groups: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_hid, 1)
        self.layers = nn.Sequential(*[GroupConv2d(c_hid, c_out, k, groups) for k in kernels])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        y = 0
        for layer in self.layers:
            y = y + layer(x)
        return y  # type: ignore[return-value]


class MidIncepNet(nn.Module):
    """Encoder: channel_in -> hid, then N_T - 1 blocks hid -> hid (the first N_T - 1 outputs
    are skips). Decoder: hid -> hid, then cat(z, skip) 2 hid -> hid ..., last 2 hid -> channel_in."""

    def __init__(self, channel_in: int, channel_hid: int, n_blocks: int, kernels: Sequence[int] = (3, 5, 7, 11),
                 groups: int = 8) -> None:
        super().__init__()
        if n_blocks < 2:
            raise ValueError(f"IncepU needs N_T >= 2, got {n_blocks}")
        self.n_blocks = n_blocks
        half = channel_hid // 2
        enc = [GInceptionST(channel_in, half, channel_hid, kernels, groups)]
        enc += [GInceptionST(channel_hid, half, channel_hid, kernels, groups) for _ in range(n_blocks - 1)]
        dec = [GInceptionST(channel_hid, half, channel_hid, kernels, groups)]
        dec += [GInceptionST(2 * channel_hid, half, channel_hid, kernels, groups) for _ in range(n_blocks - 2)]
        dec += [GInceptionST(2 * channel_hid, half, channel_in, kernels, groups)]
        self.enc = nn.Sequential(*enc)
        self.dec = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        z = x
        for i, block in enumerate(self.enc):
            z = block(z)
            if i < self.n_blocks - 1:
                skips.append(z)
        z = self.dec[0](z)
        for i in range(1, self.n_blocks):
            z = self.dec[i](torch.cat([z, skips[-i]], dim=1))
        return z


@register_translator("incepu")
def build_incepu(
    *,
    channel_in: int,
    channel_hid: int,
    n_blocks: int,
    options: Mapping[str, Any] | None = None,
    **_unused: Any,
) -> nn.Module:
    """IncepU ignores resolution, mlp_ratio, drop and drop_path (as the official code does)."""
    return MidIncepNet(channel_in, channel_hid, n_blocks)
