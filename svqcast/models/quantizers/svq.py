"""Sparse Vector Quantization (SVQ), fused so the (tokens x N) weight matrix is never built.

Paper: "Sparse Vector Quantization for spatiotemporal forecasting" (SVQ), arXiv:2312.03406.
Official behaviour: docs/reference/official-behaviour.md §3.

Each latent token x (length C) is mapped to regression weights over a codebook M (N x C)::

    W = L2(ReLU(L1(x)))          L1: C -> k, L2: k -> N, k = min(middim, N)
    q = W @ M

Nothing after the ReLU is non-linear, so with h = ReLU(L1(x))::

    q = h @ (A2^T M) + b2 @ M    A2: (N, k) weight of L2, b2: its bias

which costs O(tokens * k * C + N * k * C) instead of O(tokens * N * (k + C)). The two
factors stay separate parameters (and `P = A2^T M` is recomputed every step), so Adam
sees exactly the official parameterisation and gradients. Only `out_relu=True` (a ReLU
on W) breaks the identity; that variant and explicit analysis requests materialise W,
in chunks.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from svqcast.models.quantizers.base import Quantizer, QuantizerOutput

CODEBOOK_INITS = ("normal", "kaiming", "xavier", "sparse", "trunc", "orthogonal", "random")
DEFAULT_CHUNK = 8192


def init_codebook(weight: torch.Tensor, method: str) -> None:
    """Codebook initialisations of the official code (docs/reference/official-behaviour.md §3.3)."""
    with torch.no_grad():
        if method == "normal":
            nn.init.normal_(weight)  # std 1: the t2m main configs
        elif method == "kaiming":
            nn.init.kaiming_uniform_(weight)  # U(+-sqrt(6/C)), fan_in = C
        elif method == "xavier":
            nn.init.xavier_uniform_(weight, gain=nn.init.calculate_gain("relu"))
        elif method == "sparse":
            nn.init.sparse_(weight, sparsity=0.9)
        elif method == "trunc":
            nn.init.trunc_normal_(weight, std=1.0, a=-2.0, b=2.0)
        elif method == "orthogonal":
            nn.init.orthogonal_(weight)
        elif method == "random":
            weight.copy_(torch.randn_like(weight))
        else:
            raise ValueError(f"unknown codebook init '{method}'; choose one of {CODEBOOK_INITS}")


class MLPProjection(nn.Module):
    """Token -> regression weights. Two layers (C -> k -> N) or one (C -> N)."""

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        middim: int = 128,
        nonlinear: bool = True,
        hid_relu: bool = True,
        out_relu: bool = False,
    ) -> None:
        super().__init__()
        self.nonlinear = nonlinear
        if nonlinear:
            hidden = codebook_size if codebook_size < middim else middim  # official quirk
            self.linear_proj = nn.Linear(dim, hidden)
            self.hid_act: nn.Module = nn.ReLU() if hid_relu else nn.Identity()
            self.linear_proj2 = nn.Linear(hidden, codebook_size)
        else:
            self.linear_proj = nn.Linear(dim, codebook_size)
        self.out_relu = out_relu

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The activations before the last linear map (the input itself for one layer)."""
        return self.hid_act(self.linear_proj(x)) if self.nonlinear else x

    @property
    def last(self) -> nn.Linear:
        return self.linear_proj2 if self.nonlinear else self.linear_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.last(self.hidden(x))
        return torch.relu(w) if self.out_relu else w


class SVQ(Quantizer):
    """SVQ quantizer on (BT, C, H', W') latents; adds no auxiliary loss.

    `fused=False` switches to the official materialised formulation (W, then W @ M),
    kept as a reference for tests, benchmarks and FLOP counting.
    """

    kind = "svq"

    def __init__(
        self,
        dim: int,
        codebook_size: int = 10000,
        middim: int = 128,
        nonlinear: bool = True,
        hid_relu: bool = True,
        out_relu: bool = False,
        freeze_codebook: bool = False,
        init: str = "normal",
        chunk_size: int = DEFAULT_CHUNK,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.codebook_size = codebook_size
        self.chunk_size = chunk_size
        self.fused = True
        self.proj = MLPProjection(dim, codebook_size, middim, nonlinear, hid_relu, out_relu)
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim), requires_grad=not freeze_codebook)
        init_codebook(self.codebook, init)

    @property
    def frozen(self) -> bool:
        return not self.codebook.requires_grad

    @property
    def can_fuse(self) -> bool:
        return not self.proj.out_relu

    # -- the three ways to compute q = W @ M -------------------------------------------
    def _fused(self, x: torch.Tensor) -> torch.Tensor:
        last = self.proj.last
        p = last.weight.t() @ self.codebook  # (k, C)
        c = last.bias @ self.codebook  # (C,)
        return torch.addmm(c, self.proj.hidden(x), p)

    def _materialised(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x) @ self.codebook

    def _chunked(self, x: torch.Tensor) -> torch.Tensor:
        """Materialise W chunk by chunk; with autograd on, each chunk is recomputed in the
        backward pass, so peak memory is one chunk's W rather than all of it."""
        # Checkpoint whenever autograd will record the chunk: that depends on the input *or*
        # any parameter needing a gradient, not on train/eval mode (an eval-mode forward with
        # grad enabled would otherwise keep every chunk's W alive for the backward pass).
        records = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.parameters())
        )
        outs = []
        for chunk in x.split(self.chunk_size):
            if records:
                outs.append(checkpoint(self._materialised, chunk, use_reentrant=False))
            else:
                outs.append(self._materialised(chunk))
        return torch.cat(outs) if outs else x.new_zeros(0, self.dim)

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        x = self.to_tokens(z)
        if not self.fused:
            q = self._materialised(x)
        elif self.can_fuse:
            q = self._fused(x)
        else:
            q = self._chunked(x)
        return QuantizerOutput(self.from_tokens(q, z.shape), self.zero_loss(z))

    @torch.no_grad()
    def code_weights(self, z: torch.Tensor, chunk_size: int | None = None) -> Iterator[torch.Tensor]:
        """Yield W (tokens x N) in row chunks, without gradients, for analysis only."""
        x = self.to_tokens(z)
        for chunk in x.split(chunk_size or self.chunk_size):
            yield self.proj(chunk)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, frozen={self.frozen}, "
            f"fused={self.fused and self.can_fuse}"
        )


def svq_param_count(dim: int, codebook_size: int, middim: int = 128, nonlinear: bool = True) -> int:
    """(C*k + k) + (k*N + N) + N*C, k = min(middim, N); one layer: C*N + N + N*C."""
    if not nonlinear:
        return dim * codebook_size + codebook_size + codebook_size * dim
    k = min(middim, codebook_size)
    return (dim * k + k) + (k * codebook_size + codebook_size) + codebook_size * dim


