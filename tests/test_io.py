"""Input validation (svqcast/forecast/inputs.py) on the real embedded ERA5 sample, and the CF writer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _predict_fixtures import era5_spec, open_sample

from svqcast.errors import DataError, UsageError
from svqcast.forecast.inputs import prepare_input
from svqcast.forecast.writer import build_forecast_dataset, write_forecast
from svqcast.sources.leadtime import parse_lead_time
from svqcast.sources.lexicon import parse_var_map
from svqcast.sources.opener import open_dataset
from svqcast.units import convert_units

INIT = "2019-03-29T00:00"


@pytest.fixture(scope="module")
def ds() -> xr.Dataset:
    return open_sample()


@pytest.fixture(scope="module")
def spec(ds: xr.Dataset) -> dict:
    return era5_spec(ds)


@pytest.fixture(scope="module")
def reference(ds: xr.Dataset, spec: dict) -> np.ndarray:
    """The 12 frames ending at INIT, cut straight from the sample (the oracle)."""
    want = ds["t2m"].sel(time=slice("2019-03-28T13:00", INIT)).values
    assert want.shape == (12, 32, 48)
    return want.astype(np.float32)


def test_selects_the_frames_ending_at_init(ds, spec, reference) -> None:
    prep = prepare_input(ds, spec, init_time=INIT)
    assert prep.frames.shape == (1, 12, 1, 32, 48)
    np.testing.assert_array_equal(prep.frames[0, :, 0], reference)
    assert str(prep.init_times[0])[:16] == INIT
    assert prep.notes == []


def test_default_init_is_last_time_and_several_inits_stack(ds, spec) -> None:
    prep = prepare_input(ds, spec)
    assert str(prep.init_times[0])[:13] == "2019-03-31T23"
    both = prepare_input(ds, spec, init_time=[INIT, "2019-03-30T06:00"])
    assert both.frames.shape[0] == 2
    want = ds["t2m"].sel(time="2019-03-30T06:00").values.astype(np.float32)
    np.testing.assert_array_equal(both.frames[1, -1, 0], want)


def test_orientation_lon_convention_alias_and_units_give_identical_frames(ds, spec, reference) -> None:
    variant = ds.isel(lat=slice(None, None, -1))  # ascending latitude
    variant = variant.assign_coords(lon=np.mod(variant["lon"], 360.0)).sortby("lon")  # 0..360
    variant = variant.rename(t2m="2m_temperature", lat="latitude", lon="longitude")
    celsius = variant["2m_temperature"] - 273.15
    celsius.attrs["units"] = "degC"
    variant["2m_temperature"] = celsius
    prep = prepare_input(variant, spec, init_time=INIT)
    np.testing.assert_allclose(prep.frames[0, :, 0], reference, atol=1e-4)
    joined = " | ".join(prep.notes)
    assert "2m_temperature" in joined and "degC -> K" in joined and "reversed" in joined


def test_fahrenheit_is_converted_with_the_exact_formula(ds, spec, reference) -> None:
    f = ds.copy()
    f["t2m"] = (ds["t2m"] - 273.15) * 9.0 / 5.0 + 32.0
    f["t2m"].attrs["units"] = "degF"
    prep = prepare_input(f, spec, init_time=INIT)
    np.testing.assert_allclose(prep.frames[0, :, 0], reference, atol=1e-3)


def test_convert_units_hand_values() -> None:
    v = np.array([0.0, 100.0, -40.0])
    np.testing.assert_allclose(convert_units(v, "degC", "K", "x")[0], [273.15, 373.15, 233.15], atol=1e-4)
    np.testing.assert_allclose(convert_units(np.array([32.0, -40.0]), "degF", "K", "x")[0], [273.15, 233.15], atol=1e-4)
    np.testing.assert_allclose(convert_units(np.array([273.15]), "kelvin", "degC", "x")[0], [0.0], atol=1e-4)
    assert convert_units(v, "K", "K", "x")[1] is None
    with pytest.raises(DataError, match="cannot convert"):
        convert_units(v, "m s-1", "K", "x")
    with pytest.raises(DataError, match="no 'units'"):
        convert_units(v, None, "K", "x")


def test_celsius_labelled_as_kelvin_is_refused(ds, spec) -> None:
    bad = ds.copy()
    bad["t2m"] = ds["t2m"] - 273.15
    bad["t2m"].attrs["units"] = "K"
    with pytest.raises(DataError, match="not a plausible"):
        prepare_input(bad, spec, init_time=INIT)


def test_larger_grid_is_cut_and_says_so(spec, reference) -> None:
    full = xr.open_dataset(Path(__file__).resolve().parents[1] / "svqcast/data/samples/era5_uk_t2m_2019-03.nc")
    # pad the sample by one extra row and column, as the original 33x49 ERA5 box has
    big = full.load().pad(lat=(0, 1), lon=(0, 1), mode="edge")
    big = big.assign_coords(lat=np.append(full["lat"].values, 50.0), lon=np.append(full["lon"].values, 2.0))
    prep = prepare_input(big, spec, init_time=INIT)
    np.testing.assert_array_equal(prep.frames[0, :, 0], reference)
    assert any("cut to the model grid" in n for n in prep.notes)


def test_wrong_grid_names_both_grids(ds, spec) -> None:
    shifted = ds.assign_coords(lat=ds["lat"] + 0.1)
    with pytest.raises(DataError) as exc:
        prepare_input(shifted, spec, init_time=INIT)
    msg = str(exc.value)
    assert "grid mismatch" in msg and "58.1" in msg and "58..50.25" in msg


def test_missing_variable_lists_what_is_there(ds, spec) -> None:
    with pytest.raises(DataError) as exc:
        prepare_input(ds.rename(t2m="sst"), spec)
    assert "sst" in str(exc.value) and "`var_map`" in str(exc.value)
    prep = prepare_input(ds.rename(t2m="sst"), spec, var_map=["sst=t2m"], init_time=INIT)
    assert prep.variables == {"t2m": "sst"}


def test_var_map_parsing() -> None:
    assert parse_var_map(["a=b", "c = d,e=f"]) == {"a": "b", "c": "d", "e": "f"}
    with pytest.raises(UsageError):
        parse_var_map(["nonsense"])


def test_too_few_frames_and_wrong_step(ds, spec) -> None:
    with pytest.raises(DataError, match="too few time steps.*12 frames.*has 5"):
        prepare_input(ds.isel(time=slice(0, 5)), spec)
    with pytest.raises(DataError, match="too few time steps"):
        prepare_input(ds, spec, init_time="2019-03-01T05:00")
    with pytest.raises(DataError, match="time step mismatch.*3h.*1h"):
        prepare_input(ds.isel(time=slice(None, None, 3)), spec)


def test_nans_are_refused(ds, spec) -> None:
    holed = ds.copy(deep=True)
    holed["t2m"][-3, 5, 5] = np.nan
    with pytest.raises(DataError, match="1 missing \\(NaN\\)"):
        prepare_input(holed, spec)
    # a NaN outside the frames that are used does not matter
    prepare_input(holed, spec, init_time=INIT)


def test_unreadable_and_truncated_files_name_the_file(tmp_path: Path, ds, spec) -> None:
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"this is not netCDF")
    with pytest.raises(DataError, match="junk.nc"):
        prepare_input(junk, spec)
    whole = tmp_path / "whole.nc"
    ds.isel(time=slice(-24, None)).to_netcdf(whole)
    cut = tmp_path / "cut.nc"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.nc"):
        prepare_input(cut, spec)
    with pytest.raises(DataError, match="no such file"):
        prepare_input(tmp_path / "absent.nc", spec)


def test_directory_of_files_and_zarr(tmp_path: Path, ds, spec, reference) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    ds.sel(time=slice("2019-03-27", "2019-03-28")).to_netcdf(parts / "a.nc")
    ds.sel(time=slice("2019-03-29", "2019-03-31")).to_netcdf(parts / "b.nc")
    merged = open_dataset(parts)
    assert merged.sizes["time"] == 24 * 5
    prep = prepare_input(parts, spec, init_time=INIT)
    np.testing.assert_array_equal(prep.frames[0, :, 0], reference)
    store = tmp_path / "sample.zarr"
    ds.sel(time=slice("2019-03-28", "2019-03-29")).to_zarr(store)
    prep = prepare_input(store, spec, init_time=INIT)
    np.testing.assert_array_equal(prep.frames[0, :, 0], reference)


def test_parse_lead_time() -> None:
    hour = np.timedelta64(3600, "s")
    assert parse_lead_time("24h", hour) == 24
    assert parse_lead_time("2d", hour) == 48
    assert parse_lead_time(6, hour) == 6
    with pytest.raises(UsageError):
        parse_lead_time("90min", hour)
    with pytest.raises(UsageError):
        parse_lead_time("soon", hour)


def _forecast(spec: dict, n_lead: int, trained: int = 12) -> xr.Dataset:
    values = np.full((1, n_lead, 1, 32, 48), 280.0, dtype=np.float32)
    values += np.arange(n_lead, dtype=np.float32)[None, :, None, None, None]
    return build_forecast_dataset(
        values, spec, np.array(["2019-03-29T00:00"], dtype="datetime64[ns]"), range(1, n_lead + 1),
        source="test", history="test", trained_steps=trained, model_ref="tiny",
    )


def test_writer_is_cf_and_chunked_per_lead_time(tmp_path: Path, spec) -> None:
    import netCDF4

    out = write_forecast(_forecast(spec, 18), tmp_path / "f.nc")
    back = xr.open_dataset(out)
    assert back.attrs["Conventions"] == "CF-1.8"
    assert "2312.03406" in back.attrs["references"]
    assert back.attrs["svqcast_autoregressive"] == "true" and "autoregressive" in back.attrs["comment"]
    assert back["time"].attrs["standard_name"] == "forecast_reference_time"
    assert back["lead_time"].attrs["standard_name"] == "forecast_period"
    assert (back["lead_time"].values / np.timedelta64(1, "h")).tolist() == list(range(1, 19))
    assert str(back["valid_time"].values[0, -1])[:16] == "2019-03-29T18:00"
    assert back["lat"].attrs["units"] == "degrees_north" and back["lon"].attrs["standard_name"] == "longitude"
    assert back["t2m"].attrs["units"] == "K" and back["t2m"].attrs["standard_name"] == "air_temperature"
    np.testing.assert_array_equal(back["t2m"].values[0, 5], np.full((32, 48), 285.0, np.float32))
    with netCDF4.Dataset(out) as nc:
        var = nc["t2m"]
        assert var.dtype == np.float32
        assert var.chunking() == [1, 1, 32, 48]
        assert var.filters()["zlib"] is True
        assert nc["lead_time"].units == "hours"
    within = _forecast(spec, 12)
    assert within.attrs["svqcast_autoregressive"] == "false" and "comment" not in within.attrs


def test_writer_refuses_overwrite_and_missing_dir_and_leaves_no_temp(tmp_path: Path, spec) -> None:
    target = tmp_path / "f.nc"
    write_forecast(_forecast(spec, 2), target)
    with pytest.raises(UsageError, match="`overwrite`"):
        write_forecast(_forecast(spec, 2), target)
    write_forecast(_forecast(spec, 3), target, overwrite=True)
    assert xr.open_dataset(target).sizes["lead_time"] == 3
    with pytest.raises(UsageError, match="does not exist"):
        write_forecast(_forecast(spec, 2), tmp_path / "nowhere" / "f.nc")

    class Boom(RuntimeError):
        pass

    bad = _forecast(spec, 2)
    bad.attrs["breaks_netcdf"] = {"a dict": "is not a valid attribute"}
    with pytest.raises((TypeError, ValueError)):  # xarray refuses the dict attribute
        write_forecast(bad, tmp_path / "g.nc")
    assert sorted(os.listdir(tmp_path)) == ["f.nc"]  # nothing half-written left behind


# --------------------------------------------------------------------------- GRIB input (optional `grib` extra)


def _write_grib(path: Path, ds: xr.Dataset) -> None:
    """GRIB2 of the sample's t2m, written with eccodes from its regular lat-lon sample; IEEE
    packing keeps the float32 values exact so the frames can be compared bit for bit."""
    eccodes = pytest.importorskip("eccodes")
    lat, lon = ds["lat"].values.astype(float), ds["lon"].values.astype(float)
    sample = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    with open(path, "wb") as fh:
        for t in ds["time"].values:
            stamp = str(t)
            msg = eccodes.codes_clone(sample)
            for key, value in {
                "Ni": lon.size, "Nj": lat.size,
                "latitudeOfFirstGridPointInDegrees": lat[0], "latitudeOfLastGridPointInDegrees": lat[-1],
                "longitudeOfFirstGridPointInDegrees": lon[0] % 360, "longitudeOfLastGridPointInDegrees": lon[-1] % 360,
                "iDirectionIncrementInDegrees": 0.25, "jDirectionIncrementInDegrees": 0.25,
                "dataDate": int(stamp[:10].replace("-", "")), "dataTime": int(stamp[11:13]) * 100,
                "shortName": "2t", "packingType": "grid_ieee",
            }.items():
                eccodes.codes_set(msg, key, value)
            eccodes.codes_set_values(msg, ds["t2m"].sel(time=t).values.astype(np.float64).ravel())
            eccodes.codes_write(msg, fh)
            eccodes.codes_release(msg)
    eccodes.codes_release(sample)


def test_grib_file_and_directory_read_like_netcdf_and_leave_no_index(tmp_path: Path, ds, spec, reference) -> None:
    pytest.importorskip("cfgrib")
    folder = tmp_path / "gribs"
    folder.mkdir()
    part = ds.sel(time=slice("2019-03-28T12", "2019-03-29T00"))
    _write_grib(folder / "a.grib2", part.isel(time=slice(0, 7)))
    _write_grib(folder / "b.grib", part.isel(time=slice(7, None)))
    before = sorted(p.name for p in folder.iterdir())
    six = era5_spec(ds, t_in=6, idx_in=list(range(-5, 1)))
    prep = prepare_input(folder / "a.grib2", six, init_time="2019-03-28T18:00")
    np.testing.assert_array_equal(prep.frames[0, :, 0], part["t2m"].values[1:7].astype(np.float32))
    merged = prepare_input(folder, spec, init_time=INIT)
    np.testing.assert_array_equal(merged.frames[0, :, 0], reference)
    assert sorted(p.name for p in folder.iterdir()) == before  # no cfgrib .idx next to the input


def test_grib_without_the_extra_names_it(tmp_path: Path, spec, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from svqcast.errors import MissingExtraError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cfgrib" else real(name, *a))
    path = tmp_path / "x.grib2"
    path.write_bytes(b"GRIB")
    with pytest.raises(MissingExtraError, match=r"svqcast\[grib\]"):
        prepare_input(path, spec)
    assert sorted(os.listdir(tmp_path)) == ["x.grib2"]


# --------------------------------------------------------------------------- time axes (issue 12, classes 3 and 4)


def _recoded(ds: xr.Dataset, tmp_path: Path, name: str, **time_attrs: object) -> Path:
    """The last 36 hours of the sample with its time axis re-encoded as `time_attrs` say."""
    part = ds.isel(time=slice(-36, None))
    units = str(time_attrs.get("units", " since 2019-03-30 12:00:00"))
    ref = np.datetime64(units.split(" since ")[1].replace(" ", "T"), "ns")
    hours = (part["time"].values - ref) / np.timedelta64(1, "h")
    dtype = time_attrs.pop("dtype", np.float64)
    days = time_attrs.pop("days", False)
    raw = (hours / 24.0 if days else hours).astype(dtype)
    out = part.drop_vars("time").assign_coords(time=("time", raw, time_attrs))
    path = tmp_path / f"{name}.nc"
    out.to_netcdf(path)
    return path


def test_noleap_calendar_is_converted_and_360_day_refused(tmp_path: Path, ds, spec) -> None:
    good = _recoded(ds, tmp_path, "noleap", units="hours since 2019-03-30 12:00:00", calendar="noleap")
    prep = prepare_input(good, spec)
    assert str(prep.init_times[0])[:16] == "2019-03-31T23:00"
    np.testing.assert_array_equal(prep.frames[0, :, 0], ds["t2m"].values[-12:].astype(np.float32))
    assert any("'noleap' calendar converted" in n for n in prep.notes)
    bad = _recoded(ds, tmp_path, "d360", units="hours since 2019-03-30 12:00:00", calendar="360_day")
    with pytest.raises(DataError, match="calendar '360_day'.*convert_calendar"):
        prepare_input(bad, spec)


def test_all_leap_is_refused_only_when_it_has_a_day_gregorian_lacks() -> None:
    import cftime

    from svqcast.sources.timeaxis import validate_time_axis

    fine = np.array([cftime.DatetimeAllLeap(2020, 2, 29, h) for h in range(3)])
    assert validate_time_axis(fine).values[0] == np.datetime64("2020-02-29T00", "ns")
    with pytest.raises(DataError, match="2019-02-29"):
        validate_time_axis(np.array([cftime.DatetimeAllLeap(2019, 2, 29)]))


def test_unitless_time_refused_unless_the_model_was_trained_on_frames(tmp_path: Path, ds, spec) -> None:
    path = _recoded(ds, tmp_path, "unitless")
    with pytest.raises(DataError, match="numeric without date units.*'units'"):
        prepare_input(path, spec)
    frames_spec = era5_spec(ds, time_kind="frame", time_step_seconds=None)
    prep = prepare_input(path, frames_spec)
    assert not prep.time_coord and int(prep.init_times[0]) == 35
    np.testing.assert_array_equal(prep.frames[0, :, 0], ds["t2m"].values[-12:].astype(np.float32))
    no_coord = ds.isel(time=slice(-24, None)).drop_vars("time")
    with pytest.raises(DataError, match="no coordinate values"):
        prepare_input(no_coord, spec)


def test_the_same_init_time_twice_is_refused(ds, spec) -> None:
    with pytest.raises(UsageError, match="2019-03-29T00:00:00 is given more than once"):
        prepare_input(ds, spec, init_time=[INIT, "2019-03-29T06:00", "2019-03-29 00:00"])


def test_duplicated_timestamps_are_refused_naming_the_first(ds, spec) -> None:
    part = ds.isel(time=slice(-24, None))
    doubled = xr.concat([part, part.isel(time=[20, 5])], dim="time")
    with pytest.raises(DataError, match="2019-03-31T05:00:00 appears more than once"):  # earliest in the file
        prepare_input(doubled, spec)


def test_float32_days_since_axis_finds_every_time(tmp_path: Path, ds, spec) -> None:
    path = _recoded(ds, tmp_path, "f32", units="days since 2019-01-01 00:00:00", dtype=np.float32, days=True)
    raw = xr.open_dataset(path)["time"].values
    assert np.any(raw != raw.astype("datetime64[h]"))  # the encoding really is off the hour
    # float32 days since 2019-01-01 resolve ~0.7 s here; since 2019-03-30 12:00 ~ 0.1 ms
    path = _recoded(ds, tmp_path, "f32b", units="days since 2019-03-30 12:00:00", dtype=np.float32, days=True)
    for p in (path, tmp_path / "f32.nc"):
        prep = prepare_input(p, spec, init_time="2019-03-31T23:00")
        np.testing.assert_array_equal(prep.frames[0, :, 0], ds["t2m"].values[-12:].astype(np.float32))
