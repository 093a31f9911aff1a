"""SimVP: ConvSC encoder -> (quantizer) -> translator -> (quantizer) -> ConvSC decoder.

Behaviour: ../shared/reference/svq-spec.md section 1a. One call maps T input frames to T
output frames; `SimVP.forward` adapts that to `out_frames` like the official method
wrapper (keep the first frames, or roll out autoregressively with gradients through every
call). Time is folded into the batch for the encoder/decoder and into the channels for the
translator. Submodule names mirror OpenSTL (`enc.enc.{i}.conv.conv`, `dec.readout`,
`hid.enc.{i}.block...`) so converted checkpoints load strictly; the quantizer is
`quantizer` (OpenSTL's `vq.vq`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from svqcast.errors import DataError
from svqcast.models.layers import trunc_normal_
from svqcast.models.quantizers.base import Quantizer


def sampling_generator(n: int, reverse: bool = False) -> list[bool]:
    """Which ConvSC layers change resolution: [False, True] * (N // 2)."""
    samplings = ([False, True] * (n // 2))[:n]
    return list(reversed(samplings)) if reverse else samplings


class BasicConv2d(nn.Module):
    """Conv (or conv to 4 C_out + PixelShuffle(2)) -> GroupNorm(2) -> SiLU.
    Convs: trunc_normal(.02), bias 0."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, upsampling: bool) -> None:
        super().__init__()
        if upsampling:
            self.conv: nn.Module = nn.Sequential(
                nn.Conv2d(c_in, c_out * 4, kernel, stride=1, padding=padding), nn.PixelShuffle(2)
            )
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
        self.norm = nn.GroupNorm(2, c_out)
        self.act = nn.SiLU()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ConvSC(nn.Module):
    """One encoder/decoder layer: stride 2 when downsampling, PixelShuffle when upsampling."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, downsampling: bool = False, upsampling: bool = False) -> None:
        super().__init__()
        stride = 2 if downsampling else 1
        padding = (kernel - stride + 1) // 2
        self.conv = BasicConv2d(c_in, c_out, kernel, stride, padding, upsampling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Encoder(nn.Module):
    """C -> hid_S at full resolution (the skip), then hid_S -> hid_S layers."""

    def __init__(self, c_in: int, c_hid: int, n_layers: int, kernel: int) -> None:
        super().__init__()
        s = sampling_generator(n_layers)
        self.enc = nn.Sequential(
            ConvSC(c_in, c_hid, kernel, downsampling=s[0]),
            *[ConvSC(c_hid, c_hid, kernel, downsampling=d) for d in s[1:]],
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.enc[0](x)
        latent = skip
        for layer in self.enc[1:]:
            latent = layer(latent)
        return latent, skip


class Decoder(nn.Module):
    """hid_S -> hid_S layers; the last one takes `hid + skip`; then a 1x1 readout to C."""

    def __init__(self, c_hid: int, c_out: int, n_layers: int, kernel: int) -> None:
        super().__init__()
        s = sampling_generator(n_layers, reverse=True)
        self.dec = nn.Sequential(*[ConvSC(c_hid, c_hid, kernel, upsampling=u) for u in s])
        self.readout = nn.Conv2d(c_hid, c_out, 1)

    def forward(self, hid: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        for layer in self.dec[:-1]:
            hid = layer(hid)
        return self.readout(self.dec[-1](hid + skip))


class SimVP(nn.Module):
    """SimVP (+ optional quantizer) mapping (B, T_in, C, H, W) -> (B, T_out, C, H, W).

    After every forward, `aux_loss` holds the quantizer's auxiliary loss of the last call
    (a zero scalar without a quantizer or in eval mode) and `quantizer_diagnostics` its
    diagnostics dict, so the return value stays a plain tensor (contracts.md).
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int, int],
        out_frames: int,
        *,
        hid_S: int,
        hid_T: int,
        N_S: int,
        translator: nn.Module,
        quantizer: Quantizer | None = None,
        post_vq: bool = False,
        spatio_kernel_enc: int = 3,
        spatio_kernel_dec: int = 3,
        translator_name: str = "",
    ) -> None:
        super().__init__()
        t, c, h, w = in_shape
        self.in_shape = (int(t), int(c), int(h), int(w))
        self.out_frames = int(out_frames)
        self.hid_S = hid_S
        self.stride = 2 ** (N_S // 2)
        self.post_vq = post_vq
        self.translator_name = translator_name
        self.enc = Encoder(c, hid_S, N_S, spatio_kernel_enc)
        self.dec = Decoder(hid_S, c, N_S, spatio_kernel_dec)
        self.quantizer = quantizer
        self.hid = translator
        self.aux_loss: torch.Tensor = torch.zeros(())
        self.quantizer_diagnostics: dict[str, Any] = {}
        self._last_aux: torch.Tensor | None = None

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(hid_S, H', W') of one frame's latent."""
        _, _, h, w = self.in_shape
        return self.hid_S, h // self.stride, w // self.stride

    def _quantize(self, z: torch.Tensor) -> torch.Tensor:
        assert self.quantizer is not None
        out = self.quantizer(z)
        self._last_aux = out.aux_loss
        self.quantizer_diagnostics = dict(out.diagnostics)
        return out.quantized

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One official model call: T frames in, T frames out."""
        b, t, c, h, w = x.shape
        latent, skip = self.enc(x.reshape(b * t, c, h, w))
        if self.quantizer is not None and not self.post_vq:
            latent = self._quantize(latent)
        _, cl, hl, wl = latent.shape
        z = self.hid(latent.reshape(b, t * cl, hl, wl)).reshape(b * t, cl, hl, wl)
        if self.quantizer is not None and self.post_vq:
            z = self._quantize(z)
        y = self.dec(z, skip)
        return y.reshape(b, t, c, h, w)

    def _check_input(self, x: torch.Tensor) -> None:
        t, c, h, w = self.in_shape
        if x.ndim != 5 or tuple(x.shape[1:]) != (t, c, h, w):
            raise DataError(
                f"model expects input (B, {t}, {c}, {h}, {w}), got {tuple(x.shape)}; "
                "build the model with matching model.in_shape"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        self._last_aux = None
        self.quantizer_diagnostics = {}
        t_in, t_out = x.shape[1], self.out_frames
        if t_out <= t_in:
            y = self.step(x)[:, :t_out]
        else:
            preds, cur = [], x
            for _ in range(t_out // t_in):
                cur = self.step(cur)
                preds.append(cur)
            rest = t_out % t_in
            if rest:
                cur = self.step(cur)
                preds.append(cur[:, :rest])
            y = torch.cat(preds, dim=1)
        aux = self._last_aux
        if aux is None or not self.training:
            aux = y.new_zeros(())
        self.aux_loss = aux
        return y

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles carry the last aux loss detached: a tensor inside an autograd
        graph cannot be deep-copied (e.g. `copy.deepcopy(model)` for a best-model snapshot)."""
        state = self.__dict__.copy()
        state["aux_loss"] = self.aux_loss.detach()
        state["_last_aux"] = None
        state["quantizer_diagnostics"] = {
            k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in self.quantizer_diagnostics.items()
        }
        return state

    def extra_repr(self) -> str:
        return f"in_shape={self.in_shape}, out_frames={self.out_frames}, post_vq={self.post_vq}"
