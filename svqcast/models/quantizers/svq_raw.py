"""SVQ-raw: non-negative sparse coding over a codebook by unrolled ISTA (LISTA-style).

The paper's Table 6 row "SVQ-raw" and Figure 1 compare SVQ with the sparse-coding
quantizer it approximates (SC-VAE, arXiv:2303.16666, which unrolls LISTA). The official
repository does not contain it (docs/reference/official-behaviour.md §4.2), so this is our own implementation of
the textbook algorithm, kept deliberately *honest*: it forms the N x N Gram (lateral)
matrix and pays O(N^2) per token per iteration, which is exactly the cost SVQ avoids.

Each token x (length C) is coded over the codebook Z (N x C, one atom per row) by the
non-negative lasso

    a* = argmin_{a >= 0} 1/2 ||x - Z^T a||^2 + lambda * sum(a)

with K unrolled projected ISTA steps from a_0 = 0 (row-vector form, tokens stacked)::

    b       = eta * x Z^T                    (tokens x N)
    S       = I - eta * Z Z^T                (N x N, the lateral matrix)
    a_{k+1} = relu(a_k S + b - eta * lambda)

so one step from zero gives a_1 = eta * relu(Z^T x - lambda), the paper's eq. in 3.1.
With eta = 1/L, L = lambda_max(Z^T Z) (cheap: a C x C eigenproblem), this is ISTA and
converges to a*. Step eta and threshold lambda are learnable scalars initialised to 1/L
and `threshold` (LISTA's learnable step/threshold with SC-VAE's tied weights). The output
is the reconstruction a_K Z; there is no auxiliary loss.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from svqcast.config_schema import ModelConfig
from svqcast.errors import UsageError
from svqcast.models.quantizers.base import Quantizer, QuantizerOutput
from svqcast.models.quantizers.registry import register_quantizer
from svqcast.models.quantizers.svq import init_codebook


def lipschitz_constant(codebook: torch.Tensor) -> torch.Tensor:
    """L = largest eigenvalue of Z Z^T = of Z^T Z (C x C): the gradient's Lipschitz constant."""
    zc = codebook.detach()
    return torch.linalg.eigvalsh(zc.t() @ zc)[-1]


class SVQRaw(Quantizer):
    """Unrolled non-negative ISTA over a learnable (or frozen) codebook."""

    kind = "svq-raw"

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1024,
        iters: int = 5,
        threshold: float = 0.1,
        step: float | None = None,
        learn_step: bool = True,
        learn_threshold: bool = True,
        freeze_codebook: bool = False,
        init: str = "normal",
        chunk_size: int = 8192,
    ) -> None:
        super().__init__()
        if iters < 1:
            raise UsageError(f"svq-raw needs at least one iteration, got iters={iters}")
        self.dim = dim
        self.codebook_size = codebook_size
        self.iters = iters
        self.chunk_size = chunk_size
        self.codebook = nn.Parameter(
            torch.empty(codebook_size, dim), requires_grad=not freeze_codebook
        )
        init_codebook(self.codebook, init)
        eta = float(1.0 / lipschitz_constant(self.codebook)) if step is None else float(step)
        self.step = nn.Parameter(torch.tensor(eta), requires_grad=learn_step)
        self.threshold = nn.Parameter(torch.tensor(float(threshold)), requires_grad=learn_threshold)

    @torch.no_grad()
    def reset_step(self) -> None:
        """Set eta = 1/L for the current codebook, in its dtype (the analytic ISTA step)."""
        self.step.copy_(1.0 / lipschitz_constant(self.codebook))

    def lateral(self) -> torch.Tensor:
        """S = I - eta Z Z^T (N x N): the O(N^2) object that makes SVQ-raw expensive."""
        eye = torch.eye(self.codebook_size, dtype=self.codebook.dtype, device=self.codebook.device)
        return eye - self.step * (self.codebook @ self.codebook.t())

    def codes(self, x: torch.Tensor, iters: int | None = None) -> torch.Tensor:
        """Sparse non-negative codes a_K (tokens x N) of tokens x (tokens x C)."""
        k = self.iters if iters is None else iters
        b = self.step * (x @ self.codebook.t())
        shift = self.step * self.threshold
        a = torch.relu(b - shift)  # the first step from a_0 = 0
        if k > 1:
            s = self.lateral()
            for _ in range(k - 1):
                a = torch.relu(a @ s + b - shift)
        return a

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        x = self.to_tokens(z)
        a = self.codes(x)
        q = a @ self.codebook
        diagnostics = {"code_density": (a > 0).float().mean().detach()}
        return QuantizerOutput(self.from_tokens(q, z.shape), self.zero_loss(z), diagnostics)

    @torch.no_grad()
    def code_weights(self, z: torch.Tensor, chunk_size: int | None = None) -> Iterator[torch.Tensor]:
        """Yield the codes (tokens x N) in row chunks, without gradients (diagnostics)."""
        x = self.to_tokens(z)
        for chunk in x.split(chunk_size or self.chunk_size):
            yield self.codes(chunk)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, iters={self.iters}, "
            f"step={self.step.item():.4g}, threshold={self.threshold.item():.4g}"
        )


_OPTIONS = {
    "iters", "threshold", "step", "learn_step", "learn_threshold", "freeze_codebook", "chunk_size"
}


@register_quantizer("svq-raw")
def _build_svq_raw(m: ModelConfig, dim: int) -> Quantizer:
    options = dict(m.vq_options)
    unknown = set(options) - _OPTIONS
    if unknown:
        raise UsageError(
            f"model.vq_options: unknown svq-raw option(s) {sorted(unknown)}; "
            f"valid: {sorted(_OPTIONS)}"
        )
    return SVQRaw(
        dim,
        codebook_size=m.codebook_size,
        init=m.codebook_init,
        **options,
    )
