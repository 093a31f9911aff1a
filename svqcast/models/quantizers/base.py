"""The one interface every quantizer (SVQ, SVQ-raw, VQ baselines) implements."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    quantized:   (BT, C, H', W'), replaces the latent it was given.
    aux_loss:    scalar added to the training loss with weight 1; exactly zero in eval mode.
    diagnostics: cheap scalars for logging (e.g. codebook perplexity of a VQ baseline).
    """

    quantized: torch.Tensor
    aux_loss: torch.Tensor
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


class Quantizer(nn.Module):
    """Base class: maps a latent map (BT, C, H', W') to a `QuantizerOutput`."""

    #: short name used in presets (`svq`, `vq`, ...)
    kind: str = "base"

    def forward(self, z: torch.Tensor) -> QuantizerOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def to_tokens(z: torch.Tensor) -> torch.Tensor:
        """(BT, C, H, W) -> (BT*H*W, C): one token per spatial position of each frame."""
        bt, c, h, w = z.shape
        return z.permute(0, 2, 3, 1).reshape(bt * h * w, c)

    @staticmethod
    def from_tokens(tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        bt, c, h, w = shape
        return tokens.reshape(bt, h, w, c).permute(0, 3, 1, 2)

    def zero_loss(self, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(())
