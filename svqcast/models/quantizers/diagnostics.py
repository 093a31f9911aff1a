"""Code-usage diagnostics for SVQ (paper Fig. 5/6, Table 13) and the VQ baselines.

SVQ (docs/reference/official-behaviour.md §3.4): on the regression weights W (tokens x N) of a batch,

1. z = |W - mean(W)| / std(W), one global mean and (unbiased, like `torch.std`) std over
   every entry;
2. binarise z > theta for theta in {2, 3};
3. p = column counts / total count;
4. perplexity = exp(-sum p * log(p + 1e-10)).

We also report the kurtosis of the normalised W, E[((W - mean) / sigma)^4] with the
population sigma (3 for a Gaussian; heavy tails, i.e. a few large weights per token, give
more). W is never held whole: `svq_diagnostics` asks the quantizer for W in row chunks
(`SVQ.code_weights`) and makes two streaming passes in float64, so memory is one chunk
whatever the codebook size.

The VQ baselines get the perplexity the official code never computed: the exp-entropy of
the empirical distribution of the selected code indices, per codebook layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import torch

EPS = 1e-10
DEFAULT_THRESHOLDS: tuple[float, ...] = (2.0, 3.0)
#: entries per float64 chunk used by `svq_diagnostics` (32 MB)
CHUNK_ELEMENTS = 1 << 22


def perplexity_from_counts(counts: torch.Tensor) -> float:
    """exp(-sum p log(p + 1e-10)) with p = counts / counts.sum(); 1.0 when all counts are 0."""
    counts = counts.to(torch.float64)
    total = counts.sum()
    if total <= 0:
        return 1.0
    p = counts / total
    return float(torch.exp(-(p * torch.log(p + EPS)).sum()))


def weight_statistics(
    chunks: Callable[[], Iterable[torch.Tensor]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, float]:
    """Perplexities at each threshold and the kurtosis of W given as row chunks.

    `chunks()` must return a fresh iterable of (rows, N) tensors each time it is called:
    pass 1 merges per-chunk means and sums of squares (Chan et al.'s parallel update, so
    no catastrophic cancellation), pass 2 counts entries above each threshold per column
    and accumulates the fourth central moment with the now-known mean.
    """
    count = 0
    mean = 0.0
    m2 = 0.0
    n_cols: int | None = None
    for chunk in chunks():
        c = chunk.detach().to(torch.float64).reshape(chunk.shape[0], -1)
        if n_cols is None:
            n_cols = c.shape[1]
        nb = c.numel()
        if nb == 0:
            continue
        mb = float(c.mean())
        m2b = float(((c - mb) ** 2).sum())
        delta = mb - mean
        total = count + nb
        mean += delta * nb / total
        m2 += m2b + delta * delta * count * nb / total
        count = total
    if count < 2 or n_cols is None:
        raise ValueError("code-usage statistics need at least two weight entries")
    std = math.sqrt(m2 / (count - 1))  # torch.std default (unbiased), as the official code
    pop_var = m2 / count

    col_counts = {t: torch.zeros(n_cols, dtype=torch.float64) for t in thresholds}
    m4 = 0.0
    for chunk in chunks():
        c = chunk.detach().to(torch.float64).reshape(chunk.shape[0], -1)
        centred = c - mean
        m4 += float((centred**4).sum())
        z = centred.abs() / std if std > 0 else torch.zeros_like(centred)
        for t in thresholds:
            col_counts[t] += (z > t).sum(dim=0).to(torch.float64).cpu()

    out: dict[str, float] = {
        "mean": mean,
        "std": std,
        "kurtosis": (m4 / count) / (pop_var**2) if pop_var > 0 else float("nan"),
        "entries": float(count),
    }
    for t in thresholds:
        key = f"perplexity_{t:g}"
        out[key] = perplexity_from_counts(col_counts[t])
        out[f"active_fraction_{t:g}"] = float(col_counts[t].sum()) / count
    return out


@runtime_checkable
class HasCodeWeights(Protocol):
    """What `svq_diagnostics` needs of a quantizer (SVQ and SVQ-raw have both)."""

    codebook_size: int

    def code_weights(self, z: torch.Tensor, chunk_size: int | None = None) -> Iterator[torch.Tensor]: ...


def svq_diagnostics(
    quantizer: HasCodeWeights,
    z: torch.Tensor,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    chunk_rows: int | None = None,
) -> dict[str, float]:
    """Diagnostics of an SVQ-like quantizer's weights W on the latent `z` (BT, C, H', W').

    `quantizer` must have `code_weights(z, chunk_size)` yielding W in row chunks (SVQ and
    SVQ-raw do). Default chunk: about 4M entries (32 MB in float64), whatever N is.
    """
    n = int(quantizer.codebook_size)
    rows = chunk_rows or max(1, CHUNK_ELEMENTS // max(n, 1))

    def chunks() -> Iterable[torch.Tensor]:
        return quantizer.code_weights(z, chunk_size=rows)

    return weight_statistics(chunks, thresholds)


def index_perplexity(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Perplexity of code indices of shape (tokens, layers): one value per layer (float64)."""
    idx = indices.detach().reshape(indices.shape[0], -1).long()
    out = torch.empty(idx.shape[1], dtype=torch.float64)
    for j in range(idx.shape[1]):
        counts = torch.bincount(idx[:, j].cpu(), minlength=codebook_size)
        out[j] = perplexity_from_counts(counts)
    return out


def index_usage(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Fraction of the codebook selected at least once, per layer (tokens, layers)."""
    idx = indices.detach().reshape(indices.shape[0], -1).long()
    out = torch.empty(idx.shape[1], dtype=torch.float64)
    for j in range(idx.shape[1]):
        out[j] = torch.unique(idx[:, j]).numel() / codebook_size
    return out
