"""The MetaFormer translator (`MidMetaNet`) and the translator registry.

A translator maps `(B, T*hid_S, H', W')` to the same shape: time is folded into channels
(docs/reference/official-behaviour.md §2.3). Every family except IncepU is a stack of N_T
`MetaBlock`s around one *sub-block* type; a family registers a sub-block factory with
`@register_subblock(name)`, and `TRANSLATORS[name]` then builds the whole stack. A name is
the entry point (timm style): presets and tests only ever say `translator = "swin"`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from svqcast.errors import UsageError


@dataclass(frozen=True)
class BlockSpec:
    """Everything a sub-block factory may need. `dim` is the sub-block's width; `out_dim`
    the MetaBlock's output width (they differ for the first and last block)."""

    dim: int
    out_dim: int
    layer_i: int
    resolution: tuple[int, int]
    mlp_ratio: float
    drop: float
    drop_path: float
    options: Mapping[str, Any] = field(default_factory=dict)


class SubBlockFactory(Protocol):
    def __call__(self, spec: BlockSpec) -> nn.Module: ...


TranslatorBuilder = Callable[..., nn.Module]

#: sub-block factories of the MetaFormer families (name -> factory)
SUBBLOCKS: dict[str, SubBlockFactory] = {}
#: every translator family (name -> builder with the `build_translator` keyword arguments)
TRANSLATORS: dict[str, TranslatorBuilder] = {}
#: spellings the official configs accept for the same family
ALIASES = {"mlp": "mlpmixer", "moga": "moganet"}


def register_subblock(name: str) -> Callable[[SubBlockFactory], SubBlockFactory]:
    """Register a MetaFormer sub-block; also registers the translator of that name."""

    def deco(factory: SubBlockFactory) -> SubBlockFactory:
        SUBBLOCKS[name] = factory

        def build(**kwargs: Any) -> nn.Module:
            return MidMetaNet(subblock=name, **kwargs)

        build.__doc__ = f"MidMetaNet of `{name}` sub-blocks."
        TRANSLATORS[name] = build
        return factory

    return deco


def register_translator(name: str) -> Callable[[TranslatorBuilder], TranslatorBuilder]:
    def deco(builder: TranslatorBuilder) -> TranslatorBuilder:
        TRANSLATORS[name] = builder
        return builder

    return deco


class MetaBlock(nn.Module):
    """One sub-block at `in_channels`, then a 1x1 `reduction` conv iff in != out
    (PyTorch default init, like the official code)."""

    def __init__(self, block: nn.Module, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.block = block
        if in_channels != out_channels:
            self.reduction = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.block(x)
        return z if self.in_channels == self.out_channels else self.reduction(z)


class MidMetaNet(nn.Module):
    """N_T MetaBlocks: channel_in -> hid (block 0), hid -> hid, hid -> channel_in (last).

    Stochastic depth: block i gets linspace(0.01, drop_path, N_T)[i], the last block gets
    `drop_path` itself (identical value; the official code spells it that way).
    """

    def __init__(
        self,
        *,
        subblock: str,
        channel_in: int,
        channel_hid: int,
        n_blocks: int,
        resolution: tuple[int, int],
        mlp_ratio: float = 8.0,
        drop: float = 0.0,
        drop_path: float = 0.1,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if n_blocks < 2:
            raise ValueError(f"a MetaFormer translator needs N_T >= 2, got {n_blocks}")
        factory = SUBBLOCKS[subblock]
        dpr = [float(v) for v in torch.linspace(1e-2, drop_path, n_blocks, device="cpu")]
        dpr[-1] = float(drop_path)
        plan = [(channel_in, channel_hid)] + [(channel_hid, channel_hid)] * (n_blocks - 2)
        plan += [(channel_hid, channel_in)]
        blocks = []
        for i, (c_in, c_out) in enumerate(plan):
            res = (int(resolution[0]), int(resolution[1]))
            spec = BlockSpec(c_in, c_out, i, res, mlp_ratio, drop, dpr[i], dict(options or {}))
            blocks.append(MetaBlock(factory(spec), c_in, c_out))
        self.enc = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)


def canonical_name(name: str) -> str:
    key = name.lower()
    return ALIASES.get(key, key)


def build_translator(
    name: str,
    *,
    channel_in: int,
    channel_hid: int,
    n_blocks: int,
    resolution: tuple[int, int],
    mlp_ratio: float = 8.0,
    drop: float = 0.0,
    drop_path: float = 0.1,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Build the translator family `name` (see `TRANSLATORS`)."""

    key = canonical_name(name)
    if key not in TRANSLATORS:
        raise UsageError(
            f"unknown translator '{name}'; choose one of: {', '.join(sorted(TRANSLATORS))}"
        )
    return TRANSLATORS[key](
        channel_in=channel_in,
        channel_hid=channel_hid,
        n_blocks=n_blocks,
        resolution=resolution,
        mlp_ratio=mlp_ratio,
        drop=drop,
        drop_path=drop_path,
        options=options,
    )
