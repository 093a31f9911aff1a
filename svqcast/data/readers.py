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

from svqcast.data.windows import subsample_indices
from svqcast.errors import DataError
from svqcast.sources.remote_zarr import load, open_zarr

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
                         level: int | None = None, time_index: Any = None, expect_times: int | None = None) -> Any:
    """Load one variable as an xarray.DataArray (time, lat, lon), checked.

    `level`: select a pressure level (hPa) if the variable has a `level` dimension.
    `time_index`: a slice or integer array of time steps to load (lazy selection, so only
    those steps are read). Checks: variable present, `expect_times` steps, grid =
    `expect_shape`, every loaded value finite.
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
        if expect_times is not None and da.sizes.get("time") != expect_times:
            raise DataError(f"{path}: {da.sizes.get('time')} time steps in {variable!r}, expected {expect_times} "
                            "(the other variables' files for this year)")
        if time_index is not None:
            da = da.isel(time=time_index)
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
    """Flows as float32 (T, 2, H, W). Accepts the shipped samples' joined layout (`flow`
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
        raise DataError(f"{path}: grid mismatch: {flow.shape[2]}x{flow.shape[3]}, "
                        f"expected {expect_hw[0]}x{expect_hw[1]}")
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


# ---- WeatherBench per-year netCDF -----------------------------------------------------

def weatherbench_file(raw: Path, folder: str, year: int) -> Path:
    """`raw/<folder>/<folder>_<year>_5.625deg.nc` (the TUM zip layout, flattened); else the
    same file under ROOT/weatherbench/raw, where `svqcast download weatherbench` puts it."""
    exact = raw / folder / f"{folder}_{year}_5.625deg.nc"
    hits: list[Path] = []
    for base in (raw, raw.parent.parent / "weatherbench" / "raw"):
        if (base / folder / exact.name).is_file():
            return base / folder / exact.name
        hits += sorted((base / folder).glob(f"{folder}*_{year}_*.nc")) if (base / folder).is_dir() else []
    if not hits:
        raise DataError(f"{exact}: file not found; run `svqcast download` for this dataset "
                        f"(or `from_path` a folder holding {folder}/{folder}_{year}_5.625deg.nc)")
    return hits[0]


class WeatherBenchYears:
    """The frames of a year range, channel-stacked, read one year at a time.

    Sliceable as (time, C, 32, 64) over the *stored* (subsampled) axis, which is what
    `store.write_store` consumes, so a 37-year split never sits in memory at once.
    Every year file is checked (variable present, level present, grid, finite values,
    hourly time axis without gaps, identical lat/lon in every file).
    """

    def __init__(self, raw: Path, variables: list[Any], years: tuple[int, int], step: int,
                 shape: tuple[int, int], zarr_store: Any = None) -> None:
        self.raw = raw
        self.variables = variables
        self.years = list(range(years[0], years[1] + 1))
        self.step = step
        self.shape = shape
        self.zarr = zarr_store
        self.lat: np.ndarray | None = None
        self.lon: np.ndarray | None = None
        # raw hourly lengths per year -> positions of the stored frames
        self._year_times = [self._times(y) for y in self.years]
        raw_times = np.concatenate(self._year_times) if self._year_times else np.zeros(0, "datetime64[ns]")
        self.raw_steps = len(raw_times)
        _check_regular(raw_times, self._describe(), step_hours=1 if zarr_store is None else None)

        self.keep = subsample_indices(self.raw_steps, step, "svqcast")
        self.times = raw_times[self.keep]
        self._bounds = np.cumsum([0] + [len(t) for t in self._year_times])
        # per year: which of its raw steps are stored, and where its stored frames start
        year_of = np.searchsorted(self._bounds, self.keep, side="right") - 1
        self._year_local = [self.keep[year_of == k] - self._bounds[k] for k in range(len(self.years))]
        self._year_first = np.searchsorted(year_of, np.arange(len(self.years)))
        self._year_of_stored = year_of
        self._cache: tuple[int, np.ndarray] | None = None

    def _describe(self) -> str:
        return str(self.zarr.source if self.zarr is not None else self.raw)

    def _times(self, year: int) -> np.ndarray:
        if self.zarr is not None:
            return self.zarr.times_for_year(year)
        path = weatherbench_file(self.raw, self.variables[0].folder, year)
        ds = open_netcdf(path)
        try:
            if "time" not in ds.coords:
                raise DataError(f"{path}: no time coordinate")
            return ds["time"].values.astype("datetime64[ns]")
        finally:
            ds.close()

    def _load_year(self, k: int) -> np.ndarray:
        if self._cache is not None and self._cache[0] == k:
            return self._cache[1]
        year = self.years[k]
        local = self._year_local[k]
        chans = []
        for var in self.variables:
            if self.zarr is not None:
                arr, lat, lon = self.zarr.read_year(var, year)
                arr = arr[local]
                src = self.zarr.source
            else:
                path = weatherbench_file(self.raw, var.folder, year)
                da = read_netcdf_variable(path, var.name, expect_shape=self.shape, level=var.level,
                                          time_index=_as_slice(local), expect_times=len(self._year_times[k]))
                arr, lat, lon = np.asarray(da.values, np.float32), da["lat"].values, da["lon"].values
                src = path
            if self.lat is None:
                self.lat, self.lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
            elif not (np.allclose(self.lat, lat) and np.allclose(np.asarray(self.lon), lon)):
                raise DataError(f"{src}: grid mismatch: lat/lon differ from the first file read")
            chans.append(arr)
        block = np.stack(chans, axis=1)
        self._cache = (k, block)
        return block

    def first_grid(self) -> tuple[np.ndarray, np.ndarray]:
        if self.lat is None:
            self._load_year(0)
        assert self.lat is not None and self.lon is not None
        return self.lat, self.lon

    def __len__(self) -> int:
        return len(self.keep)

    def __getitem__(self, sl: slice) -> np.ndarray:
        stored = np.arange(len(self.keep))[sl]
        out = np.empty((len(stored), len(self.variables), *self.shape), np.float32)
        if len(stored) == 0:
            return out
        years = self._year_of_stored[stored]
        for k in np.unique(years):
            sel = years == k
            out[sel] = self._load_year(int(k))[stored[sel] - self._year_first[k]]
        return out


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A regular index array as a slice: netCDF reads a strided hyperslab instead of a
    point selection (much faster for a year of hourly steps)."""
    if len(index) == 0:
        return index
    if len(index) == 1:
        return slice(int(index[0]), int(index[0]) + 1)
    steps = np.diff(index)
    if (steps == steps[0]).all() and steps[0] > 0:
        return slice(int(index[0]), int(index[-1]) + 1, int(steps[0]))
    return index


def _check_regular(times: np.ndarray, where: str, step_hours: int | None) -> None:
    if len(times) < 2:
        return
    d = np.diff(times)
    expect = np.timedelta64(step_hours, "h") if step_hours is not None else d[0]
    bad = np.flatnonzero(d != expect)
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where}: time axis is not regular: gap or duplicate between {times[i]} and {times[i + 1]}")


# ---- WeatherBench 2 zarr (local store written by sources.fetch_wb2, or any WB2-layout zarr) ----

class Wb2Store:
    """WeatherBench 2 layout: variables named by long name (`2m_temperature`,
    `temperature`, ...), dims `(time, [level], longitude, latitude)` in any order; read
    lazily through xarray + zarr (a local path or a URL)."""

    def __init__(self, location: Any) -> None:
        loc = str(location)
        if "://" not in loc and not Path(loc).is_dir():
            raise DataError(f"{loc}: WeatherBench 2 store not found; run `svqcast download ... --source wb2`")
        self.source = loc
        self.ds = open_zarr(loc)
        self.all_times = np.asarray(self.ds["time"].values).astype("datetime64[ns]")
        self.step_hours = int((self.all_times[1] - self.all_times[0]) / np.timedelta64(1, "h")) if len(
            self.all_times) > 1 else 6

    def times_for_year(self, year: int) -> np.ndarray:
        t = self.all_times
        return t[(t >= np.datetime64(f"{year}-01-01", "ns")) & (t < np.datetime64(f"{year + 1}-01-01", "ns"))]

    def _dim(self, da: Any, *names: str) -> str:
        for n in names:
            if n in da.dims:
                return n
        raise DataError(f"{self.source}: no {names[0]} dimension in {list(da.dims)}")

    def read_year(self, var: Any, year: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        name = var.wb2_name or var.folder
        if name not in self.ds.data_vars:
            have = ", ".join(map(str, self.ds.data_vars))
            raise DataError(f"{self.source}: variable {name!r} not in the store (has: {have})")
        da = self.ds[name]
        sel = np.flatnonzero((self.all_times >= np.datetime64(f"{year}-01-01", "ns"))
                             & (self.all_times < np.datetime64(f"{year + 1}-01-01", "ns")))
        if sel.size == 0:
            raise DataError(f"{self.source}: no time steps for {year} in {name!r}")
        da = da.isel(time=slice(int(sel[0]), int(sel[-1]) + 1))
        if var.level is not None:
            levels = [int(v) for v in self.ds[self._dim(da, "level")].values]
            if var.level not in levels:
                raise DataError(f"{self.source}: level {var.level} hPa not in {name!r} levels {levels}")
            da = da.isel(level=levels.index(var.level))
        lat, lon = self._dim(da, "latitude", "lat"), self._dim(da, "longitude", "lon")
        arr = np.asarray(load(self.source, da.transpose("time", lat, lon)).values, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise DataError(f"{self.source}: {int((~np.isfinite(arr)).sum())} NaN/inf values in {name!r} for {year}")
        return arr, np.asarray(self.ds[lat].values), np.asarray(self.ds[lon].values)


# ---- TaxiBJ ---------------------------------------------------------------------------

def read_taxibj_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """OpenSTL's `taxibj/dataset.npz`: X_train, Y_train, X_test, Y_test, each (N, 4, 2, 32, 32)
    in [-1, 1]. Returned as float32 mapped (x + 1) / 2 to [0, 1], as OpenSTL's loader does."""
    path = Path(path)
    z = _load_npz(path)
    out: dict[str, np.ndarray] = {}
    for key in ("X_train", "Y_train", "X_test", "Y_test"):
        if key not in z:
            raise DataError(f"{path}: array {key!r} not found (has: {', '.join(z) or 'none'})")
        a = z[key]
        if a.ndim != 5 or a.shape[2] != 2:
            raise DataError(f"{path}: {key} has shape {a.shape}, expected (N, T, 2, H, W)")
        a = a.astype(np.float32)
        _check_finite(path, key, a)
        out[key] = (a + 1.0) / 2.0
    if out["X_train"].shape[0] != out["Y_train"].shape[0] or out["X_test"].shape[0] != out["Y_test"].shape[0]:
        raise DataError(f"{path}: X and Y sample counts differ")
    return out


def read_taxibj_h5(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The original TaxiBJ files (`BJ13_M32x32_T30_InOut.h5` ...): `data` (T, 2, 32, 32)
    crowd flows and `date` (T,) byte strings `YYYYMMDDss`, ss = half-hour slot 01..48.
    Returns (float32 flows, datetime64[ns] slot start times)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            if "data" not in f or "date" not in f:
                raise DataError(f"{path}: needs datasets 'data' and 'date' (has: {', '.join(f.keys())})")
            data = np.asarray(f["data"], dtype=np.float32)
            dates = [d.decode() if isinstance(d, bytes) else str(d) for d in f["date"][()]]
    except OSError as exc:
        raise DataError(f"{path}: unreadable or truncated HDF5 ({exc})") from None
    if data.ndim != 4 or data.shape[1] != 2 or len(dates) != data.shape[0]:
        raise DataError(f"{path}: 'data' has shape {data.shape} for {len(dates)} dates; expected (T, 2, H, W)")
    _check_finite(path, "data", data)
    try:
        times = np.array([np.datetime64(f"{d[:4]}-{d[4:6]}-{d[6:8]}", "ns") + (int(d[8:]) - 1) * np.timedelta64(30, "m")
                          for d in dates])
    except ValueError:
        raise DataError(f"{path}: 'date' entries are not YYYYMMDDss") from None
    return data, times


# ---- KittiCaltech ---------------------------------------------------------------------

def read_hkl_array(path: str | os.PathLike[str], *, want_ndim: int | None = None) -> np.ndarray:
    """The array in a hickle (`.hkl`, HDF5) file as PredNet wrote them: the largest dataset
    in the file (hickle nests it as `data_0` / `data`, depending on the hickle version)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    found: list[tuple[int, str]] = []
    try:
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: object) -> None:
                if isinstance(obj, h5py.Dataset) and (want_ndim is None or obj.ndim == want_ndim):
                    found.append((int(np.prod(obj.shape)) if obj.shape else 1, name))

            f.visititems(visit)
            if not found:
                raise DataError(f"{path}: no {want_ndim or ''}-D array in this hkl file")
            name = max(found)[1]
            arr = f[name][()]
    except OSError as exc:
        raise DataError(f"{path}: unreadable or truncated hkl/HDF5 ({exc})") from None
    if arr.dtype.kind in ("S", "O"):
        arr = np.array([a.decode() if isinstance(a, bytes) else str(a) for a in arr.reshape(-1)])
    return arr


def read_kitti_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """PredNet KITTI `X_<split>.hkl` (N, 128, 160, 3) uint8 and `sources_<split>.hkl` (N,)."""
    frames = read_hkl_array(directory / f"X_{split}.hkl", want_ndim=4)
    sources = read_hkl_array(directory / f"sources_{split}.hkl", want_ndim=1)
    if frames.shape[1:] != (128, 160, 3):
        raise DataError(f"{directory / f'X_{split}.hkl'}: frames of shape {frames.shape[1:]}, expected (128, 160, 3)")
    if len(sources) != len(frames):
        raise DataError(f"{directory / f'sources_{split}.hkl'}: {len(sources)} sources for {len(frames)} frames")
    return _as_uint8(frames, directory / f"X_{split}.hkl"), sources


def read_kitticaltech_npy(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """OpenSTL's alternative layout `kitticaltech_npy/{split}_data.npy` (N, 128, 160, 3) and
    `{split}_idx.npy` (start index of each 11-frame sequence)."""
    d, i = directory / f"{split}_data.npy", directory / f"{split}_idx.npy"
    try:
        data = np.load(d, mmap_mode="r")
        idx = np.load(i).astype(np.int64).reshape(-1)
    except FileNotFoundError as exc:
        raise DataError(f"{exc.filename}: file not found") from None
    except ValueError as exc:
        raise DataError(f"{d}: unreadable or truncated npy ({exc})") from None
    if data.ndim != 4 or data.shape[-1] != 3:
        raise DataError(f"{d}: shape {data.shape}, expected (N, H, W, 3)")
    if idx.size and (idx.min() < 0 or idx.max() + 11 > len(data)):
        raise DataError(f"{i}: sequence starts outside the {len(data)} frames")
    return _as_uint8(np.asarray(data), d), idx


def _as_uint8(frames: np.ndarray, path: Path) -> np.ndarray:
    if frames.dtype == np.uint8:
        return frames
    f = frames.astype(np.float32)
    _check_finite(path, "frames", f)
    scale = 255.0 if f.max() <= 1.0 + 1e-6 else 1.0
    return np.clip(np.round(f * scale), 0, 255).astype(np.uint8)


# ---- Human3.6M ------------------------------------------------------------------------

def read_human_meta(path: str | os.PathLike[str]) -> list[tuple[str, int, int]]:
    """OpenSTL's Human3.6M meta file: one `prefix,begin,end` per line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 3:
            raise DataError(f"{path}:{k}: expected 'prefix,begin,end', got {line!r}")
        try:
            out.append((parts[0], int(parts[1]), int(parts[2])))
        except ValueError:
            raise DataError(f"{path}:{k}: begin/end are not integers in {line!r}") from None
    return out


def human_frame_path(images: Path, prefix: str, frame: int) -> Path:
    """`images/<prefix>_<frame:06d>.jpg`, e.g. S1_Directions.54138969_000001.jpg."""
    return images / f"{prefix}_{frame:06d}.jpg"
