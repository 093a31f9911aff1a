"""VQ baselines: official settings, interface, aux-loss rule, real perplexity, optional extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from svqcast.errors import MissingExtraError, UsageError
from svqcast.models.quantizers.diagnostics import index_perplexity
from svqcast.models.quantizers.registry import build_quantizer, quantizer_names

pytest.importorskip("vector_quantize_pytorch")

REFERENCE = Path(__file__).resolve().parent / "data" / "reference-numbers.json"  # see tests/data/README.md
KINDS = ["vq", "rvq", "grvq", "mhvq", "rfsq", "lfq", "rlfq"]


def reference_params() -> dict[str, int]:
    rows = json.loads(REFERENCE.read_text())["vq_baselines_t2m_gSTA"]
    # two rvq configs (plain / stochastic) with the same size; the plain one is our default
    return {r["vq_type"]: r["quantizer_params"] for r in rows}


def test_all_registered() -> None:
    names = quantizer_names()
    for kind in KINDS + ["svq", "svq-frozen", "svq-raw"]:
        assert kind in names


@pytest.mark.parametrize("kind", KINDS)
def test_baseline_interface(kind: str) -> None:
    torch.manual_seed(0)
    q = build_quantizer({"quantizer": kind}, 32)
    assert sum(p.numel() for p in q.parameters()) == reference_params()[kind]
    z = torch.randn(3, 32, 4, 8, requires_grad=True)
    q.train()
    out = q(z)
    assert out.quantized.shape == z.shape
    assert out.aux_loss.shape == ()
    if kind == "rfsq":
        assert float(out.aux_loss) == 0.0
    else:
        assert float(out.aux_loss.detach()) != 0.0
    (out.quantized.square().mean() + out.aux_loss).backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0  # straight-through reaches the input
    q.eval()
    with torch.no_grad():
        ev = q(z)
    assert float(ev.aux_loss) == 0.0 and ev.aux_loss.shape == ()
    # the logged perplexity is the real one over the selected indices
    idx = q.code_indices(z)
    assert idx.shape[0] % (3 * 4 * 8) == 0
    expected = float(index_perplexity(idx, q.codebook_size).mean())
    assert float(ev.diagnostics["perplexity"]) == pytest.approx(expected)
    assert 1.0 <= expected <= q.codebook_size


def test_vq_indices_are_nearest_codes() -> None:
    torch.manual_seed(1)
    q = build_quantizer({"quantizer": "vq"}, 32).eval()
    z = torch.randn(2, 32, 3, 3)
    idx = q.code_indices(z)[:, 0]
    tokens = z.permute(0, 2, 3, 1).reshape(-1, 32)
    codebook = q.lib.codebook.reshape(-1, 32)
    assert codebook.shape[0] == 1024
    nearest = torch.cdist(tokens, codebook).argmin(dim=1)
    assert torch.equal(idx, nearest)
    out = q(z).quantized.permute(0, 2, 3, 1).reshape(-1, 32)
    assert torch.allclose(out, codebook[nearest], atol=1e-6)


def test_official_settings_and_overrides() -> None:
    q = build_quantizer({"quantizer": "vq"}, 32)
    assert q.codebook_size == 1024 and q.options["decay"] == 0.8 and q.options["commitment_weight"] == 1.0
    q = build_quantizer({"quantizer": "vq", "vq_options": {"codebook_size": 512}}, 32)  # Table 11's
    assert q.codebook_size == 512
    assert build_quantizer({"quantizer": "rfsq"}, 32).codebook_size == 8 * 5 * 5 * 3
    assert build_quantizer({"quantizer": "lfq"}, 32).options["commitment_loss_weight"] == 0.25
    with pytest.raises(UsageError, match="vq_options"):
        build_quantizer({"quantizer": "vq", "vq_options": {"no_such_kw": 1}}, 32)


def test_missing_extra_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vector_quantize_pytorch", None)  # import now fails
    with pytest.raises(MissingExtraError, match=r"svqcast\[vq\]") as info:
        build_quantizer({"quantizer": "lfq"}, 32)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 1


def test_importing_svqcast_does_not_need_the_extra() -> None:
    code = (
        "import sys; sys.modules['vector_quantize_pytorch'] = None\n"
        "import svqcast\n"
        "from svqcast.models.quantizers.registry import quantizer_names, build_quantizer\n"
        "assert 'vq' in quantizer_names()\n"
        "build_quantizer({'quantizer': 'svq', 'codebook_size': 16}, 8)\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---- the fast codebook forward against the library's own (the oracle) -------------------------

FAST_KINDS = ["vq", "rvq", "grvq", "mhvq"]  # the VectorQuantize family; FSQ / LFQ have no codebook


def _twins(kind: str, dim: int, options: dict | None = None):
    from svqcast.models.quantizers.baselines import VQBaseline

    torch.manual_seed(0)
    lib = VQBaseline(kind, dim, options, fast=False)
    torch.manual_seed(0)
    fast = VQBaseline(kind, dim, options, fast=True)
    fast.load_state_dict(lib.state_dict())
    return lib, fast


@pytest.mark.parametrize("kind", FAST_KINDS)
def test_fast_codebook_matches_the_library_through_training_steps(kind: str) -> None:
    """Same indices, outputs, losses, input gradients and EMA buffers over three training steps
    (the EMA moves the codebook each step, so later steps test the updated state too)."""
    from svqcast.models.quantizers.fast_codebook import FastCodebook

    lib, fast = _twins(kind, 16)
    assert fast.fast_codebooks >= 1 and lib.fast_codebooks == 0
    assert any(isinstance(m, FastCodebook) for m in fast.modules())
    assert not any(isinstance(m, FastCodebook) for m in lib.modules())
    lib.train(), fast.train()
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        z = torch.randn(5, 16, 6, 7, generator=gen)
        za, zb = z.clone().requires_grad_(), z.clone().requires_grad_()
        assert torch.equal(lib.code_indices(z), fast.code_indices(z))
        a, b = lib(za), fast(zb)
        torch.testing.assert_close(b.quantized, a.quantized, rtol=0, atol=2e-6)
        torch.testing.assert_close(b.aux_loss, a.aux_loss, rtol=1e-6, atol=1e-7)
        (a.quantized.square().mean() + a.aux_loss).backward()
        (b.quantized.square().mean() + b.aux_loss).backward()
        torch.testing.assert_close(zb.grad, za.grad, rtol=1e-5, atol=1e-8)
        assert float(a.diagnostics["codebook_usage"]) == float(b.diagnostics["codebook_usage"])
    sa, sb = lib.state_dict(), fast.state_dict()
    assert sa.keys() == sb.keys()  # checkpoints stay interchangeable with the library path
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-5, atol=1e-6)


def test_fast_codebook_is_bit_exact_for_the_single_codebook_vq() -> None:
    lib, fast = _twins("vq", 8)
    lib.train(), fast.train()
    z = torch.randn(4, 8, 9, 11)
    for _ in range(2):
        assert torch.equal(fast(z).quantized, lib(z).quantized)
    assert torch.equal(fast.lib._codebook.cluster_size, lib.lib._codebook.cluster_size)


def test_nearest_codes_blocks_agree_with_a_float64_argmin() -> None:
    """The blockwise search is the nearest code, whatever the block size (float64 oracle)."""
    from svqcast.models.quantizers.fast_codebook import nearest_codes

    gen = torch.Generator().manual_seed(2)
    x, e = torch.randn(2, 300, 5, generator=gen), torch.randn(2, 40, 5, generator=gen)
    oracle = torch.cdist(x.double(), e.double()).argmin(dim=-1)
    for block in (1, 7, 64, 300, 4096):
        assert torch.equal(nearest_codes(x, e, block=block), oracle)


def test_fast_path_falls_back_where_it_does_not_apply() -> None:
    """Cosine distance and a distance-consuming loss keep the library's forward."""
    from svqcast.models.quantizers.baselines import VQBaseline

    assert VQBaseline("vq", 8, {"use_cosine_sim": True}).fast_codebooks == 0
    assert VQBaseline("vq", 8, {"commitment_use_cross_entropy_loss": True}).fast_codebooks == 0
    assert VQBaseline("vq", 8, {"stochastic_sample_codes": True}).fast_codebooks == 0
    assert VQBaseline("vq", 8).fast_codebooks == 1


@pytest.mark.parametrize(("kind", "options"), [
    ("mhvq", {"separate_codebook_per_head": True}),  # one codebook per head: the batched gather
    ("vq", {"threshold_ema_dead_code": 2}),  # dead codes re-drawn from the batch (same RNG draws)
    ("vq", {"kmeans_init": True}),  # k-means on the first batch, then the EMA
])
def test_fast_codebook_matches_the_library_in_other_configurations(kind: str, options: dict) -> None:
    lib, fast = _twins(kind, 16, options)
    assert fast.fast_codebooks >= 1
    lib.train(), fast.train()
    for step in range(3):
        z = torch.randn(3, 16, 5, 6, generator=torch.Generator().manual_seed(10 + step))
        torch.manual_seed(99)
        a = lib(z)
        torch.manual_seed(99)
        b = fast(z)
        torch.testing.assert_close(b.quantized, a.quantized, rtol=0, atol=2e-6)
        torch.testing.assert_close(b.aux_loss, a.aux_loss, rtol=1e-6, atol=1e-7)
    sa, sb = lib.state_dict(), fast.state_dict()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-5, atol=1e-6)
