"""Data provenance is real: a checkpoint trained from a prepared store records the sha256
of the store's manifest.json, and every forecast made with it carries the same value."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

TINY = {
    "model.hid_S": 8, "model.hid_T": 16, "model.N_T": 2, "model.mlp_ratio": 2.0,
    "train.batch_size": 2, "train.val_batch_size": 4, "train.max_steps_per_epoch": 2,
    "train.max_val_steps": 1, "train.epochs": 1,
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A one-epoch run on the embedded ERA5 sample (prepared into a private data dir)."""
    import svqcast
    from svqcast.data.storedir import MANIFEST, prepared_dir

    base = tmp_path_factory.mktemp("prov")
    mp = pytest.MonkeyPatch()
    mp.setenv("SVQCAST_DATA_DIR", str(base / "data"))
    try:
        run = svqcast.train("era5-uk-t2m_gsta", TINY, run_dir=base / "run", progress="none")
        manifest = prepared_dir("era5-uk-t2m") / MANIFEST
        expected = hashlib.sha256(manifest.read_bytes()).hexdigest()
    finally:
        mp.undo()
    return run, expected


def test_checkpoints_record_the_manifest_sha256(trained) -> None:
    run, expected = trained
    for sub in ("best", "last"):
        prov = json.loads((run / sub / "config.json").read_text())["provenance"]
        assert prov["data_manifest_sha256"] == expected
        assert prov["data_hash"] == f"manifest-sha256:{expected}"


def test_checkpoint_cards_describe_the_data(trained) -> None:
    run, _ = trained
    for sub in ("best", "last"):
        card = (run / sub / "README.md").read_text()
        assert "variables ['t2m'] in ['K']" in card
        assert "lat 32 x lon 48; time step 1 h" in card


def test_forecast_file_carries_the_manifest_sha256(trained, tmp_path: Path, capsys) -> None:
    import netCDF4
    from _predict_fixtures import open_sample

    from svqcast.cli import main

    run, expected = trained
    src = tmp_path / "input.nc"
    open_sample().sel(time=slice("2019-03-28T00", "2019-03-29T00")).to_netcdf(src)
    out = tmp_path / "fc.nc"
    try:
        main.run(["predict", str(src), "-o", str(out), "--model", str(run), "--steps", "2"])
    except SystemExit as exc:
        assert not exc.code, capsys.readouterr().err
    with netCDF4.Dataset(out) as nc:
        assert nc.getncattr("svqcast_data_manifest_sha256") == expected


def test_forecast_without_provenance_says_so(tmp_path: Path) -> None:
    """A checkpoint that predates provenance (or a converted one) is labelled, not guessed."""
    from _predict_fixtures import make_tiny_checkpoint, open_sample

    import svqcast

    fc = svqcast.load_model(make_tiny_checkpoint(tmp_path / "tiny"))
    ds = fc.predict(open_sample().sel(time=slice("2019-03-28T00", "2019-03-29T00")), steps=1)
    assert ds.attrs["svqcast_data_manifest_sha256"] == "not recorded"
