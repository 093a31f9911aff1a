"""A small reader/writer for zarr v2 stores (consolidated `.zmetadata`), over any byte source.

WeatherBench 2 publishes ERA5 as zarr v2 on Google Cloud Storage, readable anonymously over
HTTPS (`https://storage.googleapis.com/<bucket>/<path>/<key>`). We need only a few variables,
levels and years out of decades of data, so instead of pulling in gcsfs/dask we read the
consolidated metadata, work out which chunk keys cover the selection, fetch exactly those
and decode them with numcodecs (a dependency of the `zarr` extra). The same class reads the
local store that `sources.fetch_wb2` writes, so preparation has one code path.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.errors import DataError, MissingExtraError

Fetch = Callable[[str], "bytes | None"]  # key -> bytes, or None if the key does not exist


def _codec(config: dict[str, Any] | None) -> Any:
    if config is None:
        return None
    try:
        import numcodecs
    except ImportError:  # pragma: no cover - numcodecs ships with the zarr extra
        raise MissingExtraError("Reading WeatherBench 2 zarr", "zarr", "numcodecs") from None
    return numcodecs.get_codec(dict(config))


class ZarrV2:
    """Read arrays of a consolidated zarr v2 group through `fetch(key)`."""

    def __init__(self, fetch: Fetch, source: str) -> None:
        self.fetch = fetch
        self.source = source
        raw = fetch(".zmetadata")
        if raw is None:
            raise DataError(f"{source}: no .zmetadata (only consolidated zarr v2 stores are supported)")
        try:
            meta = json.loads(raw)["metadata"]
        except (ValueError, KeyError) as exc:
            raise DataError(f"{source}/.zmetadata: not consolidated zarr v2 metadata ({exc})") from None
        self.meta: dict[str, Any] = meta
        self.arrays = sorted(k[: -len("/.zarray")] for k in meta if k.endswith("/.zarray"))

    def zarray(self, name: str) -> dict[str, Any]:
        try:
            return self.meta[f"{name}/.zarray"]
        except KeyError:
            raise DataError(f"{self.source}: variable {name!r} not in the store (has: {', '.join(self.arrays)})") from None

    def attrs(self, name: str) -> dict[str, Any]:
        return self.meta.get(f"{name}/.zattrs", {})

    def dims(self, name: str) -> list[str]:
        return list(self.attrs(name).get("_ARRAY_DIMENSIONS", []))

    def read(self, name: str, ranges: dict[int, tuple[int, int]] | None = None) -> np.ndarray:
        """Array `name`, optionally restricted to [start, stop) along some axes."""
        za = self.zarray(name)
        if za.get("zarr_format") != 2:
            raise DataError(f"{self.source}/{name}: zarr_format {za.get('zarr_format')} (need 2)")
        shape, chunks = list(za["shape"]), list(za["chunks"])
        dtype = np.dtype(za["dtype"])
        order = za.get("order", "C")
        sep = za.get("dimension_separator", ".")
        comp = _codec(za.get("compressor"))
        filters = [_codec(f) for f in (za.get("filters") or [])]
        ranges = ranges or {}
        lo = [ranges.get(a, (0, shape[a]))[0] for a in range(len(shape))]
        hi = [ranges.get(a, (0, shape[a]))[1] for a in range(len(shape))]
        out = np.empty([h - l for l, h in zip(lo, hi)], dtype)
        fill = za.get("fill_value")
        if not shape:
            return self._chunk(name, "0", comp, filters, dtype, [], order, fill).reshape(())
        grids = [range(l // c, math.ceil(h / c)) if h > l else range(0) for l, h, c in zip(lo, hi, chunks)]
        for ids in np.ndindex(*[len(g) for g in grids]):
            cid = [g[i] for g, i in zip(grids, ids)]
            key = sep.join(str(i) for i in cid)
            block = self._chunk(name, key, comp, filters, dtype, chunks, order, fill)
            src, dst = [], []
            for a, (i, c) in enumerate(zip(cid, chunks)):
                c0 = i * c
                s0, s1 = max(lo[a], c0), min(hi[a], c0 + c, shape[a])
                src.append(slice(s0 - c0, s1 - c0))
                dst.append(slice(s0 - lo[a], s1 - lo[a]))
            out[tuple(dst)] = block[tuple(src)]
        return out

    def _chunk(self, name: str, key: str, comp: Any, filters: list[Any], dtype: np.dtype, chunks: list[int],
               order: str, fill: Any) -> np.ndarray:
        raw = self.fetch(f"{name}/{key}")
        if raw is None:  # missing chunk = fill value (zarr semantics)
            return np.full(chunks, np.nan if fill is None else fill, dtype=dtype)
        try:
            data = comp.decode(raw) if comp is not None else raw
            for f in reversed(filters):
                data = f.decode(data)
            arr = np.frombuffer(bytes(data) if not isinstance(data, np.ndarray) else data.tobytes(), dtype=dtype)
            return arr.reshape(chunks, order=order)
        except Exception as exc:
            raise DataError(f"{self.source}/{name}/{key}: corrupt zarr chunk ({type(exc).__name__})") from None

    def times(self, name: str = "time") -> np.ndarray:
        """Decode a CF time coordinate (`<unit> since <date>`) to datetime64[ns]."""
        values = self.read(name)
        units = str(self.attrs(name).get("units", ""))
        m = re.match(r"\s*(\w+)\s+since\s+(.+)", units)
        if values.dtype.kind == "M":
            return values.astype("datetime64[ns]")
        if not m:
            raise DataError(f"{self.source}/{name}: time units {units!r} are not '<unit> since <date>'")
        unit = {"hours": "h", "hour": "h", "minutes": "m", "seconds": "s", "days": "D", "nanoseconds": "ns"}.get(m[1])
        if unit is None:
            raise DataError(f"{self.source}/{name}: unsupported time unit {m[1]!r}")
        base = np.datetime64(m[2].strip().replace(" ", "T").rstrip("Z").split("+")[0], "ns")
        return base + values.astype(np.int64).astype(f"timedelta64[{unit}]").astype("timedelta64[ns]")


def http_fetch(base_url: str, timeout: float = 60.0) -> Fetch:
    """key -> bytes over anonymous HTTP(S); 404 -> None; other failures -> NetworkError."""
    import urllib.error
    import urllib.request

    from svqcast.errors import NetworkError

    base = base_url.rstrip("/")

    def fetch(key: str) -> bytes | None:
        url = f"{base}/{key}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code in (403, 404):
                return None
            raise NetworkError(f"{url}: HTTP {exc.code}; check --mirror or use --from PATH") from None
        except (urllib.error.URLError, OSError) as exc:
            raise NetworkError(f"{url}: unreachable ({getattr(exc, 'reason', exc)}); "
                               "check the network or --mirror, or adopt local files with --from PATH") from None

    return fetch


def file_fetch(root: str | Path) -> Fetch:
    root = Path(root)

    def fetch(key: str) -> bytes | None:
        p = root / key
        return p.read_bytes() if p.is_file() else None

    return fetch


class ZarrV2Writer:
    """Streaming writer of a consolidated zarr v2 group (zlib chunks, chunked along axis 0
    only): `create` each array, `write(name, start, block)` blocks aligned to the chunk
    size, `close()` writes `.zmetadata`. Lets `fetch_wb2` copy decades of data block by block
    without holding them in memory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.meta: dict[str, Any] = {".zgroup": {"zarr_format": 2}, ".zattrs": {}}
        self.specs: dict[str, tuple[list[int], list[int], np.dtype]] = {}

    def create(self, name: str, shape: tuple[int, ...], dtype: Any, dims: list[str], attrs: dict[str, Any],
               chunk0: int) -> None:
        dtype = np.dtype(dtype)
        chunks = list(shape)
        if shape:
            chunks[0] = max(1, min(chunk0, shape[0]))
        fill: Any = None if dtype.kind in "fc" else 0
        za = {"zarr_format": 2, "shape": list(shape), "chunks": chunks, "dtype": dtype.str,
              "compressor": {"id": "zlib", "level": 1}, "fill_value": fill, "order": "C", "filters": None}
        za_attrs = {"_ARRAY_DIMENSIONS": dims, **attrs}
        d = self.root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / ".zarray").write_text(json.dumps(za, indent=2, sort_keys=True))
        (d / ".zattrs").write_text(json.dumps(za_attrs, indent=2, sort_keys=True, default=_json_default))
        self.meta[f"{name}/.zarray"] = za
        self.meta[f"{name}/.zattrs"] = json.loads(json.dumps(za_attrs, default=_json_default))
        self.specs[name] = (list(shape), chunks, dtype)

    def write(self, name: str, start: int, block: np.ndarray) -> None:
        import zlib

        shape, chunks, dtype = self.specs[name]
        if start % chunks[0]:
            raise ValueError(f"block start {start} is not aligned to chunks of {chunks[0]}")
        for a in range(0, len(block), chunks[0]):
            part = np.asarray(block[a:a + chunks[0]], dtype=dtype)
            full = np.zeros(chunks, dtype)
            full[: len(part)] = part
            key = ".".join([str((start + a) // chunks[0])] + ["0"] * (len(shape) - 1))
            (self.root / name / key).write_bytes(zlib.compress(full.tobytes(), 1))

    def close(self) -> None:
        (self.root / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        (self.root / ".zattrs").write_text("{}")
        (self.root / ".zmetadata").write_text(json.dumps({"zarr_consolidated_format": 1, "metadata": self.meta},
                                                         indent=2, sort_keys=True))


def _json_default(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)
