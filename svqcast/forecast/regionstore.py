"""A forecast zarr store filled region by region: what `svqcast predict --init-times` writes.

The store is created once with its full shape (every variable's `time` dimension sized to all
initialisations, one chunk per batch of initialisations, so that region writes of different
batches never share a chunk); each batch is then written into its own region and a completion
marker is left in ``STORE/.svqcast-regions/``. Files, not zarr attributes, mark completion,
because several ranks write at once and a file appears atomically. The request that made the
store is recorded in its attributes (``svqcast_request``): a rerun of the same request resumes,
another request is refused, so two runs are never mixed. When every region is done the markers
are removed and the metadata consolidated: the store then reads like any forecast file.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import UsageError
from svqcast.forecast.writer import _datetime_encoding, encoding_for
from svqcast.fsutil import OutputExistsError, atomic_dir, atomic_path, check_output

MARKERS = ".svqcast-regions"
REQUEST_ATTR = "svqcast_request"
INIT_DIM = "time"  # the initialisation dimension of the cf and wb2 layouts


def read_request(path: Path) -> dict[str, Any] | None:
    """The request recorded in a store's root attributes (None: not a store svqcast streamed into)."""
    try:
        attrs = json.loads((path / ".zattrs").read_text())
        return dict(json.loads(attrs[REQUEST_ATTR]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_state(path: Path, request: Mapping[str, Any], *, overwrite: bool) -> str:
    """"absent", "partial" or "complete" for this `request`; anything else at `path` is refused
    unless `overwrite` (and a non-directory is never replaced)."""
    check_output(path, overwrite=True, kind="dir")  # refuses files, links to files, devices
    if not path.exists():
        return "absent"
    if overwrite:
        return "absent"  # replaced when created
    recorded = read_request(path)
    if recorded is None:
        raise OutputExistsError(f"output {path} already exists and is not a store of this request; pass "
                                "`overwrite` to replace it")
    if recorded != dict(request):
        changed = sorted(k for k in set(recorded) | set(request) if recorded.get(k) != request.get(k))
        raise OutputExistsError(f"output {path} holds forecasts of another request (differs in "
                                f"{', '.join(changed)}); rerun the same command to resume, or pass `overwrite`")
    return "partial" if (path / MARKERS).is_dir() or not (path / ".zmetadata").exists() else "complete"


def create_store(path: Path, first: Any, inits: np.ndarray, batch: int, request: Mapping[str, Any],
                 *, overwrite: bool) -> None:
    """Create the store from the first batch's forecast `first` (written into region 0, which
    the caller then marks), sized to all `inits`, atomically: it appears whole or not at all."""
    import xarray as xr
    import zarr

    n = int(inits.size)
    enc = encoding_for(first, "zarr")
    timed = [str(v) for v in first.variables if INIT_DIM in first[v].dims]
    for name in timed:
        dims = first[name].dims
        enc.setdefault(name, {})["chunks"] = tuple(
            batch if d == INIT_DIM else (1 if d in ("lead_time", "prediction_timedelta") else first.sizes[d])
            for d in dims)
    if np.issubdtype(inits.dtype, np.datetime64):
        # the coarsest exact int32 time unit for all initialisations, not only the first batch's
        enc[INIT_DIM] = {**enc.get(INIT_DIM, {}), **_datetime_encoding(inits)}
    head = first.copy()
    head.attrs[REQUEST_ATTR] = json.dumps(dict(request), sort_keys=True)
    with atomic_dir(path, overwrite=overwrite) as tmp:
        head.to_zarr(tmp, mode="w", consolidated=False, zarr_format=2, encoding=enc)
        group = zarr.open_group(str(tmp), mode="r+", zarr_format=2)
        for name in timed:
            arr = group[name]
            assert isinstance(arr, zarr.Array)
            arr.resize((n, *arr.shape[1:]))  # chunks never written read as the fill value
        coord = group[INIT_DIM]  # every initialisation's time, in the encoding the store chose
        assert isinstance(coord, zarr.Array)
        if np.issubdtype(inits.dtype, np.datetime64):
            nums, _, _ = xr.coding.times.encode_cf_datetime(
                inits, str(coord.attrs["units"]), str(coord.attrs.get("calendar", "proleptic_gregorian")))
            coord[:] = np.asarray(nums).astype(coord.dtype)
        else:
            coord[:] = inits.astype(coord.dtype)
        (tmp / MARKERS).mkdir()


def write_region(path: Path, out: Any, start: int) -> None:
    """Write one batch's forecast (layout applied) into its region of the store."""
    timed = [str(v) for v in out.variables if INIT_DIM in out[v].dims and v != INIT_DIM]
    part = out[timed].drop_vars([c for c in out[timed].coords if c not in timed or c == INIT_DIM], errors="ignore")
    part.attrs = {}
    region = {INIT_DIM: slice(start, start + out.sizes[INIT_DIM])}
    with warnings.catch_warnings():  # zarr names the marker folder as foreign to the hierarchy: it is
        warnings.filterwarnings("ignore", message=".*svqcast-regions.*")
        part.to_zarr(path, region=region, mode="r+", zarr_format=2, consolidated=False)


def _marker(path: Path, k: int) -> Path:
    return path / MARKERS / f"region-{k:06d}.done"


def mark_region(path: Path, k: int, payload: Mapping[str, np.ndarray] | None) -> None:
    """Region `k` is written: its payload (the batch's score sums) first, then the marker."""
    if payload:
        with atomic_path(path / MARKERS / f"region-{k:06d}.npz", overwrite=True) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{key: np.asarray(v) for key, v in payload.items()})  # type: ignore[arg-type]
    with atomic_path(_marker(path, k), overwrite=True) as tmp:
        Path(tmp).write_text(f"{k}\n")


def done_regions(path: Path) -> set[int]:
    """The regions whose marker exists."""
    folder = path / MARKERS
    if not folder.is_dir():
        return set()
    return {int(p.name[7:13]) for p in folder.glob("region-*.done")}


def payloads(path: Path, regions: int) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Each region's stored payload, in order (regions without one are left out)."""
    for k in range(regions):
        file = path / MARKERS / f"region-{k:06d}.npz"
        if file.exists():
            with np.load(file) as data:
                yield k, {key: data[key] for key in data.files}


def finalise(path: Path) -> None:
    """Every region is written: remove the markers, consolidate the metadata."""
    import zarr

    shutil.rmtree(path / MARKERS, ignore_errors=True)
    zarr.consolidate_metadata(str(path), zarr_format=2)


def input_identity(source: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies an input file for a resume: its resolved path, size and modification time."""
    p = Path(source)
    try:
        st = p.stat()
        return {"input": str(p.resolve()), "input_size": st.st_size, "input_mtime_ns": st.st_mtime_ns}
    except OSError:
        return {"input": str(source)}


def refuse_non_zarr(output: str | os.PathLike[str]) -> None:
    if Path(output).suffix.lower() != ".zarr":
        raise UsageError(f"`init_times` streams forecasts into a zarr store; name the output NAME.zarr, not {output}")


__all__ = ["MARKERS", "create_store", "done_regions", "finalise", "input_identity", "mark_region", "payloads",
           "read_request", "refuse_non_zarr", "store_state", "write_region"]
