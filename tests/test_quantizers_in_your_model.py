"""docs/quantizers-in-your-model.md: its example runs as written (forward, backward, an
optimizer step), every parameter of the user's model gets a gradient, and the quantizers
are importable from the top-level package."""

from __future__ import annotations

import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "quantizers-in-your-model.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "the page has one runnable example"
    return blocks[0]


def _run_example() -> dict:
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(_example(), str(DOC), "exec"), namespace)  # our own docs page
    return namespace


def test_docs_example_runs_and_trains() -> None:
    ns = _run_example()
    model, x, recon = ns["model"], ns["x"], ns["recon"]
    assert recon.shape == x.shape
    assert float(ns["aux"]) == 0.0  # SVQ adds no auxiliary loss
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    assert float(model.quantizer.codebook.grad.abs().sum()) > 0.0  # the codebook learns
    # the optimizer step changed the weights: a second forward gives another loss
    before = float(ns["loss"].detach())
    with torch.no_grad():
        after = float(torch.nn.functional.mse_loss(model(x)[0], x))
    assert after != before


def test_svq_output_equals_the_materialised_formula() -> None:
    """The layer computes W(x) @ M for each token (fused), on any (N, C, H, W) map."""
    from svqcast import SVQ, QuantizerOutput

    torch.manual_seed(1)
    layer = SVQ(6, codebook_size=20, middim=8).double()
    z = torch.randn(3, 6, 4, 5, dtype=torch.float64)
    out = layer(z)
    assert isinstance(out, QuantizerOutput) and out.quantized.shape == z.shape
    tokens = z.permute(0, 2, 3, 1).reshape(-1, 6)
    expected = layer.proj(tokens) @ layer.codebook
    got = out.quantized.permute(0, 2, 3, 1).reshape(-1, 6)
    assert torch.allclose(got, expected, atol=1e-12)


def test_svq_raw_drops_in() -> None:
    from svqcast import SVQRaw

    ns = _run_example()
    model, x = ns["model"], ns["x"]
    model.quantizer = SVQRaw(16, codebook_size=32, iters=3)
    recon, aux = model(x)
    (torch.nn.functional.mse_loss(recon, x) + aux).backward()
    assert recon.shape == x.shape and model.quantizer.codebook.grad is not None
