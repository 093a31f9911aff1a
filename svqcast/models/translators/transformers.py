"""Token-mixing families built from transformer parts: Swin, ViT, MLP-Mixer, Uniformer.

The official code takes Swin/ViT/MLP-Mixer blocks from timm 0.6 and overrides `forward`;
these re-implementations keep timm's attribute names (state-dict compatible) and the
spec's hyperparameters (8 heads, qkv bias, mlp_ratio 8, inits in docs/reference/official-behaviour.md §2.4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from svqcast.config_schema import ModelConfig
from svqcast.models.layers import (
    ConvMlp,
    Mlp,
    from_tokens,
    init_conv_fan_out,
    init_linear_trunc,
    init_norm,
    make_init,
    maybe_drop_path,
    to_tokens,
    trunc_normal_,
)
from svqcast.models.translators.base import BlockSpec, register_subblock

#: Default of `Attention.fused_attn` for modules built from now on (`set_fused_attn_default`).
_FUSED_ATTN_DEFAULT = [True]


def fused_attn_default() -> bool:
    """Whether newly built attention modules use `scaled_dot_product_attention`."""
    return _FUSED_ATTN_DEFAULT[0]


def set_fused_attn_default(enabled: bool) -> None:
    """Process-wide default for new attention modules (existing ones keep their flag); the
    config key `model.fused_attn` sets it per model instead."""
    _FUSED_ATTN_DEFAULT[0] = bool(enabled)


def set_fused_attn(model: nn.Module, enabled: bool) -> int:
    """Switch every attention module of `model` between the fused and the explicit path;
    returns how many were switched. No parameter or buffer changes."""
    mods = [m for m in model.modules() if isinstance(m, Attention)]
    for m in mods:
        m.fused_attn = bool(enabled)
    return len(mods)


class Attention(nn.Module):
    """Multi-head self-attention (`attn.qkv`, `attn.proj`, timm's names) with an optional
    additive bias/mask on the logits.

    Two paths compute the same function: `fused_attn=True` calls
    `F.scaled_dot_product_attention` (one fused kernel: no (n x n) logits kept for the
    backward on CPU flash kernels, SDPA backends on GPU); `fused_attn=False` writes the
    matmuls out as timm 0.6 and the vendored Uniformer do, and is what the float64 oracle
    tests pin down. The flag is a plain attribute, not state: checkpoints do not see it.
    """

    def __init__(
        self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0,
        fused_attn: bool | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim**-0.5
        self.fused_attn = fused_attn_default() if fused_attn is None else bool(fused_attn)
        self.qkv = nn.Linear(dim, head_dim * num_heads * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(head_dim * num_heads, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def logits_bias(self) -> torch.Tensor | None:
        return None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (b, heads, n, head_dim) each
        if self.fused_attn:
            out = self._fused(q, k, v, mask)
        else:
            out = self._explicit(q, k, v, mask)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, -1)))

    def _explicit(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """softmax(q k^T * scale + bias + mask) v with the logits materialised."""
        b, heads, n, _ = q.shape
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (b, heads, n, n)
        bias = self.logits_bias()
        if bias is not None:
            attn = attn + bias.unsqueeze(0)
        if mask is not None:  # (nW, n, n): windows of one image are consecutive in the batch
            nw = mask.shape[0]
            attn = attn.view(b // nw, nw, heads, n, n) + mask[None, :, None]
            attn = attn.view(b, heads, n, n)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return attn @ v

    def _fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """The same through SDPA. Bias (heads, n, n) and window mask (nW, n, n) are summed
        into one additive mask; with a window mask the batch is viewed as (images, windows)
        so the mask broadcasts over images instead of being copied per window."""
        bias = self.logits_bias()
        add = None if bias is None else bias.unsqueeze(0)  # (1, heads, n, n)
        if mask is not None:
            nw = mask.shape[0]
            add = mask.unsqueeze(1) if add is None else add + mask.unsqueeze(1)  # (nW, heads|1, n, n)
            q, k, v = (t.unflatten(0, (-1, nw)) for t in (q, k, v))
        if add is not None:
            add = add.to(q.dtype)
        p = self.attn_drop.p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=add, dropout_p=p, scale=self.scale)
        return out.flatten(0, 1) if mask is not None else out


def _fused_option(spec: BlockSpec) -> bool | None:
    """`model.fused_attn` from the config (None: the process-wide default)."""
    value = spec.options.get("fused_attn")
    return None if value is None else bool(value)


# ---------------------------------------------------------------------------------- Swin
def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws, ws, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of `window_partition`."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws^2, ws^2) index into the (2ws-1)^2 bias table (Swin's relative positions)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[:, :, 0] * (2 * ws - 1) + rel[:, :, 1]


def shift_attention_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """(nW, ws^2, ws^2) mask: 0 within a region, -100 across the regions that the cyclic
    shift glued together (Swin's `attn_mask`)."""
    img = torch.zeros(1, h, w, 1)
    cnt = 0
    spans = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for hs in spans:
        for wsl in spans:
            img[:, hs, wsl, :] = cnt
            cnt += 1
    win = window_partition(img, ws).view(-1, ws * ws)
    mask = win.unsqueeze(1) - win.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class WindowAttention(Attention):
    """Attention inside ws x ws windows with a learned relative-position bias."""

    relative_position_index: torch.Tensor  # a buffer (register_buffer below)

    def __init__(
        self, dim: int, ws: int, num_heads: int = 8, qkv_bias: bool = True, proj_drop: float = 0.0,
        fused_attn: bool | None = None,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, 0.0, proj_drop, fused_attn)
        self.window_size = ws
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(ws))
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def logits_bias(self) -> torch.Tensor:
        n = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)


def swin_window(h: int) -> int:
    """7 if H' % 7 == 0 else max(4, H' // 16), capped at 8 (OpenSTL's rule)."""
    ws = 7 if h % 7 == 0 else max(4, h // 16)
    return min(8, ws)


class SwinBlock(nn.Module):
    """Swin block on NCHW; even layers plain windows, odd layers shifted by ws // 2.

    `shift_mask=True` (default) applies the shifted-window attention mask, as Swin intends.
    `shift_mask=False` reproduces OpenSTL, which calls `attn(x, mask=None)`; the mask
    buffer is registered either way so converted state dicts load strictly.
    """

    def __init__(self, spec: BlockSpec, shift_mask: bool = True) -> None:
        super().__init__()
        dim = spec.dim
        h, w = spec.resolution
        ws = swin_window(h)
        shift = 0 if spec.layer_i % 2 == 0 else ws // 2
        if min(h, w) <= ws:  # timm: a window covering the map cannot shift
            shift, ws = 0, min(h, w)
        if h % ws or w % ws:
            raise ValueError(f"Swin translator: latent {h}x{w} is not divisible by window {ws}")
        self.resolution = (h, w)
        self.window_size = ws
        self.shift_size = shift
        self.shift_mask = shift_mask
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, ws, 8, True, spec.drop, _fused_option(spec))
        self.drop_path = maybe_drop_path(spec.drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * spec.mlp_ratio), drop=spec.drop)
        mask = shift_attention_mask(h, w, ws, shift) if shift > 0 else None
        self.register_buffer("attn_mask", mask)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear_trunc(m)
            elif isinstance(m, nn.LayerNorm):
                init_norm(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws, s = self.window_size, self.shift_size
        x = to_tokens(x)
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        win = window_partition(x, ws).view(-1, ws * ws, c)
        mask = self.attn_mask if (s > 0 and self.shift_mask) else None
        win = self.attn(win, mask=mask).view(-1, ws, ws, c)
        x = window_reverse(win, ws, h, w)
        if s > 0:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return from_tokens(x, h, w)


@register_subblock("swin")
def swin_block(spec: BlockSpec) -> nn.Module:
    # a SimVP build always passes model.swin_shift_mask; a bare translator takes its default
    return SwinBlock(spec, shift_mask=bool(spec.options.get("swin_shift_mask", ModelConfig.swin_shift_mask)))


# ----------------------------------------------------------------------------------- ViT
class ViTBlock(nn.Module):
    """Pre-norm transformer block over all H'W' tokens; no positional embedding, no layer scale."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        dim = spec.dim
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, 8, True, 0.0, spec.drop, _fused_option(spec))
        self.drop_path = maybe_drop_path(spec.drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * spec.mlp_ratio), drop=spec.drop)
        self.apply(make_init(conv=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        x = to_tokens(x)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return from_tokens(x, h, w)


@register_subblock("vit")
def vit_block(spec: BlockSpec) -> nn.Module:
    return ViTBlock(spec)


# ----------------------------------------------------------------------------- MLP-Mixer
class MixerBlock(nn.Module):
    """Token MLP over the H'W' positions (hidden 0.5 dim), channel MLP (hidden 8 dim).
    The token count is fixed when the block is built."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        dim = spec.dim
        h, w = spec.resolution
        self.seq_len = h * w
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(self.seq_len, int(0.5 * dim), drop=spec.drop)
        self.drop_path = maybe_drop_path(spec.drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, int(spec.mlp_ratio * dim), drop=spec.drop)
        self.apply(make_init(conv=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        if h * w != self.seq_len:
            raise ValueError(f"MLP-Mixer translator was built for {self.seq_len} latent positions, got {h}x{w}")
        x = to_tokens(x)
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        x = x + self.drop_path(self.mlp_channels(self.norm2(x)))
        return from_tokens(x, h, w)


@register_subblock("mlpmixer")
def mixer_block(spec: BlockSpec) -> nn.Module:
    return MixerBlock(spec)


# ----------------------------------------------------------------------------- Uniformer
class UniformerBlock(nn.Module):
    """Uniformer: a conv block (`CBlock`) where the width changes or at layer 0, an MHSA
    block (`SABlock`) in the middle. Both start with a depthwise 3x3 positional residual.

    CBlock:  x += pos(x); x += DP(conv2(attn(conv1(BN(x))))); x += DP(mlp(BN(x)))
    SABlock: x += pos(x); tokens; x += DP(g1 * MHSA(LN(x))); x += DP(g2 * MLP(LN(x)))
    """

    # the two block types fill these slots with different layers
    norm1: nn.Module
    attn: nn.Module
    norm2: nn.Module
    mlp: nn.Module

    def __init__(self, spec: BlockSpec, init_value: float = 1e-6) -> None:
        super().__init__()
        dim = spec.dim
        hidden = int(dim * spec.mlp_ratio)
        self.block_type = "MHSA" if (spec.dim == spec.out_dim and spec.layer_i > 0) else "Conv"
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.drop_path = maybe_drop_path(spec.drop_path)
        if self.block_type == "Conv":
            self.norm1 = nn.BatchNorm2d(dim)
            self.conv1 = nn.Conv2d(dim, dim, 1)
            self.conv2 = nn.Conv2d(dim, dim, 1)
            self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
            self.norm2 = nn.BatchNorm2d(dim)
            self.mlp = ConvMlp(dim, hidden, drop=spec.drop)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    init_conv_fan_out(m)
                elif isinstance(m, nn.BatchNorm2d):
                    init_norm(m)
        else:
            self.norm1 = nn.LayerNorm(dim)
            self.attn = Attention(dim, 8, True, 0.0, spec.drop, _fused_option(spec))
            self.norm2 = nn.LayerNorm(dim)
            self.mlp = Mlp(dim, hidden, drop=spec.drop)
            self.gamma_1 = nn.Parameter(init_value * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_value * torch.ones(dim))
            self.apply(make_init(conv=False))  # pos_embed keeps PyTorch's default init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        if self.block_type == "Conv":
            x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        _, _, h, w = x.shape
        x = to_tokens(x)
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))
        return x.transpose(1, 2).reshape(x.shape[0], -1, h, w)


@register_subblock("uniformer")
def uniformer_block(spec: BlockSpec) -> nn.Module:
    return UniformerBlock(spec)

