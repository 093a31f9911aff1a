"""Registry-parametrised tests of the SimVP backbone and the 13 translators (small shapes)."""

from __future__ import annotations

import copy

import pytest
import torch

from svqcast.config import load_config
from svqcast.models.factory import build_model_from_config
from svqcast.models.simvp import SimVP
from svqcast.models.translators import SUBBLOCKS, TRANSLATOR_NAMES, TRANSLATORS, BlockSpec
from svqcast.models.translators.transformers import SwinBlock, shift_attention_mask

SMALL = {
    "in_shape": [4, 2, 16, 16],
    "out_frames": 4,
    "hid_S": 8,
    "hid_T": 16,
    "N_S": 2,
    "N_T": 3,
    "codebook_size": 64,
    "middim": 16,
    "drop_path": 0.1,
}


def small_cfg(translator: str, quantizer: str = "none", **extra: object) -> dict:
    cfg = load_config("_defaults")
    cfg["model"].update(SMALL, translator=translator, quantizer=quantizer, **extra)
    return cfg


def build_small(translator: str, quantizer: str = "none", seed: int = 0, **extra: object) -> SimVP:
    torch.manual_seed(seed)
    model = build_model_from_config(small_cfg(translator, quantizer, **extra))
    assert isinstance(model, SimVP)
    return model


def test_registry_has_the_13_families() -> None:
    assert set(TRANSLATORS) == set(TRANSLATOR_NAMES)
    assert len(TRANSLATOR_NAMES) == 13
    assert set(SUBBLOCKS) == set(TRANSLATOR_NAMES) - {"incepu"}


@pytest.mark.parametrize("quantizer", ["none", "svq"])
@pytest.mark.parametrize("translator", TRANSLATOR_NAMES)
def test_forward_backward_small(translator: str, quantizer: str) -> None:
    model = build_small(translator, quantizer)
    model.train()
    x = torch.randn(1, 4, 2, 16, 16)
    out = model.forward_with_aux(x)
    y = out.pred
    assert y.shape == (1, 4, 2, 16, 16)
    assert torch.isfinite(y).all()
    assert out.aux_loss.shape == ()
    (y.square().mean() + out.aux_loss).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert (model.quantizer is not None) == (quantizer == "svq")
    model.eval()
    with torch.no_grad():
        assert float(model.forward_with_aux(x).aux_loss) == 0.0


def test_aliases_and_unknown_translator() -> None:
    from svqcast.errors import UsageError

    a = build_small("mlp")
    b = build_small("mlpmixer")
    assert a.state_dict().keys() == b.state_dict().keys()
    with pytest.raises(UsageError, match="unknown translator"):
        build_small("resnet")


def test_state_dict_layout_mirrors_openstl() -> None:
    keys = set(build_small("gsta", "svq").state_dict())
    for k in (
        "enc.enc.0.conv.conv.weight",
        "enc.enc.1.conv.norm.bias",
        "dec.dec.0.conv.conv.0.weight",  # the conv inside Sequential(conv, PixelShuffle)
        "dec.dec.1.conv.conv.weight",
        "dec.readout.weight",
        "hid.enc.0.reduction.weight",
        "hid.enc.2.reduction.bias",
        "hid.enc.0.block.attn.spatial_gating_unit.conv_spatial.weight",
        "hid.enc.1.block.mlp.dwconv.dwconv.weight",
        "hid.enc.1.block.layer_scale_1",
        "hid.enc.1.block.norm1.running_var",
        "hid.enc.1.block.norm1.num_batches_tracked",
    ):
        assert k in keys, k
    assert "hid.enc.1.reduction.weight" not in keys
    assert any(k.startswith("quantizer.") for k in keys)
    inc = set(build_small("incepu").state_dict())
    assert {"hid.enc.0.conv1.weight", "hid.dec.1.layers.3.conv.weight", "hid.dec.2.layers.0.norm.weight"} <= inc
    swin = build_small("swin").state_dict()
    assert "hid.enc.0.block.attn.relative_position_index" in swin
    assert "hid.enc.0.block.attn_mask" not in swin  # unshifted layer: no mask
    assert swin["hid.enc.1.block.attn_mask"].shape == (4, 16, 16)  # 8x8 latent, window 4
    assert "hid.enc.1.block.attn.relative_position_bias_table" in swin
    cnx = set(build_small("convnext").state_dict())
    assert {"hid.enc.1.block.conv_dw.weight", "hid.enc.1.block.gamma", "hid.enc.1.block.mlp.fc2.bias"} <= cnx
    mix = set(build_small("mlpmixer").state_dict())
    assert {"hid.enc.1.block.mlp_tokens.fc1.weight", "hid.enc.1.block.mlp_channels.fc2.weight"} <= mix
    vit = set(build_small("vit").state_dict())
    assert {"hid.enc.1.block.attn.qkv.weight", "hid.enc.1.block.attn.proj.bias"} <= vit


def test_full_size_swin_mask_buffer_shape() -> None:
    cfg = load_config("weatherbench-s-t2m_swin")
    with torch.device("meta"):
        model = build_model_from_config(cfg)
    sd = model.state_dict()
    # docs/reference/official-behaviour.md §2.5: [nW, ws^2, ws^2]
    assert sd["hid.enc.1.block.attn_mask"].shape == (32, 16, 16)
    assert "hid.enc.2.block.attn_mask" not in sd


def test_drop_path_schedule_and_layer_scales() -> None:
    model = build_small("gsta", N_T=5, drop_path=0.2)
    ps = [blk.block.drop_path.p for blk in model.hid.enc]
    expected = torch.linspace(0.01, 0.2, 5).tolist()
    assert ps == pytest.approx(expected)
    assert ps[-1] == 0.2
    blk = model.hid.enc[1].block
    assert torch.all(blk.layer_scale_1 == 1e-2)
    # IncepU has no drop path at all; ConvMixer neither
    assert not any("DropPath" in type(m).__name__ for m in build_small("convmixer").modules())


def test_inits_follow_the_spec() -> None:
    torch.manual_seed(0)
    spec = BlockSpec(dim=256, out_dim=256, layer_i=1, resolution=(16, 32), mlp_ratio=8.0, drop=0.0, drop_path=0.0)
    gsta = SUBBLOCKS["gsta"](spec)
    w = gsta.mlp.fc1.weight  # 1x1 conv 256 -> 2048: fan_out = 2048
    assert float(w.detach().std()) == pytest.approx((2 / 2048) ** 0.5, rel=0.05)
    assert float(gsta.attn.proj_1.bias.detach().abs().max()) == 0.0
    tau = SUBBLOCKS["tau"](spec)
    # TAU's attention is created after the init pass: PyTorch default (non-zero bias)
    assert float(tau.attn.proj_1.bias.detach().abs().max()) > 0.0
    assert float(tau.mlp.fc1.bias.detach().abs().max()) == 0.0
    swin = SUBBLOCKS["swin"](spec)
    assert float(swin.attn.relative_position_bias_table.detach().std()) == pytest.approx(0.02, rel=0.15)
    assert float(swin.attn.qkv.weight.detach().std()) == pytest.approx(0.02, rel=0.05)
    assert float(swin.attn.qkv.bias.detach().abs().max()) == 0.0


# ------------------------------------------------------------------------ Swin mask
def _swin_pair() -> tuple[SwinBlock, SwinBlock]:
    spec = BlockSpec(dim=16, out_dim=16, layer_i=1, resolution=(8, 8), mlp_ratio=2.0, drop=0.0, drop_path=0.0)
    torch.manual_seed(0)
    masked = SwinBlock(spec, shift_mask=True).eval()
    with torch.no_grad():  # larger weights so that attention is far from uniform
        for p in masked.attn.parameters():
            p.normal_(0.0, 0.2)
    unmasked = SwinBlock(spec, shift_mask=False).eval()
    unmasked.load_state_dict(masked.state_dict())
    assert masked.shift_size == 2 and masked.window_size == 4
    return masked, unmasked


def test_swin_mask_blocks_attention_across_shift_regions() -> None:
    """After the cyclic shift by 2, original rows 0 and 6 share a window but lie in
    different regions: with the mask, perturbing (0, 6) cannot change the output at (6, 6);
    perturbing (7, 6) (same region) must. OpenSTL's maskless variant leaks across."""
    masked, unmasked = _swin_pair()
    torch.manual_seed(1)
    x = torch.randn(1, 16, 8, 8)
    other_region, same_region = x.clone(), x.clone()
    bump = 3.0 * torch.randn(16)  # not constant across channels: LayerNorm would remove that
    other_region[0, :, 0, 6] += bump
    same_region[0, :, 7, 6] += bump
    with torch.no_grad():
        base_m, base_u = masked(x), unmasked(x)
        assert torch.allclose(masked(other_region)[0, :, 6, 6], base_m[0, :, 6, 6], atol=1e-6)
        assert not torch.allclose(masked(same_region)[0, :, 6, 6], base_m[0, :, 6, 6], atol=1e-4)
        assert not torch.allclose(unmasked(other_region)[0, :, 6, 6], base_u[0, :, 6, 6], atol=1e-4)
        assert not torch.allclose(base_m, base_u, atol=1e-5)


def test_swin_mask_flag_only_matters_on_shifted_layers() -> None:
    spec = BlockSpec(dim=16, out_dim=16, layer_i=0, resolution=(8, 8), mlp_ratio=2.0, drop=0.0, drop_path=0.0)
    a = SwinBlock(spec, shift_mask=True).eval()
    b = SwinBlock(spec, shift_mask=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    # whole model: the flag changes the output but not the state-dict keys
    m1 = build_small("swin", seed=3).eval()
    m2 = build_small("swin", seed=3, swin_shift_mask=False).eval()
    assert m1.state_dict().keys() == m2.state_dict().keys()
    m2.load_state_dict(m1.state_dict())
    xx = torch.randn(1, 4, 2, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(m1(xx), m2(xx), atol=1e-6)


def test_shift_mask_values() -> None:
    mask = shift_attention_mask(8, 8, 4, 2)
    assert mask.shape == (4, 16, 16)
    assert torch.all(mask[0] == 0)  # the top-left window holds one region only
    assert set(mask.unique().tolist()) == {-100.0, 0.0}
    assert torch.equal(mask, mask.transpose(1, 2))


# ------------------------------------------------------------- output-length adaptation
def test_fewer_output_frames_keep_the_first() -> None:
    full = build_small("gsta", seed=5).eval()
    short = build_small("gsta", seed=5, out_frames=1).eval()
    short.load_state_dict(full.state_dict())
    x = torch.randn(2, 4, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(short(x), full(x)[:, :1])


def test_more_output_frames_roll_out_autoregressively() -> None:
    model = build_small("gsta", "svq", seed=6, out_frames=10).eval()
    x = torch.randn(1, 4, 2, 16, 16)
    with torch.no_grad():
        y = model(x)
        a = model.step(x)
        b = model.step(a)
        c = model.step(b)
    assert y.shape == (1, 10, 2, 16, 16)
    assert torch.allclose(y, torch.cat([a, b, c[:, :2]], dim=1))


def test_rollout_gradients_flow_through_every_call() -> None:
    model = build_small("convnext", seed=7, out_frames=10).train()
    x = torch.randn(1, 4, 2, 16, 16, requires_grad=True)
    y = model(x)
    y[:, 8:].sum().backward()  # frames of the third (partial) call only
    assert x.grad is not None and float(x.grad.abs().sum()) > 0.0


def test_aux_loss_and_diagnostics_are_returned_not_stored() -> None:
    from svqcast.models.simvp import ModelOutput

    model = build_small("gsta").eval()  # eval: BatchNorm statistics stay fixed between calls
    x = torch.randn(1, 4, 2, 16, 16)
    out = model.forward_with_aux(x)
    assert isinstance(out, ModelOutput)
    assert float(out.aux_loss) == 0.0 and out.diagnostics == {}
    assert torch.equal(model(x), out.pred)  # plain forward: the prediction tensor
    assert torch.equal(model(x, return_aux=True).pred, out.pred)
    assert not hasattr(model, "aux_loss") and not hasattr(model, "quantizer_diagnostics")


def test_post_vq_quantizes_translator_output() -> None:
    pre = build_small("gsta", "svq", seed=8).eval()
    post = build_small("gsta", "svq", seed=8, post_vq=True).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(1, 4, 2, 16, 16)
    seen: list[torch.Tensor] = []
    h = post.quantizer.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        latent, _ = post.enc(x.reshape(4, 2, 16, 16))
        hid = post.hid(latent.reshape(1, 32, 8, 8)).reshape(4, 8, 8, 8)
        post(x)
    h.remove()
    assert torch.allclose(seen[0], hid, atol=1e-6)
    with torch.no_grad():
        assert not torch.allclose(pre(x), post(x))


def test_wrong_input_shape_is_a_data_error() -> None:
    from svqcast.errors import DataError

    with pytest.raises(DataError, match="expects input"):
        build_small("gsta")(torch.randn(1, 3, 2, 16, 16))


def test_build_model_api_overrides_codebook() -> None:
    import svqcast

    with torch.device("meta"):
        m = svqcast.build_model("weatherbench-s-t2m_gsta_svq", overrides={"model.codebook_size": 4096})
    assert m.quantizer.codebook.shape == (4096, 32)
    # (C*k + k) + (k*N + N) + N*C with C=32, k=128
    expected = 12_758_305 + (32 * 128 + 128) + (128 * 4096 + 4096) + 4096 * 32
    assert sum(p.numel() for p in m.parameters()) == expected


def test_config_is_not_mutated() -> None:
    cfg = small_cfg("gsta")
    before = copy.deepcopy(cfg)
    build_model_from_config(cfg)
    assert cfg == before


def test_deepcopy_after_a_training_forward() -> None:
    """A best-model snapshot (`copy.deepcopy`) works after a training forward: the module
    keeps no tensor of the autograd graph (the aux loss is returned, not stored)."""
    model = build_small("gsta", "svq").train()
    out = model.forward_with_aux(torch.randn(1, 4, 2, 16, 16))
    assert out.pred.requires_grad
    clone = copy.deepcopy(model)
    for a, b in zip(model.state_dict().values(), clone.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"model.translator": "swin", "model.in_shape": [12, 1, 28, 60]}, "not divisible by window"),
        ({"model.translator": "moganet", "model.hid_T": 100}, "divisible by 8"),
        ({"model.N_S": 3}, "even number"),
        ({"model.N_T": 1}, "N_T >= 2"),
    ],
)
def test_impossible_architectures_are_usage_errors(overrides: dict, match: str) -> None:
    from svqcast.errors import UsageError
    from svqcast.models.summary import describe

    with pytest.raises(UsageError, match=match):
        describe("weatherbench-s-t2m_gsta", overrides)


# ------------------------------------------------- float64 oracles written from the spec
def _randomise(block: torch.nn.Module) -> None:
    """Non-trivial BN statistics and layer scales so that every term of the block matters."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.3)
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _bn(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    sh = (1, -1, 1, 1)
    scale = bn.weight.view(sh) / torch.sqrt(bn.running_var.view(sh) + bn.eps)
    return (x - bn.running_mean.view(sh)) * scale + bn.bias.view(sh)


def _conv(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    return torch.nn.functional.conv2d(
        x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups
    )


@pytest.mark.parametrize("kind", ["gsta", "tau", "van"])
def test_lka_blocks_match_a_float64_oracle(kind: str) -> None:
    """x += ls1 * (proj_2(gate(GELU(proj_1(BN1 x)))) + BN1 x); x += ls2 * MixMlp(BN2 x),
    gate: gSTA sigmoid(g) * f, TAU SE(u) * conv1(dw(dw u)) * u, VAN u * conv1(dw(dw u))."""
    F_ = torch.nn.functional
    spec = BlockSpec(dim=16, out_dim=16, layer_i=1, resolution=(8, 8), mlp_ratio=2.0, drop=0.0, drop_path=0.0)
    block = SUBBLOCKS[kind](spec).double().eval()
    _randomise(block)
    x = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        got = block(x)
        a, gu = block.attn, block.attn.spatial_gating_unit
        n1 = _bn(x, block.norm1)
        u = F_.gelu(_conv(n1, a.proj_1))
        lka = _conv(_conv(_conv(u, gu.conv0), gu.conv_spatial), gu.conv1)
        if kind == "gsta":
            gate = torch.sigmoid(lka[:, 16:]) * lka[:, :16]
        elif kind == "van":
            gate = u * lka
        else:
            se = torch.sigmoid(F_.linear(F_.relu(F_.linear(u.mean((2, 3)), gu.fc[0].weight)), gu.fc[2].weight))
            gate = se[:, :, None, None] * lka * u
        y = x + block.layer_scale_1.view(1, -1, 1, 1) * (_conv(gate, a.proj_2) + n1)
        n2 = _bn(y, block.norm2)
        mlp = block.mlp
        hidden = F_.gelu(_conv(_conv(n2, mlp.fc1), mlp.dwconv.dwconv))
        want = y + block.layer_scale_2.view(1, -1, 1, 1) * _conv(hidden, mlp.fc2)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_swin_block_matches_a_float64_oracle() -> None:
    """Windowed attention with relative position bias and the shift mask, computed token by
    token with explicit loops over windows (independent of window_partition)."""
    F_ = torch.nn.functional
    spec = BlockSpec(dim=16, out_dim=16, layer_i=1, resolution=(8, 8), mlp_ratio=2.0, drop=0.0, drop_path=0.0)
    block = SwinBlock(spec, shift_mask=True).double().eval()
    _randomise(block)
    block.attn.fused_attn = False  # the oracle pins the explicit path; fused == explicit is tested separately
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64)
    ws, s, heads, hd = 4, 2, 8, 2
    with torch.no_grad():
        got = block(x)
        block.attn.fused_attn = True
        got_fused = block(x)
        t = x[0].permute(1, 2, 0)  # (H, W, C)
        n = F_.layer_norm(t, (16,), block.norm1.weight, block.norm1.bias, block.norm1.eps)
        rolled = torch.roll(n, (-s, -s), (0, 1))
        region = torch.zeros(8, 8, dtype=torch.long)  # which of the 9 shift regions a rolled cell is in
        for i in range(8):
            for j in range(8):
                region[i, j] = 3 * (0 if i < 4 else 1 if i < 6 else 2) + (0 if j < 4 else 1 if j < 6 else 2)
        att = block.attn
        out = torch.zeros_like(rolled)
        for wi in range(0, 8, ws):
            for wj in range(0, 8, ws):
                cells = [(wi + a, wj + b) for a in range(ws) for b in range(ws)]
                tok = torch.stack([rolled[c] for c in cells])  # (16, C)
                qkv = F_.linear(tok, att.qkv.weight, att.qkv.bias).view(16, 3, heads, hd)
                q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
                res = torch.zeros(16, heads, hd, dtype=torch.float64)
                for p_, (pi, pj) in enumerate(cells):
                    for h in range(heads):
                        logits = torch.zeros(16, dtype=torch.float64)
                        for r_, (ri, rj) in enumerate(cells):
                            di, dj = (pi - ri) + ws - 1, (pj - rj) + ws - 1
                            bias = att.relative_position_bias_table[di * (2 * ws - 1) + dj, h]
                            logits[r_] = (q[p_, h] * hd**-0.5) @ k[r_, h] + bias
                            if region[pi, pj] != region[ri, rj]:
                                logits[r_] -= 100.0
                        res[p_, h] = torch.softmax(logits, 0) @ v[:, h]
                proj = F_.linear(res.reshape(16, 16), att.proj.weight, att.proj.bias)
                for p_, c in enumerate(cells):
                    out[c] = proj[p_]
        y = t + torch.roll(out, (s, s), (0, 1))
        m = F_.layer_norm(y, (16,), block.norm2.weight, block.norm2.bias, block.norm2.eps)
        hidden = F_.gelu(F_.linear(m, block.mlp.fc1.weight, block.mlp.fc1.bias))
        y = y + F_.linear(hidden, block.mlp.fc2.weight, block.mlp.fc2.bias)
        want = y.permute(2, 0, 1)[None]
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-10)
    assert torch.allclose(got_fused, want, rtol=1e-10, atol=1e-10)


def test_backbone_matches_a_float64_oracle() -> None:
    """Encoder (conv-GN(2)-SiLU, stride 2 on layer 1), translator on (B, T*C', H', W'),
    decoder (conv to 4C' + PixelShuffle, then the last layer on hid + skip), 1x1 readout."""
    F_ = torch.nn.functional
    model = build_small("gsta", seed=9).double().eval()
    model.hid = torch.nn.Identity()  # the translator has its own oracles; keep this one cheap
    _randomise(model)
    x = torch.randn(2, 4, 2, 16, 16, dtype=torch.float64)

    def convsc(h: torch.Tensor, layer: torch.nn.Module, stride: int = 1, up: bool = False) -> torch.Tensor:
        c = layer.conv
        if up:
            h = F_.pixel_shuffle(F_.conv2d(h, c.conv[0].weight, c.conv[0].bias, 1, 1), 2)
        else:
            h = F_.conv2d(h, c.conv.weight, c.conv.bias, stride, 1)
        return F_.silu(F_.group_norm(h, 2, c.norm.weight, c.norm.bias, c.norm.eps))

    with torch.no_grad():
        got = model(x)
        flat = x.reshape(8, 2, 16, 16)
        skip = convsc(flat, model.enc.enc[0])
        latent = convsc(skip, model.enc.enc[1], stride=2)  # (8, 8, 8, 8)
        z = model.hid(latent.reshape(2, 32, 8, 8)).reshape(8, 8, 8, 8)
        d0 = convsc(z, model.dec.dec[0], up=True)
        d1 = convsc(d0 + skip, model.dec.dec[1])
        want = F_.conv2d(d1, model.dec.readout.weight, model.dec.readout.bias).reshape(2, 4, 2, 16, 16)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------ fused (SDPA) attention == explicit matmuls
def _attention_block(kind: str, shift_mask: bool = True) -> torch.nn.Module:
    """One block with an attention module; larger weights so attention is far from uniform."""
    from svqcast.models.translators.transformers import UniformerBlock, ViTBlock

    spec = BlockSpec(dim=16, out_dim=16, layer_i=1, resolution=(8, 8), mlp_ratio=2.0, drop=0.0, drop_path=0.0)
    torch.manual_seed(4)
    block = {"vit": lambda: ViTBlock(spec), "uniformer": lambda: UniformerBlock(spec, init_value=0.5),
             "swin": lambda: SwinBlock(spec, shift_mask=shift_mask)}[kind]()
    with torch.no_grad():
        for p in block.attn.parameters():
            p.normal_(0.0, 0.3)
    return block


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("kind,shift_mask", [("vit", True), ("uniformer", True), ("swin", True), ("swin", False)])
def test_fused_attention_equals_the_explicit_path(kind: str, shift_mask: bool) -> None:
    """float32, forward and every gradient, within 1e-5 relative (SDPA reassociates sums)."""
    block = _attention_block(kind, shift_mask).train()
    assert block.attn.fused_attn  # the default
    if kind == "uniformer":
        assert block.block_type == "MHSA"
    if kind == "swin":
        assert block.shift_size == 2 and (block.attn_mask is not None)
    x = torch.randn(3, 16, 8, 8)
    results = {}
    for fused in (True, False):
        block.attn.fused_attn = fused
        block.zero_grad(set_to_none=True)
        xx = x.clone().requires_grad_(True)
        y = block(xx)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        results[fused] = (y.detach(), xx.grad, {n: p.grad.clone() for n, p in block.named_parameters()})
    (y1, gx1, g1), (y0, gx0, g0) = results[True], results[False]
    assert _rel(y1, y0) < 1e-5
    assert _rel(gx1, gx0) < 1e-5
    for name in g0:
        assert _rel(g1[name], g0[name]) < 1e-5, name
    if kind == "swin" and shift_mask:  # the mask must really act in both paths
        unmasked = _attention_block("swin", shift_mask=False).eval()
        with torch.no_grad():
            assert not torch.allclose(unmasked(x), block.eval()(x), atol=1e-4)


def test_fused_attn_config_key_and_switch_keep_the_state_dict() -> None:
    from svqcast.models.translators.transformers import Attention, set_fused_attn

    fused = build_small("swin", seed=2).eval()
    explicit = build_small("swin", seed=2, fused_attn=False).eval()
    assert all(m.fused_attn for m in fused.modules() if isinstance(m, Attention))
    assert not any(m.fused_attn for m in explicit.modules() if isinstance(m, Attention))
    assert fused.state_dict().keys() == explicit.state_dict().keys()
    x = torch.randn(2, 4, 2, 16, 16)
    with torch.no_grad():
        a, b = fused(x), explicit(x)
        assert _rel(a, b) < 1e-5
        assert set_fused_attn(explicit, True) == 3  # N_T=3 blocks, each with one attention
        assert torch.equal(explicit(x), a)
