"""Every `weatherbench-s-t2m_gsta_<q>` quantizer preset builds, trains and evaluates."""

from __future__ import annotations

import pytest
import torch

import svqcast
from svqcast.config import list_presets, load_config

QUANTIZERS = ["svq-raw", "vq", "rvq", "grvq", "mhvq", "rfsq", "lfq", "rlfq"]
TINY = {
    "model.in_shape": [4, 1, 16, 16],
    "model.out_frames": 4,
    "model.hid_S": 8,
    "model.hid_T": 16,
    "model.N_T": 2,
    "model.drop_path": 0.0,
}


def test_presets_exist_with_official_settings() -> None:
    names = set(list_presets())
    for q in QUANTIZERS:
        assert f"weatherbench-s-t2m_gsta_{q}" in names
        cfg = load_config(f"weatherbench-s-t2m_gsta_{q}")
        m, t = cfg["model"], cfg["train"]
        assert (m["translator"], m["hid_S"], m["hid_T"], m["N_S"], m["N_T"]) == ("gsta", 32, 256, 2, 8)
        assert m["in_shape"] == [12, 1, 32, 64] and m["drop_path"] == 0.1 and m["quantizer"] == q
        assert (t["lr"], t["scheduler"], t["warmup_epochs"], t["epochs"], t["patience"]) == (5e-3, "cosine", 5, 50, 10)
        assert t["loss"] == ("mae" if q == "svq-raw" else "mse")
    assert load_config("weatherbench-s-t2m_gsta_vq")["model"]["vq_options"]["codebook_size"] == 1024
    assert load_config("weatherbench-s-t2m_gsta_grvq")["model"]["vq_options"]["groups"] == 2


@pytest.mark.parametrize("q", QUANTIZERS)
def test_preset_trains_and_evaluates(q: str) -> None:
    pytest.importorskip("vector_quantize_pytorch")
    torch.manual_seed(0)
    overrides = dict(TINY)
    if q == "svq-raw":
        overrides["model.codebook_size"] = 64
    model = svqcast.build_model(f"weatherbench-s-t2m_gsta_{q}", overrides=overrides)
    assert type(model.quantizer).__name__ in {"SVQRaw", "VQBaseline"}
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 1, 16, 16, generator=g)
    y = torch.roll(x, 1, dims=-1) * 0.5
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(8):
        out = model.forward_with_aux(x)
        pred = out.pred
        assert pred.shape == y.shape
        crit = torch.nn.functional.mse_loss(pred, y)
        loss = crit + out.aux_loss  # aux weight 1, as the official trainer
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(crit.item())
    assert losses[-1] < losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model.forward_with_aux(x)
    assert torch.isfinite(out.pred).all()
    assert out.aux_loss.shape == () and float(out.aux_loss) == 0.0
    if q != "svq-raw":
        assert "perplexity" in out.diagnostics


def _reference_rows() -> list[dict]:
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent / "data" / "reference-numbers.json"  # see tests/data/README.md
    return json.loads(path.read_text())["vq_baselines_t2m_gSTA"]


@pytest.mark.parametrize("row", _reference_rows(), ids=lambda r: r["config"])
def test_full_size_baseline_models_match_reference(row: dict) -> None:
    """Full WB-S gSTA models: total parameters equal the official models' (vqp 1.12.5)."""
    pytest.importorskip("vector_quantize_pytorch")
    from svqcast.models.factory import build_model_from_config

    cfg = load_config(f"weatherbench-s-t2m_gsta_{row['vq_type']}")
    official = {k: v for k, v in row["vq_kwargs"].items() if k != "dim"}
    ours = {k: v for k, v in cfg["model"]["vq_options"].items() if k != "commitment_loss_weight"}
    if row["config"] == "ResidualVQ-Stochastic.py":
        cfg["model"]["vq_options"].update(official)  # the stochastic variant: a user-TOML away
    else:
        assert ours == official  # the preset carries exactly the config's keyword arguments
    assert cfg["train"]["loss"] == row["loss"]
    model = build_model_from_config(cfg)
    assert sum(p.numel() for p in model.parameters()) == row["total_params"]
    assert sum(p.numel() for p in model.quantizer.parameters()) == row["quantizer_params"]
