"""Every preset with an official reference row has exactly its parameter count and its
fvcore FLOPs (within 1 %; in fact exactly). Reference: tests/data/reference-numbers.json
(measured on the official code; see tests/data/README.md), whose rows are copied below;
`test_reference_table_matches_json` checks the copy against the JSON."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch

from svqcast.config import load_config
from svqcast.models.factory import build_model_from_config
from svqcast.models.summary import count_params, describe, model_flops

# preset: (params, fvcore FLOPs of one call on torch.ones(1, T, C, H, W), JSON section)
REFERENCE: dict[str, tuple[int, int, str]] = {
    "weatherbench-s-t2m_gsta": (12_758_305, 7_005_601_792, "table12_rows"),
    "weatherbench-s-t2m_gsta_svq": (14_372_529, 16_861_167_616, "table12_rows"),
    "taxibj_convnext": (7_843_554, 2_079_162_368, "table12_rows"),
    "taxibj_convnext_svq": (9_457_778, 3_721_756_672, "table12_rows"),
    "taxibj_gsta": (9_961_058, 2_612_887_552, "table12_rows"),
    "taxibj_gsta_svq": (11_575_282, 4_255_481_856, "table12_rows"),
    "kth_incepu": (12_152_385, 62_835_392_512, "table12_rows"),
    "kth_incepu_svq": (13_318_705, 110_356_856_832, "table12_rows"),
    "kitticaltech_gsta": (15_634_243, 96_242_892_800, "table12_rows"),
    "kitticaltech_gsta_svq": (16_800_563, 155_644_723_200, "table12_rows"),
    "human36m_gsta": (28_763_907, 145_985_896_448, "table12_rows"),
    "human36m_gsta_svq": (30_702_227, 177_577_394_176, "table12_rows"),
    "weatherbench-s-t2m_incepu": (14_666_017, 8_026_783_744, "t2m_metaformers"),
    "weatherbench-s-t2m_incepu_svq": (16_280_241, 17_882_349_568, "t2m_metaformers"),
    "weatherbench-s-t2m_swin": (12_417_633, 6_885_277_696, "t2m_metaformers"),
    "weatherbench-s-t2m_swin_svq": (14_031_857, 16_740_843_520, "t2m_metaformers"),
    "weatherbench-s-t2m_vit": (12_414_497, 7_990_476_800, "t2m_metaformers"),
    "weatherbench-s-t2m_vit_svq": (14_028_721, 17_846_042_624, "t2m_metaformers"),
    "weatherbench-s-t2m_poolformer": (9_985_313, 5_608_112_128, "t2m_metaformers"),
    "weatherbench-s-t2m_poolformer_svq": (11_599_537, 15_463_677_952, "t2m_metaformers"),
    "weatherbench-s-t2m_uniformer": (12_028_705, 7_453_081_600, "t2m_metaformers"),
    "weatherbench-s-t2m_uniformer_svq": (13_642_929, 17_308_647_424, "t2m_metaformers"),
    "weatherbench-s-t2m_mlpmixer": (11_100_257, 5_918_490_624, "t2m_metaformers"),
    "weatherbench-s-t2m_mlpmixer_svq": (12_714_481, 15_774_056_448, "t2m_metaformers"),
    "weatherbench-s-t2m_convmixer": (1_135_905, 945_750_016, "t2m_metaformers"),
    "weatherbench-s-t2m_convmixer_svq": (2_750_129, 10_801_315_840, "t2m_metaformers"),
    "weatherbench-s-t2m_convnext": (10_087_585, 5_657_133_056, "t2m_metaformers"),
    "weatherbench-s-t2m_convnext_svq": (11_701_809, 15_512_698_880, "t2m_metaformers"),
    "weatherbench-s-t2m_van": (12_149_921, 6_695_223_296, "t2m_metaformers"),
    "weatherbench-s-t2m_van_svq": (13_764_145, 16_550_789_120, "t2m_metaformers"),
    "weatherbench-s-t2m_hornet": (12_416_097, 6_839_721_984, "t2m_metaformers"),
    "weatherbench-s-t2m_hornet_svq": (14_030_321, 16_695_287_808, "t2m_metaformers"),
    "weatherbench-s-t2m_moganet": (12_762_121, 6_998_777_856, "t2m_metaformers"),
    "weatherbench-s-t2m_moganet_svq": (14_376_345, 16_854_343_680, "t2m_metaformers"),
    "weatherbench-s-r_swin": (12_417_633, 6_885_277_696, "other_settings"),
    "weatherbench-s-r_swin_svq": (14_031_857, 16_740_843_520, "other_settings"),
    "weatherbench-s-uv10_swin": (12_417_954, 6_893_142_016, "other_settings"),
    "weatherbench-s-uv10_swin_svq": (14_032_178, 16_748_707_840, "other_settings"),
    "weatherbench-s-tcc_gsta": (12_758_305, 7_005_601_792, "other_settings"),
    "weatherbench-s-tcc_gsta_svq": (14_372_529, 16_861_167_616, "other_settings"),
    "weatherbench-m_moganet": (9_967_636, 5_245_968_384, "other_settings"),
    "weatherbench-m_moganet_svq": (11_581_860, 8_531_156_992, "other_settings"),
    "weatherbench-s-t2m_tau": (12_219_553, 6_696_407_040, "other_settings"),
    "taxibj_tau": (9_545_442, 2_491_805_696, "other_settings"),
    "kth_tau": (14_955_201, 73_772_625_920, "other_settings"),
    "kitticaltech_tau": (14_956_483, 92_477_911_040, "other_settings"),
    "human36m_tau": (37_647_363, 181_795_938_304, "other_settings"),
}

REFERENCE_JSON = Path(__file__).resolve().parent / "data" / "reference-numbers.json"


@lru_cache(maxsize=None)
def measured(preset: str) -> tuple[int, int, int]:
    """(params, trainable, paper-convention FLOPs) of a preset, built on the meta device."""
    cfg = load_config(preset)
    with torch.device("meta"):
        model = build_model_from_config(cfg)
    params, trainable = count_params(model)
    flops = model_flops(model, cfg["model"]["in_shape"], fused=False)["total"]
    return params, trainable, flops


@pytest.mark.parametrize("preset", sorted(REFERENCE))
def test_params_exact_and_flops_within_1_percent(preset: str) -> None:
    ref_params, ref_flops, _ = REFERENCE[preset]
    params, trainable, flops = measured(preset)
    assert params == ref_params
    assert trainable == ref_params  # learnable codebook: everything trains
    assert flops == pytest.approx(ref_flops, rel=0.01)
    assert flops == ref_flops  # stronger than required: the counter reproduces fvcore exactly


@pytest.mark.parametrize(
    "preset",
    ["weatherbench-s-t2m_gsta_svq-frozen", "taxibj_convnext_svq-frozen", "kth_incepu_svq-frozen",
     "kitticaltech_gsta_svq-frozen", "human36m_gsta_svq-frozen", "weatherbench-m_moganet_svq-frozen",
     "weatherbench-s-r_swin_svq-frozen", "weatherbench-s-uv10_swin_svq-frozen", "weatherbench-s-tcc_gsta_svq-frozen",
     "taxibj_gsta_svq-frozen"],
)
def test_frozen_codebook_counts_as_parameter_not_trainable(preset: str) -> None:
    learnable = preset.replace("_svq-frozen", "_svq")
    params, trainable, flops = measured(preset)
    ref_params, ref_flops, _ = REFERENCE[learnable]
    m = load_config(preset)["model"]
    assert params == ref_params  # the frozen codebook is still a Parameter (docs/reference/official-behaviour.md §3.2)
    assert trainable == ref_params - m["codebook_size"] * m["hid_S"]
    assert flops == ref_flops


def test_every_table10_dataset_has_its_three_presets() -> None:
    from svqcast.config import list_presets

    names = set(list_presets())
    for base in ["weatherbench-s-t2m_gsta", "weatherbench-s-r_swin", "weatherbench-s-uv10_swin",
                 "weatherbench-s-tcc_gsta", "weatherbench-m_moganet", "taxibj_convnext", "kth_incepu",
                 "kitticaltech_gsta", "human36m_gsta", "taxibj_gsta"]:
        assert {base, f"{base}_svq", f"{base}_svq-frozen"} <= names, base
    from svqcast.models.translators import TRANSLATOR_NAMES

    for t in TRANSLATOR_NAMES:
        assert {f"weatherbench-s-t2m_{t}", f"weatherbench-s-t2m_{t}_svq"} <= names, t


@pytest.mark.parametrize(
    "codebook,middim,nonlinear,expected",
    [(10, 128, True, 760), (1000, 128, True, 165_224), (10_000, 128, True, 1_614_224),
     (10_000, 128, False, 650_000), (1280, 1280, True, 1_722_880), (1024, 128, True, 169_088)],
)
def test_svq_alone_sizes_through_describe(codebook: int, middim: int, nonlinear: bool, expected: int) -> None:
    """svq_module_alone / svq_variants rows (hid_S = 32) via `describe` overrides."""
    info = describe(
        "weatherbench-s-t2m_gsta_svq",
        {"model.codebook_size": codebook, "model.middim": middim, "model.nonlinear": nonlinear},
    )
    assert info["quantizer_params"] == expected
    assert info["params"] == REFERENCE["weatherbench-s-t2m_gsta"][0] + expected


@pytest.mark.parametrize("codebook,expected", [(6000, 1_166_320), (10_000, 1_938_320)])
def test_svq_sizes_at_hid_s_64(codebook: int, expected: int) -> None:
    info = describe("kth_incepu_svq", {"model.codebook_size": codebook})
    assert info["quantizer_params"] == expected


def test_describe_reports_fused_flops_and_shapes() -> None:
    info = describe("kth_incepu_svq")
    assert info["flops"] == REFERENCE["kth_incepu_svq"][1]
    # fused SVQ: tokens*(C*k + k*C) + k*N*C instead of tokens*(C*k + k*N + N*C)
    tokens, c, k, n = 10 * 64 * 64, 64, 128, 6000
    materialised = tokens * (c * k + k * n + n * c)
    fused = tokens * (c * k + k * c) + k * n * c + n * c
    assert info["flops_by_module"]["quantizer"] == materialised
    assert info["flops_fused_by_module"]["quantizer"] == fused
    assert info["flops"] - info["flops_fused"] == materialised - fused
    assert info["input_shape"] == [1, 10, 1, 128, 128]
    assert info["output_shape"] == [1, 20, 1, 128, 128]
    assert info["model_calls"] == 2


def test_reference_table_matches_json() -> None:
    d = json.loads(REFERENCE_JSON.read_text())
    values = set()
    for r in d["table12_rows"] + d["other_settings"]["rows"]:
        values.add((r["params"], r["flops_fvcore"]))
    for v in d["t2m_metaformers"].values():
        for key in ("with_svq", "without_svq"):
            values.add((v[key]["params"], v[key]["flops_fvcore"]))
    ours = {(p, f) for p, f, _ in REFERENCE.values()}
    assert ours == values


def _paper_presets() -> list[str]:
    from svqcast.config import list_presets

    datasets = ("weatherbench-s-", "weatherbench-m_", "taxibj_", "kth_", "kitticaltech_", "human36m_")
    return [
        n for n in list_presets()
        if n.startswith(datasets) and load_config(n)["model"]["quantizer"] in {"none", "svq", "svq-frozen"}
    ]


@pytest.mark.parametrize("preset", _paper_presets())
def test_every_paper_preset_is_consistent(preset: str) -> None:
    """Name <-> contents: dataset, translator and quantizer in the name are the ones configured."""
    cfg = load_config(preset)
    dataset, translator, *quant = preset.split("_")
    assert cfg["data"]["dataset"] == dataset
    assert cfg["model"]["translator"] == translator
    assert cfg["model"]["quantizer"] == (quant[0] if quant else "none")
    assert cfg["description"]
    if not quant:
        assert cfg["train"]["loss"] == "mse"  # the official SimVP method always uses MSE
    params, trainable, flops = measured(preset)
    assert params > 0 and flops > 0


def test_every_model_key_is_documented() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "presets.md"
    text = docs.read_text()
    for key in load_config("_defaults")["model"]:
        assert f"`{key}`" in text, key


def test_drop_path_statistics() -> None:
    from svqcast.models.layers import DropPath

    dp = DropPath(0.25)
    x = torch.ones(4000, 3)
    torch.manual_seed(0)
    y = dp.train()(x)
    kept = (y[:, 0] != 0).float()
    assert torch.all((y == 0) | torch.isclose(y, torch.full_like(y, 1 / 0.75)))
    assert torch.all(y == y[:, :1])  # whole samples are dropped
    assert float(kept.mean()) == pytest.approx(0.75, abs=0.03)
    assert torch.equal(dp.eval()(x), x)


def test_freeze_projection_and_freeze_both() -> None:
    """Table 14: freeze_projection keeps the MLP at its init; with svq-frozen nothing of SVQ trains."""
    proj = (32 * 128 + 128) + (128 * 10_000 + 10_000)
    info = describe("weatherbench-s-t2m_gsta_svq", {"model.freeze_projection": True})
    assert info["params"] == 14_372_529
    assert info["trainable_params"] == 14_372_529 - proj
    both = describe("weatherbench-s-t2m_gsta_svq-frozen", {"model.freeze_projection": True})
    assert both["trainable_params"] == 12_758_305
    from svqcast.errors import UsageError

    with pytest.raises(UsageError, match="freeze_projection"):
        describe("weatherbench-s-t2m_gsta", {"model.freeze_projection": True})


def test_describe_falls_back_to_cpu_for_baseline_quantizers() -> None:
    """vector-quantize-pytorch modules cannot run on the meta device; describe still works
    (on the CPU) and counts what a CPU-built model has."""
    pytest.importorskip("vector_quantize_pytorch")
    small = {"model.quantizer": "lfq", "model.in_shape": [2, 1, 16, 16], "model.out_frames": 2,
             "model.hid_S": 8, "model.hid_T": 16, "model.N_T": 2}
    info = describe("weatherbench-s-t2m_gsta", small)
    torch.manual_seed(0)
    model = build_model_from_config(load_config("weatherbench-s-t2m_gsta", small))
    assert info["params"] == count_params(model)[0]
    assert info["quantizer_params"] > 0
    assert info["flops"] > 0 and info["output_shape"] == [1, 2, 1, 16, 16]


# Table 12 FLOPs per top-level module, in G (tests/data/reference-numbers.json flops_by_module_G; "vq" = quantizer)
BY_MODULE_G = {
    "weatherbench-s-t2m_gsta_svq": {"enc": 0.069, "dec": 0.462, "vq": 9.856, "hid": 6.475},
    "taxibj_convnext_svq": {"enc": 0.013, "dec": 0.077, "vq": 1.643, "hid": 1.989},
    "taxibj_gsta_svq": {"enc": 0.013, "dec": 0.077, "vq": 1.643, "hid": 2.523},
    "kth_incepu_svq": {"enc": 1.67, "dec": 12.195, "vq": 47.521, "hid": 48.971},
    "kitticaltech_gsta_svq": {"enc": 2.323, "dec": 15.27, "vq": 59.402, "hid": 78.65},
    "human36m_gsta_svq": {"enc": 6.02, "dec": 24.419, "vq": 31.591, "hid": 115.547},
}


@pytest.mark.parametrize("preset", sorted(BY_MODULE_G))
def test_flops_split_by_module(preset: str) -> None:
    cfg = load_config(preset)
    with torch.device("meta"):
        model = build_model_from_config(cfg)
    split = model_flops(model, cfg["model"]["in_shape"], fused=False)["by_module"]
    ours = {("vq" if k == "quantizer" else k): round(v / 1e9, 3) for k, v in split.items()}
    assert ours == BY_MODULE_G[preset]
