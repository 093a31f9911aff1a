"""Code-usage perplexity and kurtosis: chunked streaming == direct float64 formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svqcast.models.quantizers.diagnostics import (
    index_perplexity,
    index_usage,
    perplexity_from_counts,
    svq_diagnostics,
    weight_statistics,
)
from svqcast.models.quantizers.svq import SVQ


def direct(w: torch.Tensor, thresholds=(2.0, 3.0)) -> dict[str, float]:
    """The spec's recipe on the whole W at once, in float64."""
    w = w.double()
    z = (w - w.mean()).abs() / w.std()
    out = {}
    for t in thresholds:
        counts = (z > t).double().sum(dim=0)
        p = counts / counts.sum()
        out[f"perplexity_{t:g}"] = math.exp(-float((p * torch.log(p + 1e-10)).sum()))
    out["kurtosis"] = float((((w - w.mean()) / w.std(unbiased=False)) ** 4).mean())
    return out


def chunker(w: torch.Tensor, rows: int):
    return lambda: iter(w.split(rows))


@pytest.mark.parametrize("rows", [1, 7, 64, 1000])
def test_streaming_equals_direct(rows: int) -> None:
    g = torch.Generator().manual_seed(0)
    # heavy-tailed, non-centred weights, like a trained SVQ's
    w = (torch.randn(300, 40, generator=g) ** 3 + 0.5).float()
    ref = direct(w)
    got = weight_statistics(chunker(w, rows))
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got["entries"] == w.numel()
    assert got["mean"] == pytest.approx(float(w.double().mean()), rel=1e-12)


def test_hand_computed_perplexity() -> None:
    w = torch.zeros(1000, 4, dtype=torch.float64)
    w[0, 0] = w[1, 1] = 100.0  # two outliers in two different columns
    s = weight_statistics(chunker(w, 33))
    assert s["perplexity_2"] == pytest.approx(2.0, rel=1e-8)
    assert s["perplexity_3"] == pytest.approx(2.0, rel=1e-8)
    w[2, 1] = 100.0  # column 1 now has 2 of the 3 active entries
    s = weight_statistics(chunker(w, 33))
    p = np.array([1 / 3, 2 / 3])
    assert s["perplexity_3"] == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-8)


def test_gaussian_kurtosis_is_three() -> None:
    w = torch.randn(4000, 50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = weight_statistics(chunker(w, 512))
    assert s["kurtosis"] == pytest.approx(3.0, abs=0.05)
    # a Gaussian has about 4.6 % of entries beyond 2 sigma and 0.27 % beyond 3 sigma
    assert s["active_fraction_2"] == pytest.approx(0.0455, abs=0.003)
    assert s["active_fraction_3"] == pytest.approx(0.0027, abs=0.0008)
    assert s["perplexity_2"] == pytest.approx(50, rel=0.01)  # spread evenly over columns


def test_svq_diagnostics_use_the_real_w() -> None:
    torch.manual_seed(0)
    q = SVQ(32, codebook_size=300).double()
    z = torch.randn(2, 32, 4, 6, dtype=torch.float64)
    x = z.permute(0, 2, 3, 1).reshape(-1, 32)
    with torch.no_grad():
        w = q.proj(x)
    ref = direct(w)
    for rows in (None, 5):
        got = svq_diagnostics(q, z, chunk_rows=rows)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, rel=1e-10), (rows, key)


def test_index_perplexity_and_usage() -> None:
    uniform = torch.arange(64).repeat(10)[:, None]
    assert float(index_perplexity(uniform, 128)[0]) == pytest.approx(64.0, rel=1e-8)
    assert float(index_usage(uniform, 128)[0]) == 0.5
    single = torch.full((100, 1), 3)
    assert float(index_perplexity(single, 16)[0]) == pytest.approx(1.0)
    layered = torch.stack([torch.arange(8).repeat(4), torch.zeros(32, dtype=torch.long)], dim=1)
    perp = index_perplexity(layered, 8)
    assert perp.shape == (2,) and float(perp[0]) == pytest.approx(8.0) and float(perp[1]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 20, size=500) ** 2 % 20
    counts = np.bincount(idx, minlength=20)
    p = counts / counts.sum()
    ent = -(p * np.log(p + 1e-10)).sum()
    assert float(index_perplexity(torch.from_numpy(idx)[:, None], 20)[0]) == pytest.approx(math.exp(ent))
    assert perplexity_from_counts(torch.zeros(5)) == 1.0
