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
