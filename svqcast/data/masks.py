"""Static masks: the cells of each channel that hold data (sea in a sea-surface field, radar
coverage), recorded with a dataset and carried by every model trained on it.

A cell missing (NaN or `_FillValue`) in *every* time step of the training split is masked;
`--mask FILE[:VAR]` masks more (a land-sea mask). Masked cells stay NaN in the store and in
forecasts; the network sees them filled with the channel's training mean (0 after
normalisation, `fill_missing`), and the loss and every score leave them out.

The mask travels in `stats.json` and in a checkpoint's data spec as plain JSON: the valid
cells bit-packed and base64-encoded (a 721 x 1440 grid costs about 170 kB), so a checkpoint
stays one JSON file plus weights and no pickle is ever read.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from svqcast.errors import DataError, UsageError
from svqcast.sources.opener import open_dataset


def pack_mask(valid: np.ndarray) -> dict[str, Any]:
    """(C, H, W) bool -> {"shape", "valid", "masked_cells"} (JSON)."""
    arr = np.asarray(valid, dtype=bool)
    bits = np.packbits(arr.reshape(-1))
    return {"shape": list(arr.shape), "valid": base64.b64encode(bits.tobytes()).decode("ascii"),
            "masked_cells": [int((~arr[c]).sum()) for c in range(arr.shape[0])]}


def unpack_mask(data: Mapping[str, Any] | None, shape: Sequence[int], where: str) -> np.ndarray | None:
    """The (C, H, W) valid-cell mask of a spec or stats file (None: every cell is valid);
    untrusted data: a wrong shape or encoding is a DataError naming `where`."""
    if not data:
        return None
    try:
        got = tuple(int(v) for v in data["shape"])
        raw = np.frombuffer(base64.b64decode(str(data["valid"]), validate=True), dtype=np.uint8)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: the mask is not a packed mask (shape, valid); re-run `svqcast prepare --force`"
                        ) from None
    if got != tuple(int(v) for v in shape):
        raise DataError(f"{where}: the mask is {got}, the data {tuple(shape)}; re-run `svqcast prepare --force`")
    size = int(np.prod(got))
    if raw.size != (size + 7) // 8:
        raise DataError(f"{where}: the mask holds {raw.size * 8} bits for {size} cells")
    return np.unpackbits(raw)[:size].astype(bool).reshape(got)


def fill_missing(x: np.ndarray) -> np.ndarray:
    """Normalised frames with every missing cell set to 0, the channel's training mean: the
    documented fill the network sees at masked cells (and at filled gaps, --allow-missing)."""
    return np.where(np.isfinite(x), x, np.float32(0.0)).astype(x.dtype, copy=False)


def mask_from_file(path: str, var: str | None, dims: Sequence[str], coords: Mapping[str, Any],
                   keep: str = "nonzero") -> np.ndarray:
    """(H, W) cells to keep from a mask file on the dataset's grid: where VAR (default: the
    file's only 2-D variable) is non-zero (`keep` "nonzero"; "zero" keeps the zero cells, e.g.
    the sea of a land-sea mask); NaN cells are never kept."""
    ds = open_dataset(path)
    names = [str(n) for n, da in ds.data_vars.items() if da.ndim >= 2]
    if var is None and len(names) != 1:
        raise UsageError(f"`mask` {path}: name its variable (FILE:VAR); it has {', '.join(names) or 'none'}")
    name = var or names[0]
    if name not in ds.data_vars:
        raise UsageError(f"`mask` {path}: no variable {name!r} (it has {', '.join(names) or 'none'})")
    da = ds[name].squeeze(drop=True)
    values = np.asarray(da.values, dtype=np.float64)
    if values.ndim != 2:
        raise DataError(f"`mask` {path}:{name} has dims {da.dims}; a mask is one 2-D field")
    _same_grid(ds, da, dims, coords, f"{path}:{name}")
    keep_cells = (values != 0) if keep == "nonzero" else (values == 0)
    keep_cells &= np.isfinite(values)
    if not keep_cells.any():
        raise DataError(f"`mask` {path}:{name} keeps no cell ({keep} cells: none); check the variable or "
                        "`mask_keep`")
    return keep_cells


def _same_grid(ds: Any, da: Any, dims: Sequence[str], coords: Mapping[str, Any], where: str) -> None:
    want = [np.asarray(coords[d], dtype=np.float64) for d in dims]
    got_dims = [str(d) for d in da.dims]
    got = [np.asarray(ds[d].values, dtype=np.float64) if d in ds.coords else np.arange(da.sizes[d], dtype=np.float64)
           for d in got_dims]
    same = all(g.shape == w.shape and np.allclose(g, w, atol=1e-6) for g, w in zip(got, want, strict=True))
    if not same:
        shape = "x".join(str(g.size) for g in got)
        raise DataError(f"`mask` {where}: its grid ({shape}, {got_dims[0]} {got[0][0]:g}..{got[0][-1]:g}) is not "
                        f"the data's ({len(want[0])}x{len(want[1])}, {want[0][0]:g}..{want[0][-1]:g}); regrid the "
                        "mask to the data's grid")


def parse_mask_arg(text: str | None) -> tuple[str, str | None] | None:
    """``FILE`` or ``FILE:VAR`` -> (file, var); a Windows-style drive letter is not a variable."""
    if not text:
        return None
    path, sep, var = str(text).rpartition(":")
    if not sep or not path or "/" in var or "\\" in var or len(path) == 1:
        return str(text), None
    return path, var or None


__all__ = ["fill_missing", "mask_from_file", "pack_mask", "parse_mask_arg", "unpack_mask"]
