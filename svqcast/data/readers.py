"""Readers for every upstream format. Each one validates what it reads and raises a
one-line `DataError` naming the file and the problem (exit code 3 on the CLI).

netCDF (WeatherBench per-year files, samples), WeatherBench 2 zarr (local store written by
`sources.fetch_wb2`), TaxiBJ h5/npz, flows npz, KTH avi/jpg, KittiCaltech hkl/npy,
Human3.6M jpg + meta lines.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError

# ---- netCDF ---------------------------------------------------------------------------


def open_netcdf(path: str | os.PathLike[str]) -> Any:
    """xarray.open_dataset with the failure modes turned into one-line DataErrors."""
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return xr.open_dataset(path, engine="netcdf4")
    except Exception as exc:  # netCDF4/HDF5 raise OSError/RuntimeError/ValueError for damaged files
        raise DataError(f"{path}: unreadable or truncated netCDF ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); download it again") from None


def read_netcdf_variable(path: str | os.PathLike[str], variable: str, *, expect_shape: tuple[int, int] | None = None,
                         level: int | None = None, time_slice: slice | None = None) -> Any:
    """Load one variable as an xarray.DataArray (time, lat, lon), checked.

    `level`: select a pressure level (hPa) if the variable has a `level` dimension.
    Checks: variable present, grid = `expect_shape`, every value finite.
    """
    ds = open_netcdf(path)
    try:
        if variable not in ds.variables:
            have = ", ".join(sorted(str(v) for v in ds.data_vars)) or "none"
            raise DataError(f"{path}: variable {variable!r} not found (has: {have}); wrong file for this dataset?")
        da = ds[variable]
        da = _rename_latlon(da)
        if "level" in da.dims:
            if level is None:
                raise DataError(f"{path}: {variable!r} has levels but no level was requested")
            levels = [int(v) for v in da["level"].values]
            if level not in levels:
                raise DataError(f"{path}: level {level} hPa not in the file's levels {levels}")
            da = da.sel(level=level)
        if time_slice is not None:
            da = da.isel(time=time_slice)
        if expect_shape is not None and tuple(da.shape[-2:]) != tuple(expect_shape):
            raise DataError(f"{path}: grid mismatch: {variable!r} is {da.shape[-2]}x{da.shape[-1]}, "
                            f"expected {expect_shape[0]}x{expect_shape[1]}")
        try:
            da = da.load()
        except Exception as exc:
            raise DataError(f"{path}: truncated or corrupt data in {variable!r} ({type(exc).__name__}); "
                            "download it again") from None
        values = np.asarray(da.values)
        if not np.isfinite(values).all():
            bad = int((~np.isfinite(values)).sum())
            first = np.argwhere(~np.isfinite(values))[0].tolist()
            raise DataError(f"{path}: {bad} NaN/inf values in {variable!r} (first at index {first}); "
                            "fill or mask them before preparing")
        return da
    finally:
        ds.close()


def _rename_latlon(da: Any) -> Any:
    ren = {k: v for k, v in (("latitude", "lat"), ("longitude", "lon")) if k in da.dims}
    return da.rename(ren) if ren else da


# ---- flows ----------------------------------------------------------------------------


def read_flow_npz(path: str | os.PathLike[str], *, expect_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Flows as float32 (T, 2, H, W). Accepts svqcast/PROVENANCE's joined layout (`flow`
    (T, 2, H, W)) and STSAN's original layout (`flow` (T, H, W, 2))."""
    path = Path(path)
    z = _load_npz(path)
    if "flow" not in z:
        raise DataError(f"{path}: array 'flow' not found (has: {', '.join(z) or 'none'})")
    flow = z["flow"]
    if flow.ndim != 4:
        raise DataError(f"{path}: 'flow' must be 4-D, got shape {flow.shape}")
    if flow.shape[1] != 2 and flow.shape[-1] == 2:
        flow = np.moveaxis(flow, -1, 1)
    if flow.shape[1] != 2:
        raise DataError(f"{path}: 'flow' has no in/out channel axis of size 2 (shape {flow.shape})")
    if expect_hw is not None and tuple(flow.shape[2:]) != tuple(expect_hw):
        raise DataError(f"{path}: grid mismatch: {flow.shape[2]}x{flow.shape[3]}, expected {expect_hw[0]}x{expect_hw[1]}")
    out = flow.astype(np.float32)
    _check_finite(path, "flow", out)
    return out


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:
        raise DataError(f"{path}: unreadable or truncated npz ({type(exc).__name__}); download it again") from None


def _check_finite(path: Path, name: str, values: np.ndarray) -> None:
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise DataError(f"{path}: {bad} NaN/inf values in {name!r}; fill or mask them before preparing")
