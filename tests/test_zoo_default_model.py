"""The bundled default model: its registry metrics are what `svqcast evaluate` computes,
it beats every simple reference at every lead time, and the model options it relies on
(`model.residual`, a 24 h input) behave as documented (docs/presets.md, docs/models.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svqcast.config import apply_overrides, load_config
from svqcast.errors import UsageError
from svqcast.models.factory import build_model_from_config
from svqcast.models.simvp import residual_base_index

REFERENCES = ("persistence", "same_hour_yesterday", "climatology")


def _tiny(residual: str, t: int = 4, out: int = 3, period: int = 2) -> torch.nn.Module:
    cfg = apply_overrides(load_config("era5-uk-t2m_gsta"), {
        "model.in_shape": [t, 1, 8, 12], "model.out_frames": out, "model.hid_S": 4, "model.hid_T": 8,
        "model.N_T": 2, "model.residual": residual, "model.residual_period": period})
    return build_model_from_config(cfg).eval()


def test_base_index_is_the_frame_one_period_before_each_output() -> None:
    # T = 24 hourly frames, outputs at +1..+24 h: "yesterday" of +k h is input k - 1
    assert residual_base_index(24, "yesterday", 24) == list(range(24))
    # T = 6 (inputs at -5..0), period 4: +1..+4 look back 4 frames (to -3..0), +5, +6 look back 8
    assert residual_base_index(6, "yesterday", 4) == [2, 3, 4, 5, 2, 3]
    assert residual_base_index(5, "last") == [4] * 5
    assert residual_base_index(5, "none") is None
    assert residual_base_index(25, "anomaly", 24) == [*range(1, 25), 1]  # +25 h looks back 48 h
    with pytest.raises(UsageError, match="residual_period"):
        residual_base_index(12, "yesterday", 24)
    with pytest.raises(UsageError, match=">= 25"):
        residual_base_index(24, "anomaly", 24)
    with pytest.raises(UsageError, match="unknown"):
        residual_base_index(12, "previous")


@pytest.mark.parametrize("residual", ["last", "yesterday"])
def test_residual_adds_the_base_frame_to_the_same_network(residual: str) -> None:
    torch.manual_seed(0)
    plain, res = _tiny("none"), _tiny(residual)
    x = torch.randn(2, 4, 1, 8, 12)
    assert torch.equal(res(x), x[:, residual_base_index(4, residual, 2)[:3]])  # untrained: exactly the base
    res.load_state_dict(plain.state_dict())  # same keys: the option adds no parameters
    base = x[:, [3, 3, 3]] if residual == "last" else x[:, [2, 3, 2]]
    torch.testing.assert_close(res(x), plain(x) + base, rtol=0, atol=1e-6)
    # a roll-out beyond T_in applies the residual in every network call
    long_plain, long_res = _tiny("none", out=6), _tiny(residual, out=6)
    long_res.load_state_dict(long_plain.state_dict())
    first = long_plain.step(x) + x[:, residual_base_index(4, residual, 2)]
    torch.testing.assert_close(long_res(x)[:, :4], first, rtol=0, atol=1e-6)


def test_anomaly_residual_adds_a_learned_fraction_of_todays_change() -> None:
    torch.manual_seed(0)
    plain, res = _tiny("none"), _tiny("anomaly")
    gain = res.residual_gain.detach().clone()
    np.testing.assert_allclose(gain.numpy(), [0.5, 0.0, 0.0, 0.0])  # 1 - lead / period, period 2
    missing = res.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["residual_gain"]
    with torch.no_grad():
        res.residual_gain.copy_(torch.tensor([0.7, -0.2, 0.4, 0.1]))
    x = torch.randn(2, 4, 1, 8, 12)
    change = x[:, 3:4] - x[:, 1:2]  # last frame minus the frame one period (2) before it
    expected = plain(x) + x[:, [2, 3, 2]] + torch.tensor([0.7, -0.2, 0.4]).view(1, 3, 1, 1, 1) * change
    torch.testing.assert_close(res(x), expected, rtol=0, atol=1e-6)
    res(x).sum().backward()  # the gains train with the network
    assert res.residual_gain.grad is not None and res.residual_gain.grad[:3].abs().sum() > 0


def test_residual_keeps_parameter_counts_and_is_in_the_schema() -> None:
    count = [sum(p.numel() for p in _tiny(r).parameters()) for r in ("none", "last", "yesterday", "anomaly")]
    assert count[0] == count[1] == count[2] == count[3] - 4  # anomaly: one gain per frame of a call
    from svqcast.config import validate_config

    with pytest.raises(UsageError, match="model.residual_period"):
        validate_config(apply_overrides(load_config("era5-uk-t2m_gsta"), {"model.residual_period": 0}))


def _registry_entry() -> object:
    from svqcast.hub import default_model_name, get_entry

    return get_entry(default_model_name())


def test_default_model_preset_sees_yesterday() -> None:
    entry = _registry_entry()
    cfg = load_config(entry.preset)  # type: ignore[attr-defined]
    assert cfg["model"]["in_shape"][0] == 25 and cfg["model"]["residual"] == "anomaly"
    assert entry.data["t_in"] == 25 and entry.data["t_out"] == 12  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import os

    from svqcast.evaluation import evaluate

    old = os.environ.get("SVQCAST_DATA_DIR")
    os.environ["SVQCAST_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    try:
        return evaluate(_registry_entry().name, per_lead_time=True, device="cpu")  # type: ignore[attr-defined]
    finally:
        if old is None:
            os.environ.pop("SVQCAST_DATA_DIR")
        else:
            os.environ["SVQCAST_DATA_DIR"] = old


def test_registry_metrics_are_what_evaluate_computes(evaluated: dict) -> None:
    from svqcast.evaluation import zoo_metrics

    metrics = _registry_entry().metrics  # type: ignore[attr-defined]
    got = zoo_metrics(evaluated)
    assert set(got) == set(metrics) and got["test_samples"] == metrics["test_samples"] == 84
    for key, value in metrics.items():  # 4 decimals; allow a last-digit flip across machines
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1.5e-4, err_msg=key)


def test_default_model_beats_every_reference_at_every_lead(evaluated: dict) -> None:
    per = evaluated["per_lead_time"]
    for metric in ("mae", "rmse"):
        model = np.asarray(per["model"][metric]["t2m"])
        assert model.shape == (12,)
        for ref in REFERENCES:
            other = np.asarray(per[ref][metric]["t2m"])
            assert (model < other).all(), (metric, ref, (model - other).round(3).tolist())
            assert evaluated["scores"]["model"]["wb2"][metric]["t2m"] < evaluated["scores"][ref]["wb2"][metric]["t2m"]
