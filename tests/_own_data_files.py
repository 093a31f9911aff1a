"""Small user files that the own-data tests write: netCDF, zarr, per-year folders, frames, video."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

LAT = np.linspace(0.0, 90.0, 29)  # ascending, with the pole row
LON = np.linspace(-80.0, 40.0, 49)  # -180..180 convention, not a multiple of 4 either way
YEARS = np.arange(1990, 2020)  # 30 yearly means stamped on 1 July: 365 or 366 days apart


def nh_netcdf(path: Path, *, units: bool = False, years: np.ndarray = YEARS) -> np.ndarray:
    """(a): NH-like field, singleton pressure dim, int16 packed with float64 scale_factor,
    a _FillValue, yearly stamps, no units on the variable. Returns the physical values."""
    import netCDF4

    rng = np.random.default_rng(0)
    truth = 5000 + 50 * np.cos(np.deg2rad(LAT))[None, :, None] + rng.normal(0, 1, (len(years), 29, 49))
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", len(years)), ("plev", 1), ("lat", 29), ("lon", 49)):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 1990-01-01", "standard"
        t[:] = netCDF4.date2num([dt.datetime(int(y), 7, 1) for y in years], t.units, t.calendar)
        p = nc.createVariable("plev", "f8", ("plev",))
        p.units, p[:] = "hPa", [500.0]
        for name, values, unit in (("lat", LAT, "degrees_north"), ("lon", LON, "degrees_east")):
            v = nc.createVariable(name, "f8", (name,))
            v.units, v[:] = unit, values
        z = nc.createVariable("z", "i2", ("time", "plev", "lat", "lon"), fill_value=np.int16(-32767))
        z.scale_factor, z.add_offset = np.float64(0.01), np.float64(5000.0)
        if units:
            z.units = "m"
        z[:] = truth[:, None]
    return np.round((truth - 5000.0) / 0.01) * 0.01 + 5000.0


def field(times: np.ndarray, shape: tuple[int, int] = (6, 8), seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (280 + rng.normal(0, 1, (len(times), *shape))).astype("float32")


def dataset(times: object, name: str = "t2m", shape: tuple[int, int] = (6, 8), units: str | None = "K") -> object:
    import xarray as xr

    values = field(np.asarray(times), shape)
    attrs = {"units": units} if units else {}
    return xr.Dataset({name: (("time", "lat", "lon"), values, attrs)},
                      coords={"time": times, "lat": np.linspace(60, 40, shape[0]), "lon": np.arange(shape[1]) * 2.5})


def six_hourly(n: int = 160, start: str = "2001-01-01") -> np.ndarray:
    return np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(6, "h")


def frames_uint8(t: int = 60, h: int = 18, w: int = 22) -> np.ndarray:
    """Moving diagonal stripes, uint8 (T, H, W): H and W not multiples of 4."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([((yy + xx) * 6 + 5 * k) % 256 for k in range(t)]).astype(np.uint8)


def video(path: Path, frames: np.ndarray, fps: int = 10) -> None:
    """A lossless FFV1 video (odd sizes are fine), decoded back exactly by PyAV."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        for f in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
