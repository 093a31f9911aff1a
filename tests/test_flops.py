"""Our fvcore-convention counter against fvcore itself (the oracle; a test-only dependency)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from svqcast.models.flops import count_flops

fvcore_nn = pytest.importorskip("fvcore.nn")


def fvcore_total(model: nn.Module, *inputs: torch.Tensor) -> int:
    """fvcore on the explicit attention path (the paper's models): fvcore has no handle for
    scaled_dot_product_attention; svqcast counts SDPA as the two matmuls it replaces."""
    from svqcast.models.translators.transformers import set_fused_attn

    model.eval()
    set_fused_attn(model, False)
    try:
        analysis = fvcore_nn.FlopCountAnalysis(model, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return int(analysis.total())
    finally:
        set_fused_attn(model, True)


class Ops(nn.Module):
    """One of every op fvcore counts by default, with odd shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(6, 6, 5, padding=4, dilation=2, groups=6, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.gn = nn.GroupNorm(2, 6)
        self.gn_plain = nn.GroupNorm(3, 6, affine=False)
        self.ln = nn.LayerNorm(6)
        self.fc = nn.Linear(6, 10)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gn_plain(self.gn(self.bn(self.dw(self.conv(x)))))
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = x + F.interpolate(x, size=x.shape[-2:], mode="bilinear", align_corners=False)
        t = self.fc(self.ln(x.flatten(2).transpose(1, 2)))  # (B, N, 10)
        a = t @ t.transpose(1, 2)  # matmul
        b = torch.bmm(a, t)
        e = torch.einsum("bnc,bnd->bcd", t, t)
        m = torch.mm(t[0], e[0])
        s = torch.addmm(t[0, :, :1], t[0], e[0][:, :1]).sum()
        return b.sum() + e.sum() + m.sum() + s + self.pool(x).sum()


def test_every_default_handle_matches_fvcore() -> None:
    torch.manual_seed(0)
    model = Ops()
    x = torch.randn(2, 3, 17, 13)
    ours = count_flops(model, x).total
    assert ours == fvcore_total(model, x)
    assert ours > 0


def test_meta_device_counts_the_same() -> None:
    torch.manual_seed(0)
    model = Ops()
    x = torch.randn(2, 3, 17, 13)
    with torch.device("meta"):
        meta_model = Ops()
    assert count_flops(meta_model, x.to("meta")).total == count_flops(model, x).total


def test_batchnorm_training_mode_costs_like_fvcore() -> None:
    bn = nn.BatchNorm2d(4)
    x = torch.randn(3, 4, 5, 5)
    assert count_flops(bn, x, eval_mode=False).total == 5 * x.numel()
    assert count_flops(bn, x).total == 2 * x.numel()


def test_same_padding_conv_quirk() -> None:
    """fvcore cannot see convs with padding='same' (aten::_convolution_mode); we mirror that
    by default and count them with fvcore_quirks=False."""
    conv = nn.Conv2d(4, 4, 11, padding="same", groups=4)
    x = torch.randn(1, 4, 8, 8)
    assert count_flops(conv, x).total == fvcore_total(conv, x) == 0
    assert count_flops(conv, x, fvcore_quirks=False).total == 4 * 121 * 64


def test_hand_computed_linear_and_conv() -> None:
    lin = nn.Linear(7, 5)
    assert count_flops(lin, torch.randn(3, 4, 7)).total == 3 * 4 * 7 * 5
    conv = nn.Conv2d(2, 8, 3, padding=1, groups=2)
    assert count_flops(conv, torch.randn(2, 2, 6, 6)).total == 2 * (8 * 1 * 3 * 3) * 36


@pytest.mark.parametrize(
    "translator,quantizer",
    [("gsta", "svq"), ("swin", "none"), ("vit", "none"), ("tau", "svq"), ("hornet", "none"),
     ("moganet", "none"), ("mlpmixer", "none"), ("uniformer", "none"), ("convnext", "none"),
     ("poolformer", "none"), ("incepu", "none"), ("convmixer", "none"), ("van", "none")],
)
def test_small_models_match_fvcore(translator: str, quantizer: str) -> None:
    from test_translators import build_small  # tests/ is on sys.path (rootdir conftest-less import)

    model = build_small(translator, quantizer)
    x = torch.ones(1, 4, 2, 16, 16)
    if model.quantizer is not None:
        for fused in (False, True):
            model.quantizer.fused = fused
            assert count_flops(model, x).total == fvcore_total(model, x)
    else:
        assert count_flops(model, x).total == fvcore_total(model, x)


def test_per_module_breakdown_sums_to_total() -> None:
    from test_translators import build_small

    report = count_flops(build_small("gsta", "svq"), torch.ones(1, 4, 2, 16, 16))
    assert set(report.by_module) == {"enc", "quantizer", "hid", "dec"}
    assert sum(report.by_module.values()) == report.total
    assert sum(report.by_op.values()) == report.total
