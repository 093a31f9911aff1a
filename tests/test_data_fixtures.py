"""Helpers for the data tests: WeatherBench-layout files built from real data kept in
tests/data, and a local HTTP server with Range support. The tests at the end check, where
the shared samples are present, that the small copies in tests/data and the shipped
samples still match the full-size real files they were cut from."""

from __future__ import annotations

import http.server
import io
import re
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

TEST_DATA = Path(__file__).resolve().parent / "data"
TCW = TEST_DATA / "ecmwf_tcw_2002-07_daily_32x64.nc"
KTH = TEST_DATA / "kth"
LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]

# Kept for modules that import it; tests/conftest.py decides whether the samples exist.
needs_shared = pytest.mark.needs_shared


def real_fields() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """31 real global 32x64 fields (ECMWF total column water, July 2002) with their grid."""
    ds = xr.open_dataset(TCW)
    return ds["tcw"].values.astype(np.float32), ds["lat"].values, ds["lon"].values


def write_wb_year(directory: Path, folder: str, short: str, year: int, start: str, hours: int,
                  levels: bool = False, shift: int = 0) -> Path:
    """One file in the true WeatherBench layout: `<folder>/<folder>_<year>_5.625deg.nc`,
    variable `short`, dims (time, lat, lon) or (time, level, lat, lon) with 13 levels.
    Values: real TCW fields (relabelled), one per hour, cycling through the 31 days."""
    fields, lat, lon = real_fields()
    idx = (np.arange(hours) + shift) % len(fields)
    data = fields[idx]
    times = np.datetime64(start, "ns") + np.arange(hours) * np.timedelta64(1, "h")
    if levels:
        data = np.stack([fields[(idx + k) % len(fields)] + k for k in range(len(LEVELS))], axis=1)
        da = xr.DataArray(data, dims=("time", "level", "lat", "lon"),
                          coords={"time": times, "level": LEVELS, "lat": lat, "lon": lon})
    else:
        da = xr.DataArray(data, dims=("time", "lat", "lon"), coords={"time": times, "lat": lat, "lon": lon})
    path = directory / folder / f"{folder}_{year}_5.625deg.nc"
    path.parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset({short: da}).to_netcdf(path)
    return path


def zip_folder(folder: Path, prefix: str = "", extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.rglob("*.nc")):
            zf.write(f, prefix + f.name)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


class Server:
    """http.server on 127.0.0.1 serving `files` (path+query -> bytes), honouring Range.

    `cut[key] = n` makes the next GET of `key` send only n bytes (then close the
    connection) while announcing the full length: an interrupted download."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, head_only: bool) -> None:
                outer.requests.append((self.path, self.headers.get("Range")))
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    m = re.fullmatch(r"bytes=(\d+)-", rng)
                    start = int(m[1]) if m else 0
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if head_only:
                    return
                chunk = body[start:]
                n = outer.cut.pop(self.path, None)
                if n is not None:
                    self.wfile.write(chunk[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(chunk)

            def do_GET(self) -> None:  # noqa: N802
                self._send(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._send(True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


cli = run_cli  # the in-process CLI runner, under the name the data tests import


# ---- the in-repository copies against the full-size shared originals --------------------

COPIES = {  # tests/data path -> path under the shared data/ folder (byte-identical copies)
    "ecmwf_tcw_2002-07_daily_32x64.nc": "global_coarse/ecmwf_tcw_2002-07_daily_32x64.nc",
    **{f"kth/{n}.avi": f"kth_walking_32x32/{n}.avi" for n in
       ("train_example1", "train_example2", "val_example1", "val_example2", "test_example")},
}


@pytest.mark.parametrize("name", sorted(COPIES))
def test_copy_is_byte_identical_to_shared_original(name, shared_data):
    assert (TEST_DATA / name).read_bytes() == (shared_data / COPIES[name]).read_bytes()


def test_reference_numbers_copy_is_identical(shared_data):
    assert (TEST_DATA / "reference-numbers.json").read_bytes() == \
        (shared_data.parent / "reference" / "reference-numbers.json").read_bytes()


def test_stsan_crop_is_the_head_of_the_original(shared_data):
    with np.load(shared_data / "nyc_taxi_bike_flow_2016" / "original" / "NYTaxi" / "flow_val.npz") as z:
        full = z["flow"]
    with np.load(TEST_DATA / "stsan_nytaxi_flow_val_first96.npz") as z:
        crop = z["flow"]
    assert crop.dtype == full.dtype
    np.testing.assert_array_equal(crop, full[:96])


def test_shipped_samples_rebuild_from_shared_originals(tmp_path, shared_data):
    """build_samples.py, run on the full-size originals, reproduces every shipped sample."""
    from svqcast.data.samples import build_samples, sample_path

    build_samples.main([str(shared_data), "--out", str(tmp_path)])
    for name in ("nyc_taxi_flow_2016.npz", "nyc_bike_flow_2016.npz", "kth_walking_5clips.npz",
                 "knmi_radar_2010-08-26.npz", "mnist_digits_1k.npz"):
        with np.load(tmp_path / name) as new, np.load(sample_path(name)) as old:
            assert new.files == old.files, name
            for key in old.files:
                np.testing.assert_array_equal(new[key], old[key], err_msg=f"{name}:{key}")
    with xr.open_dataset(tmp_path / "era5_uk_t2m_2019-03.nc") as new, \
            xr.open_dataset(sample_path("era5_uk_t2m_2019-03.nc")) as old:
        xr.testing.assert_identical(new, old)
