"""SimVP: ConvSC encoder -> (quantizer) -> translator -> (quantizer) -> ConvSC decoder.

Behaviour: docs/reference/official-behaviour.md §2. One call maps T input frames to T
output frames; `SimVP.forward` adapts that to `out_frames` like the official method
wrapper (keep the first frames, or roll out autoregressively with gradients through every
call). Time is folded into the batch for the encoder/decoder and into the channels for the
translator. Submodule names mirror OpenSTL (`enc.enc.{i}.conv.conv`, `dec.readout`,
`hid.enc.{i}.block...`) so converted checkpoints load strictly; the quantizer is
`quantizer` (OpenSTL's `vq.vq`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from svqcast.errors import DataError, UsageError
from svqcast.models.layers import trunc_normal_
from svqcast.models.quantizers.base import Quantizer, QuantizerOutput


@dataclass
class ModelOutput:
    """What `forward_with_aux` returns (the loss travels with the output, as in nanoGPT).

    pred:        (B, T_out, C, H, W) normalised prediction.
    aux_loss:    scalar the trainer adds with weight `train.aux_loss_weight`; exactly
                 zero without a quantizer or in eval mode (SVQ itself adds none).
    diagnostics: the quantizer's cheap scalars of the last network call (e.g. VQ
                 perplexity); empty without a quantizer.
    """

    pred: torch.Tensor
    aux_loss: torch.Tensor
    diagnostics: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class ReturnsAux(Protocol):
    """A model that returns its auxiliary loss: `forward_with_aux(x)`, and the same
    :class:`ModelOutput` from `model(x, return_aux=True)` (the form that works through
    DistributedDataParallel). The trainer and `evaluate` use it when a model has it."""

    def forward_with_aux(self, x: torch.Tensor, phase: torch.Tensor | None = None) -> ModelOutput: ...


def sampling_generator(n: int, reverse: bool = False) -> list[bool]:
    """Which ConvSC layers change resolution: [False, True] * (N // 2)."""
    samplings = ([False, True] * (n // 2))[:n]
    return list(reversed(samplings)) if reverse else samplings


RESIDUALS = ("none", "last", "yesterday", "anomaly", "climatology")


def residual_base_index(t: int, residual: str, period: int = 24) -> list[int] | None:
    """For `model.residual`: which input frame each of the T output frames of one network
    call adds to the network's output (None: no residual).

    * ``"last"``: the last input frame for every output (the net predicts the change since
      initialisation, so an untrained net is persistence);
    * ``"yesterday"``: the input frame `period` frames before each output's time (with
      hourly data and period 24, the same hour one day earlier), or a whole number of
      periods before when an output lies more than one period ahead. Needs T >= period so
      that frame is among the inputs;
    * ``"anomaly"``: as ``"yesterday"``, and :class:`SimVP` adds a learned fraction (one per
      output frame) of the change between the last input frame and the frame one period
      before it -- "today is warmer than yesterday, and that persists for a while". Needs
      T > period.
    * ``"climatology"``: no input frame; :class:`SimVP` adds the training climatology at
      each output's phase of a `period`-step cycle plus a learned fraction of the last input
      frame's departure from it (see :mod:`svqcast.models.phase`). Any T.
    """
    if residual not in RESIDUALS:
        raise UsageError(f"model.residual: unknown '{residual}'; use one of {', '.join(RESIDUALS)}")
    if residual == "none":
        return None
    if residual == "last":
        return [t - 1] * t
    if residual == "climatology":
        if period < 1:
            raise UsageError(f"model.residual_period must be at least 1, got {period}")
        return []
    need = period + (residual == "anomaly")
    if period < 1 or t < need:
        raise UsageError(f"model.residual = '{residual}' needs model.in_shape[0] (T_in = {t}) >= {need} "
                         f"(model.residual_period {period}); lengthen the input or use residual = 'last'")
    return [t - 1 + j + 1 - period * -(-(j + 1) // period) for j in range(t)]


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
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ConvSC(nn.Module):
    """One encoder/decoder layer: stride 2 when downsampling, PixelShuffle when upsampling."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 3, downsampling: bool = False, upsampling: bool = False
    ) -> None:
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
        for layer in list(self.enc)[1:]:
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
        for layer in list(self.dec)[:-1]:
            hid = layer(hid)
        return self.readout(self.dec[-1](hid + skip))


class SimVP(nn.Module):
    """SimVP (+ optional quantizer) mapping (B, T_in, C, H, W) -> (B, T_out, C, H, W).

    `model(x)` returns the prediction tensor, so the module drops into any PyTorch code;
    `model.forward_with_aux(x)` (or `model(x, return_aux=True)`, which also works through
    DistributedDataParallel) returns a :class:`ModelOutput` with the quantizer's auxiliary
    loss and diagnostics. Nothing is kept on the module between calls. With `residual`
    (see :func:`residual_base_index`) each network call adds an input frame to its output,
    so the network learns the change from a simple forecast; it adds no parameters, except
    `residual_gain` (one per output frame) for ``residual = "anomaly"``.
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
        residual: str = "none",
        residual_period: int = 24,
    ) -> None:
        super().__init__()
        t, c, h, w = in_shape
        self.in_shape = (int(t), int(c), int(h), int(w))
        self.out_frames = int(out_frames)
        self.residual = residual
        self.residual_period = int(residual_period)
        self._base_index = residual_base_index(self.in_shape[0], residual, self.residual_period)
        self.hid_S = hid_S
        self.stride = 2 ** (N_S // 2)
        self.post_vq = post_vq
        self.translator_name = translator_name
        self.enc = Encoder(c, hid_S, N_S, spatio_kernel_enc)
        self.dec = Decoder(hid_S, c, N_S, spatio_kernel_dec)
        self.quantizer = quantizer
        self.hid = translator
        if residual == "anomaly":  # fades linearly over one period to start with; then learned
            p = self.residual_period
            self.residual_gain = nn.Parameter(torch.tensor([max(0.0, 1 - (j + 1) / p) for j in range(int(t))]))
        if residual == "climatology":  # the table is filled from the training split (models.phase)
            self.register_buffer("climatology", torch.zeros(self.residual_period, int(c), int(h), int(w)))
            # the departure decays by a fifth per step to start with; then learned
            self.residual_gain = nn.Parameter(torch.tensor([0.8 ** (j + 1) for j in range(int(t))]))
        if self._base_index is not None:
            # start exactly at the base forecast: the network learns a correction to it
            nn.init.zeros_(self.dec.readout.weight)
            if self.dec.readout.bias is not None:
                nn.init.zeros_(self.dec.readout.bias)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(hid_S, H', W') of one frame's latent."""
        _, _, h, w = self.in_shape
        return self.hid_S, -(-h // self.stride), -(-w // self.stride)

    @property
    def needs_phase(self) -> bool:
        """True when forward needs `phase` (``residual = "climatology"``)."""
        return self.residual == "climatology"

    def _climatology_terms(
        self, x: torch.Tensor, phase: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the inputs' departures from the climatology at their phases -- what the network
        sees --, the base forecast: climatology at each output's phase + gain x the last
        frame's departure)."""
        if phase is None:
            raise UsageError("this model forecasts departures from a climatology: call it with phase=... "
                             "(the last input frame's index in its cycle, svqcast.models.phase.phase_of)")
        t, p = x.shape[1], self.residual_period
        ph = phase.to(x.device).long().view(-1, 1)
        clim = self.get_buffer("climatology").to(x.dtype)
        steps = torch.arange(-t + 1, t + 1, device=x.device)
        table = clim[(ph + steps) % p]  # (B, 2T, C, H, W): the T input phases, then the T output ones
        departures = x - table[:, :t]
        gain = self.residual_gain.view(1, -1, 1, 1, 1).to(x.dtype)
        return departures, table[:, t:] + gain * departures[:, -1:]

    def _step(
        self, x: torch.Tensor, phase: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, QuantizerOutput | None]:
        """One official model call (T frames in, T frames out) and the quantizer's output."""
        b, t, c, h, w = x.shape
        base = None
        if self.residual == "climatology":  # the network sees and predicts departures
            x, base = self._climatology_terms(x, phase)
        frames = x.reshape(b * t, c, h, w)
        ph, pw = -h % self.stride, -w % self.stride
        if ph or pw:  # any grid: pad bottom/right to the encoder stride, crop the output back
            frames = nn.functional.pad(frames, (0, pw, 0, ph), mode="replicate")
        latent, skip = self.enc(frames)
        q: QuantizerOutput | None = None
        if self.quantizer is not None and not self.post_vq:
            q = self.quantizer(latent)
            latent = q.quantized
        _, cl, hl, wl = latent.shape
        z = self.hid(latent.reshape(b, t * cl, hl, wl)).reshape(b * t, cl, hl, wl)
        if self.quantizer is not None and self.post_vq:
            q = self.quantizer(z)
            z = q.quantized
        y = self.dec(z, skip)[..., :h, :w].reshape(b, t, c, h, w)
        if base is not None:  # residual = "climatology"
            y = y + base
        elif self._base_index is not None:  # model.residual: the network predicts the change
            y = y + x[:, self._base_index]
            if self.residual == "anomaly":
                change = x[:, -1:] - x[:, -1 - self.residual_period : -self.residual_period]
                y = y + self.residual_gain.view(1, -1, 1, 1, 1).to(y.dtype) * change
        return y, q

    def step(self, x: torch.Tensor, phase: torch.Tensor | None = None) -> torch.Tensor:
        """One official model call: T frames in, T frames out."""
        return self._step(x, phase)[0]

    def _check_input(self, x: torch.Tensor) -> None:
        t, c, h, w = self.in_shape
        if x.ndim != 5 or tuple(x.shape[1:]) != (t, c, h, w):
            raise DataError(
                f"model expects input (B, {t}, {c}, {h}, {w}), got {tuple(x.shape)}; "
                "build the model with matching model.in_shape"
            )

    def forward_with_aux(self, x: torch.Tensor, phase: torch.Tensor | None = None) -> ModelOutput:
        """The prediction, the quantizer's auxiliary loss and its diagnostics.

        Roll-outs longer than T_in call the network several times; like the official code,
        the auxiliary loss and diagnostics are those of the last call. The loss is an exact
        zero scalar without a quantizer and in eval mode. `phase` (B,) only for
        ``residual = "climatology"``: the last input frame's index in the cycle.
        """
        self._check_input(x)
        t_in, t_out = x.shape[1], self.out_frames
        last: QuantizerOutput | None = None
        if t_out <= t_in:
            y, last = self._step(x, phase)
            y = y[:, :t_out]
        else:
            preds, cur = [], x
            for k in range(t_out // t_in):
                cur, last = self._step(cur, None if phase is None else phase + k * t_in)
                preds.append(cur)
            rest = t_out % t_in
            if rest:
                cur, last = self._step(cur, None if phase is None else phase + (t_out // t_in) * t_in)
                preds.append(cur[:, :rest])
            y = torch.cat(preds, dim=1)
        aux = last.aux_loss if last is not None and self.training else y.new_zeros(())
        diagnostics = dict(last.diagnostics) if last is not None else {}
        return ModelOutput(y, aux, diagnostics)

    def forward(
        self, x: torch.Tensor, return_aux: bool = False, phase: torch.Tensor | None = None
    ) -> torch.Tensor | ModelOutput:
        """The prediction tensor; with `return_aux=True` the :class:`ModelOutput`."""
        out = self.forward_with_aux(x, phase)
        return out if return_aux else out.pred

    def extra_repr(self) -> str:
        extra = f", residual={self.residual!r}" if self.residual != "none" else ""
        return f"in_shape={self.in_shape}, out_frames={self.out_frames}, post_vq={self.post_vq}{extra}"
