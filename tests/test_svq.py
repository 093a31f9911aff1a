"""Fused SVQ == the official materialised formulation, and the SVQ module's facts.

The oracle is written here from the spec (1b), independently of svq.py: W = L2(act(L1 x)),
then `torch.bmm(W, codebook.expand(BT, N, C))`, exactly as the official module does it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from svqcast.models.quantizers.registry import build_quantizer
from svqcast.models.quantizers.svq import SVQ, svq_param_count

REFERENCE = Path(__file__).resolve().parent / "data" / "reference-numbers.json"  # see tests/data/README.md
TOL = 1e-10


def official_forward(q: SVQ, z: torch.Tensor) -> torch.Tensor:
    """The official SVQ forward, re-typed from the spec with functional ops."""
    bt, c, h, w = z.shape
    x = z.permute(0, 2, 3, 1).reshape(bt, h * w, c)
    proj = q.proj
    if proj.nonlinear:
        hid = F.linear(x, proj.linear_proj.weight, proj.linear_proj.bias)
        if isinstance(proj.hid_act, torch.nn.ReLU):
            hid = torch.relu(hid)
        weights = F.linear(hid, proj.linear_proj2.weight, proj.linear_proj2.bias)
    else:
        weights = F.linear(x, proj.linear_proj.weight, proj.linear_proj.bias)
    if proj.out_relu:
        weights = torch.relu(weights)
    out = torch.bmm(weights, q.codebook.expand(bt, *q.codebook.shape))
    return out.reshape(bt, h, w, c).permute(0, 3, 1, 2)


def run_and_grads(fn, q: SVQ, z0: torch.Tensor, cot: torch.Tensor):
    """Output, input gradient and every parameter gradient (None kept) of sum(fn(z) * cot)."""
    q.zero_grad(set_to_none=True)
    z = z0.clone().requires_grad_(True)
    out = fn(z)
    (out * cot).sum().backward()
    grads = {n: (None if p.grad is None else p.grad.clone()) for n, p in q.named_parameters()}
    return out.detach(), z.grad.clone(), grads


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def assert_same(q: SVQ, fused_fn, ref_fn, z: torch.Tensor) -> None:
    cot = torch.randn(z.shape, dtype=z.dtype, generator=torch.Generator().manual_seed(7))
    out_f, dz_f, g_f = run_and_grads(fused_fn, q, z, cot)
    out_r, dz_r, g_r = run_and_grads(ref_fn, q, z, cot)
    assert rel(out_f, out_r) < TOL
    assert rel(dz_f, dz_r) < TOL
    assert g_f.keys() == g_r.keys()
    for name in g_r:
        if g_r[name] is None:
            assert g_f[name] is None, name
        else:
            assert g_f[name] is not None, name
            assert rel(g_f[name], g_r[name]) < TOL, name


def make_svq(n: int, frozen: bool = False, **kw) -> SVQ:
    torch.manual_seed(n)
    return SVQ(32, codebook_size=n, freeze_codebook=frozen, **kw).double()


def latent(bt: int = 3, h: int = 4, w: int = 8, c: int = 32) -> torch.Tensor:
    return torch.randn(bt, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("n", [10, 1000, 10000])
@pytest.mark.parametrize("frozen", [False, True])
def test_fused_equals_materialised_float64(n: int, frozen: bool) -> None:
    q = make_svq(n, frozen)
    assert q.fused and q.can_fuse
    z = latent()
    assert_same(q, lambda t: q(t).quantized, lambda t: official_forward(q, t), z)
    # the module's own reference path (`fused=False`, used for FLOP counting) is the same thing
    q.fused = False
    assert_same(q, lambda t: q(t).quantized, lambda t: official_forward(q, t), z)
    if frozen:
        q.zero_grad(set_to_none=True)
        q.fused = True
        q(latent().requires_grad_(True)).quantized.sum().backward()
        assert q.codebook.grad is None
        assert q.proj.linear_proj2.weight.grad is not None


@pytest.mark.parametrize(
    "kw", [dict(nonlinear=False), dict(hid_relu=False), dict(middim=1280)], ids=["one-layer", "no-hid-relu", "bucket"]
)
def test_fused_variants(kw: dict) -> None:
    q = make_svq(1280 if "middim" in kw else 300, **kw)
    assert q.can_fuse
    assert_same(q, lambda t: q(t).quantized, lambda t: official_forward(q, t), latent())


@pytest.mark.parametrize("frozen", [False, True])
def test_out_relu_chunked_equals_materialised(frozen: bool) -> None:
    q = make_svq(500, frozen, out_relu=True, chunk_size=7)  # 96 tokens -> 14 chunks
    assert not q.can_fuse
    z = latent()
    assert_same(q, lambda t: q(t).quantized, lambda t: official_forward(q, t), z)
    # chunked path without any autograd recording too (eval, no_grad)
    with torch.no_grad():
        assert rel(q(z).quantized, official_forward(q, z)) < TOL
    # non-negative weights really are applied: differs from the out_relu=False module
    q2 = make_svq(500, frozen, out_relu=False)
    q2.load_state_dict(q.state_dict())
    with torch.no_grad():
        assert rel(q2(z).quantized, q(z).quantized) > 1e-3


def test_code_weights_chunks_equal_full_w() -> None:
    q = make_svq(100)
    z = latent()
    chunks = list(q.code_weights(z, chunk_size=10))
    assert len(chunks) == math.ceil(3 * 4 * 8 / 10)
    assert all(not c.requires_grad for c in chunks)
    x = z.permute(0, 2, 3, 1).reshape(-1, 32)
    full = q.proj.linear_proj2(torch.relu(q.proj.linear_proj(x)))
    assert rel(torch.cat(chunks), full) < TOL


def test_float32_fused_close_to_float64_reference() -> None:
    q = make_svq(10000)
    z = latent()
    ref = official_forward(q, z)
    q32 = q.float()
    out = q32(z.float()).quantized.double()
    assert rel(out, ref) < 1e-5


@pytest.mark.parametrize("n,params", [(10, 760), (1000, 165_224), (10000, 1_614_224)])
def test_param_counts(n: int, params: int) -> None:
    q = SVQ(32, codebook_size=n)
    assert sum(p.numel() for p in q.parameters()) == params == svq_param_count(32, n)
    if n == 10:
        assert q.proj.linear_proj.out_features == 10  # hidden width shrinks to N


def test_param_counts_match_reference_variants() -> None:
    rows = json.loads(REFERENCE.read_text())["svq_variants"]
    assert len(rows) >= 6
    for row in rows:
        kw = row["kwargs"]
        q = SVQ(
            kw["input_dim"],
            codebook_size=kw["codebook_size"],
            middim=kw["middim"],
            nonlinear=kw["nonlinear"],
            freeze_codebook=kw["freeze_codebook"],
            init=kw["init_method"],
        )
        count = sum(p.numel() for p in q.parameters())
        assert count == row["params"], row["variant"]
        assert svq_param_count(kw["input_dim"], kw["codebook_size"], kw["middim"], kw["nonlinear"]) == count


def test_frozen_codebook_is_still_a_parameter() -> None:
    q = build_quantizer({"quantizer": "svq-frozen", "codebook_size": 64}, 32)
    names = dict(q.named_parameters())
    assert "codebook" in names and not names["codebook"].requires_grad
    assert "codebook" in q.state_dict()
    assert sum(p.numel() for p in q.parameters()) == svq_param_count(32, 64)


def test_codebook_inits() -> None:
    torch.manual_seed(0)
    n, c = 10000, 32
    normal = SVQ(c, n, init="normal").codebook.detach()
    assert abs(normal.std().item() - 1.0) < 0.02 and abs(normal.mean().item()) < 0.02
    kaiming = SVQ(c, n, init="kaiming").codebook.detach()
    bound = math.sqrt(6 / c)  # fan_in = C: U(+-0.433)
    assert kaiming.abs().max().item() <= bound
    assert kaiming.abs().max().item() > 0.99 * bound
    assert abs(kaiming.std().item() - bound / math.sqrt(3)) < 0.01  # 0.25
    xavier = SVQ(c, n, init="xavier").codebook.detach()
    xb = math.sqrt(2) * math.sqrt(6 / (n + c))
    assert xavier.abs().max().item() <= xb and xavier.abs().max().item() > 0.99 * xb
    trunc = SVQ(c, n, init="trunc").codebook.detach()
    assert trunc.abs().max().item() <= 2.0 and trunc.std().item() > 0.85
    ortho = SVQ(c, 200, init="orthogonal").codebook.detach().double()
    assert torch.allclose(ortho.t() @ ortho, torch.eye(c, dtype=torch.float64), atol=1e-5)
    sparse = SVQ(c, 100, init="sparse").codebook.detach()
    zeros_per_column = (sparse == 0).sum(dim=0)
    assert bool((zeros_per_column == 90).all())  # ceil(0.9 * 100) rows zeroed in every column
    rnd = SVQ(c, n, init="random").codebook.detach()
    assert abs(rnd.std().item() - 1.0) < 0.02
    with pytest.raises(ValueError):
        SVQ(c, 10, init="nope")


_MILLION_CHILD = textwrap.dedent(
    """
    import json, sys, time, torch
    from svqcast.models.quantizers.svq import SVQ
    torch.set_num_threads(1)
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    torch.manual_seed(0)
    q = SVQ(32, codebook_size=1_000_000, init="kaiming")
    z = torch.randn(12, 32, 16, 32, requires_grad=True)  # one WB-S sample: 12 frames, 16x32 latent
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    t0 = time.perf_counter()
    out = q(z).quantized
    out.square().mean().backward()
    dt = time.perf_counter() - t0
    peak = status("VmHWM:")
    ok = bool(torch.isfinite(out).all()) and q.codebook.grad is not None and z.grad is not None
    print(json.dumps({"increase": peak - base, "seconds": dt, "ok": ok, "shape": list(out.shape)}))
    """
)


@pytest.mark.timeout(240)
def test_million_code_codebook_fits_in_ordinary_memory(tmp_path: Path) -> None:
    """W for 6,144 tokens x 1e6 codes would be 24.6 GB (49 GB with its gradient)."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to measure the peak RSS")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _MILLION_CHILD], capture_output=True, text=True, env=env, timeout=230
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    w_bytes = 12 * 16 * 32 * 1_000_000 * 4
    assert res["ok"] and res["shape"] == [12, 32, 16, 32]
    # gradients of the 1e6 x (128 + 32) parameters are 0.64 GB; W alone would be 24.6 GB
    assert res["increase"] < 2.5e9, res
    assert res["increase"] < w_bytes / 10


@pytest.mark.parametrize("post_vq", [False, True], ids=["pre", "post"])
@pytest.mark.parametrize("quantizer", ["svq", "svq-frozen"])
@pytest.mark.parametrize("n", [10, 1000, 10000])
def test_fused_equals_materialised_inside_simvp(post_vq: bool, quantizer: str, n: int) -> None:
    """The whole SimVP+SVQ model in float64: loss, input gradient and every parameter gradient."""
    import svqcast

    torch.manual_seed(0)
    model = svqcast.build_model(
        "_defaults",
        overrides={
            "model.in_shape": [2, 1, 8, 8],
            "model.out_frames": 2,
            "model.hid_S": 32,
            "model.hid_T": 16,
            "model.N_T": 2,
            "model.drop_path": 0.0,
            "model.quantizer": quantizer,
            "model.codebook_size": n,
            "model.post_vq": post_vq,
        },
    ).double()
    assert model.post_vq is post_vq
    x0 = torch.randn(2, 2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    results = []
    for fused in (True, False):
        model.quantizer.fused = fused
        model.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        torch.manual_seed(11)  # stochastic depth starts at 0.01 even with drop_path 0: same draws
        out = model(x)
        out.square().sum().backward()
        grads = {k: (None if p.grad is None else p.grad.clone()) for k, p in model.named_parameters()}
        results.append((out.detach(), x.grad.clone(), grads))
    (o1, dx1, g1), (o2, dx2, g2) = results
    assert rel(o1, o2) < TOL and rel(dx1, dx2) < TOL
    for k in g2:
        if g2[k] is None:
            assert g1[k] is None, k
        else:
            assert rel(g1[k], g2[k]) < TOL, k
    assert (g1["quantizer.codebook"] is None) == (quantizer == "svq-frozen")
