"""`model.residual`: the network predicts the change from a simple forecast (the last frame,
the same hour yesterday, the anomaly, the training climatology at the time of the week),
exactly as documented (docs/presets.md, docs/models.md). The bundled models that rely on
them are checked in tests/test_zoo_models.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from svqcast.config import apply_overrides, load_config
from svqcast.errors import UsageError
from svqcast.models.factory import build_model_from_config
from svqcast.models.simvp import residual_base_index


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


# --------------------------------------------------------------------------- climatology


def test_phase_counts_steps_from_monday_midnight() -> None:
    from svqcast.models.phase import phase_of

    t = np.array(["2016-01-04T00:00", "2016-01-03T03:30", "2016-01-11T00:30", "2019-03-29T13:00"],
                 dtype="datetime64[ns]")
    # 4 Jan 2016 is a Monday; 3 Jan 03:30 a Sunday: 6 days x 48 + 7 half hours
    assert phase_of(t[:3], 1800, 336).tolist() == [0, 6 * 48 + 7, 1]
    assert phase_of(t[3:], 3600, 24).tolist() == [13]  # a daily cycle starts at midnight
    with pytest.raises(UsageError, match="positive time step"):
        phase_of(t, 0, 336)


def _clim_model(t: int = 3, out: int = 3, period: int = 5) -> torch.nn.Module:
    cfg = apply_overrides(load_config("nyc-taxi_gsta"), {
        "model.in_shape": [t, 2, 8, 6], "model.out_frames": out, "model.hid_S": 4, "model.hid_T": 8,
        "model.N_T": 2, "model.residual": "climatology", "model.residual_period": period})
    return build_model_from_config(cfg).eval()


def test_climatology_residual_is_the_cycle_mean_plus_the_decaying_departure() -> None:
    torch.manual_seed(0)
    res = _clim_model()
    assert res.needs_phase and tuple(res.climatology.shape) == (5, 2, 8, 6)
    np.testing.assert_allclose(res.residual_gain.detach().numpy(), [0.8, 0.64, 0.512], rtol=1e-6)
    table = torch.randn(5, 2, 8, 6)
    res.climatology.copy_(table)
    x, phase = torch.randn(2, 3, 2, 8, 6), torch.tensor([1, 4])
    # untrained (zero readout): exactly the climatology at each lead's phase + gain x departure
    expected = torch.stack([
        torch.stack([table[(p + j) % 5] + 0.8 ** j * (x[b, -1] - table[p]) for j in (1, 2, 3)])
        for b, p in enumerate(phase.tolist())])
    torch.testing.assert_close(res(x, phase=phase), expected, rtol=0, atol=1e-6)
    with pytest.raises(UsageError, match="phase"):
        res(x)
    # a roll-out past T_in moves the phase on by T_in per network call
    long = _clim_model(out=6)
    long.load_state_dict(res.state_dict())
    second = long.step(long.step(x, phase), phase + 3)
    torch.testing.assert_close(long(x, phase=phase)[:, 3:], second, rtol=0, atol=1e-6)
    # the buffer is saved with the weights (what safetensors stores), the gains train
    assert "climatology" in res.state_dict()
    res.train()
    res(x, phase=phase).sum().backward()
    assert res.residual_gain.grad is not None and res.residual_gain.grad.abs().sum() > 0


def test_fill_climatology_is_the_half_hour_of_week_mean_of_training_targets(tmp_path, monkeypatch) -> None:
    from svqcast.data import get_split_dataset
    from svqcast.data.climatology import PhaseDataset, climatology_from_dataset, fill_climatology
    from svqcast.models.phase import phase_of

    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path))
    ds = get_split_dataset("nyc-taxi", "train", t_in=4, t_out=4)
    model = _clim_model(t=4, out=4, period=336)
    model.climatology.resize_(336, 2, 16, 12)  # the real grid
    assert fill_climatology(model, ds) == 336
    # independent oracle: every training target frame once, grouped by slot of the week
    frames = {}
    for i in range(len(ds)):
        y = ds[i][1].double().numpy()
        for f, t in zip(y, ds.times(i)[1], strict=True):
            frames[int(t.astype("datetime64[s]").astype(np.int64))] = f
    keys = np.array(sorted(frames), dtype="datetime64[s]")
    slots = phase_of(keys, 1800, 336)
    stack = np.stack([frames[int(k.astype(np.int64))] for k in keys])
    for k in (0, 7, 200, 335):
        np.testing.assert_allclose(model.climatology[k].double().numpy(), stack[slots == k].mean(0), atol=1e-5)
    # the same table as evaluate's "climatology" reference (time of week, physical units)
    clim = climatology_from_dataset(ds)
    assert clim.mode == "week"
    mean, std = np.asarray(ds.spec.mean).reshape(-1, 1, 1), np.asarray(ds.spec.std).reshape(-1, 1, 1)
    monday = np.datetime64("2016-01-04T03:30")
    np.testing.assert_allclose(clim.at(np.array([monday]))[0], model.climatology[7].double().numpy() * std + mean,
                               rtol=1e-5, atol=1e-4)
    pds = PhaseDataset(ds, 336)
    assert pds[5][2] == int(phase_of(ds.times(5)[0][-1:], 1800, 336)[0])


def test_climatology_residual_refuses_data_without_a_calendar(tmp_path, monkeypatch) -> None:
    from svqcast.data import get_split_dataset
    from svqcast.data.climatology import PhaseDataset

    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path))
    ds = get_split_dataset("kth-walking", "train")
    with pytest.raises(UsageError, match="calendar time axis"):
        PhaseDataset(ds, 10)
