"""Every bundled zoo model earns its place: its registry metrics are what `svqcast evaluate`
computes now, it beats every simple reference `evaluate` reports at every lead time (per
channel, MAE and RMSE), it is listed, and it is ready to push with its own card. The flow
models also check that a forecast uses the calendar phase of its initialisation time."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _cli import run_cli

from svqcast.zoo.registry import list_models


def _bundled() -> list[str]:
    return [e.name for e in list_models() if e.bundled]


BUNDLED = _bundled()
_CACHE: dict[str, dict] = {}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    import os

    old = os.environ.get("SVQCAST_DATA_DIR")
    os.environ["SVQCAST_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if old is None:
        os.environ.pop("SVQCAST_DATA_DIR")
    else:
        os.environ["SVQCAST_DATA_DIR"] = old


def _evaluated(name: str) -> dict:
    from svqcast.verify.evaluation import evaluate

    if name not in _CACHE:
        _CACHE[name] = evaluate(name, per_lead_time=True, device="cpu")
    return _CACHE[name]


def test_the_zoo_ships_four_bundled_models_and_lists_them(capsys) -> None:
    assert {"era5-uk-t2m_gsta_svq", "nyc-taxi_gsta_svq", "nyc-bike_gsta_svq", "moving-mnist_gsta_svq"} <= set(BUNDLED)
    code, out, _ = run_cli(["models", "list", "--format", "json"], capsys)
    assert code == 0
    listed = {row["name"]: row for row in json.loads(out)}
    for name in BUNDLED:
        assert listed[name]["bundled"], name
    assert [n for n, row in listed.items() if row.get("default")] == ["era5-uk-t2m_gsta_svq"]


@pytest.mark.parametrize("name", BUNDLED)
def test_registry_metrics_are_what_evaluate_computes(name: str, data_dir) -> None:
    from svqcast.verify.evaluation import zoo_metrics
    from svqcast.zoo.registry import get_entry

    metrics = get_entry(name).metrics
    got = zoo_metrics(_evaluated(name))
    assert set(got) == set(metrics) and got["test_samples"] == metrics["test_samples"]
    for key, value in metrics.items():  # 4 decimals; allow a last-digit flip across machines
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1.5e-4, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", BUNDLED)
def test_model_beats_every_reference_at_every_lead(name: str, data_dir) -> None:
    ev = _evaluated(name)
    per, refs = ev["per_lead_time"], [f for f in ev["scores"] if f != "model"]
    assert "persistence" in refs and "climatology" in refs
    for ch in ev["channels"]:
        for metric in ("mae", "rmse"):
            model = np.asarray(per["model"][metric][ch])
            assert model.shape == (len(ev["lead_times"]),)
            for ref in refs:
                other = np.asarray(per[ref][metric][ch])
                assert (model < other).all(), (name, ch, metric, ref, (model - other).round(4).tolist())
                assert ev["scores"]["model"]["wb2"][metric][ch] < ev["scores"][ref]["wb2"][metric][ch]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_model_is_ready_to_push_with_its_card(name: str) -> None:
    import huggingface_hub

    from svqcast.zoo.hub import push_model
    from svqcast.zoo.registry import get_entry

    seen: dict = {}

    def fake_upload(folder, repo_id, revision, private, message) -> str:
        seen["files"] = {p.name: p.read_bytes() for p in folder.iterdir()}
        return f"https://hub.example/{repo_id}/commit/1"

    result = push_model(name, f"me/{name}", upload=fake_upload)
    bundled = get_entry(name).bundled_path()
    assert sorted(seen["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert seen["files"]["README.md"] == (bundled / "README.md").read_bytes()
    card = seen["files"]["README.md"].decode()
    parsed = huggingface_hub.ModelCard(card)
    assert parsed.data.library_name == "svqcast" and parsed.data.license == "apache-2.0"
    assert "by lead time" in card and "## Reproduce" in card and f"--preset {get_entry(name).preset}" in card
    assert result["weights_sha256"] == get_entry(name).sha256
    # the registry entry carries the commands that reproduced the weights
    assert f"svqcast train --preset {get_entry(name).preset} " in get_entry(name).reproduce


def test_flow_forecast_uses_the_phase_of_its_initialisation_time(data_dir) -> None:
    import torch
    import xarray as xr

    import svqcast
    from svqcast.data import get_split_dataset
    from svqcast.models.phase import phase_of

    fc = svqcast.load_model("nyc-taxi_gsta_svq")
    ds = get_split_dataset("nyc-taxi", "test", t_in=4, t_out=4)
    x_raw, _ = ds.raw(100)
    tin, _ = ds.times(100)
    spec = fc.spec

    def frames(times: np.ndarray) -> xr.Dataset:
        coords = {"time": times, **{d: spec.coords[d] for d in spec.dims}}
        return xr.Dataset({v: (("time", *spec.dims), x_raw[:, c]) for c, v in enumerate(spec.channel_names)},
                          coords=coords)

    out = fc.predict(frames(tin))
    mean, std = (np.asarray(v, dtype=np.float32).reshape(1, -1, 1, 1) for v in (spec.mean, spec.std))
    x = torch.from_numpy(((x_raw - mean) / std).astype(np.float32))[None]
    phase = int(phase_of(tin[-1:], 1800, 336)[0])
    with torch.no_grad():
        want = fc.net(x, phase=torch.tensor([phase]))[0].numpy() * std + mean
    got = np.stack([np.asarray(out[v]).reshape(4, *x_raw.shape[-2:]) for v in spec.channel_names], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    # the same frames one day later are another phase of the week: another forecast
    later = fc.predict(frames(tin + np.timedelta64(1, "D")))
    assert not np.allclose(np.asarray(later["inflow"]), np.asarray(out["inflow"]))


def test_climatology_models_refuse_export_and_bad_pushes_in_one_line(tmp_path, capsys) -> None:
    target = tmp_path / "export"
    code, _, err = run_cli(["models", "export", "nyc-taxi_gsta_svq", "--format", "torchscript", "-o", target], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot be exported yet" in err
    assert not target.exists() and list(tmp_path.iterdir()) == []
    code, _, err = run_cli(["models", "push", "nyc-taxi_gsta_svq", "--repo-id", "no-slash"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "ORG/NAME" in err


def test_bundled_cards_are_what_the_card_builder_makes() -> None:
    """Metadata (library, pipeline tag, tags, dataset, model-index of the registry metrics) and
    the ensemble section of every bundled card come from svqcast.zoo.card; a stale card fails."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "refresh_cards.py"
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
