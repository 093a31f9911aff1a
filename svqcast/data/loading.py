"""`get_split_dataset`: the data -> training contract (docs/architecture.md).

Resolves a catalog name to a prepared store (preparing embedded samples on first use, with
no network), picks the split file, computes the sample centres with the chosen rule and
returns a `WindowDataset` whose `spec` is the JSON-able `DataSpec` for checkpoints.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from svqcast.config import model_config
from svqcast.data.catalog import get_entry
from svqcast.data.entry import DatasetEntry
from svqcast.data.prepare import prepare
from svqcast.data.samples import sample_path
from svqcast.data.spec import DataSpec
from svqcast.data.store import STORE, read_meta
from svqcast.data.storedir import MANIFEST, STATS, STORE_FORMAT, is_prepared, prepared_dir, read_json, verify
from svqcast.data.windows import WindowDataset, segment_centres, subsample_indices, window_centres
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import sha256_file

_PREPARE_LOCK = threading.Lock()


def get_split_dataset(
    name: str,
    split: str,
    *,
    t_in: int | None = None,
    t_out: int | None = None,
    root: str | os.PathLike[str] | None = None,
    official_validation: bool = False,
    rule: str = "svqcast",
    verify: bool = False,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> WindowDataset:
    """The (input, target) windows of one split of a catalog dataset.

    `official_validation=True`: "val" returns the test split (OpenSTL's behaviour; the
    training split is then the official one too, e.g. KTH persons 1-16).
    `rule`: "svqcast" (every complete window) or "official" (WeatherBench's dropped last
    hour and off-by-one; identical to "svqcast" for non-weather stores).
    `verify`: check every file's sha256 against the manifest (sizes are always checked, and
    digests too when the store is small).
    `stats`: (mean, std) per channel to normalise with instead of the store's training statistics
    (a model scored on other data must see it through its own statistics).
    """
    if split not in ("train", "val", "test"):
        raise UsageError(f"unknown split {split!r}: use train, val or test")
    entry = get_entry(name, root)
    idx_in, idx_out = resolve_offsets(entry, t_in, t_out)
    directory = prepared_dir(name, root, official_validation)
    _ensure_prepared(entry, name, directory, root, official_validation)
    file_split = "test" if (official_validation and split == "val") else split
    verify_store(directory, verify)
    path = directory / STORE
    meta = read_meta(path, file_split)
    if entry.normalisation != "zscore":
        mean, std = [0.0] * len(entry.channel_names), [1.0] * len(entry.channel_names)
    elif stats is not None:
        mean, std = [float(v) for v in stats[0]], [float(v) for v in stats[1]]
    else:
        mean, std = _store_stats(directory / STATS, len(entry.channel_names))
    centres = sample_centres(entry, meta, idx_in, idx_out, rule)
    extras, missing_ok = _store_extras(directory / STATS, len(meta.channels))
    spec = DataSpec(
        dataset=name,
        kind=entry.kind,
        variables=list(dict.fromkeys(v.name for v in entry.variables)),  # unique, in channel order
        units=list(meta.units),
        channel_names=list(meta.channels),
        dims=list(meta.dims),
        coords={d: meta.coords[d].tolist() for d in meta.dims},
        time_step_seconds=entry.time_step_seconds,
        t_in=len(idx_in),
        t_out=len(idx_out),
        mean=mean,
        std=std,
        idx_in=list(idx_in),
        idx_out=list(idx_out),
        clip_range=list(entry.clip_range) if entry.clip_range else None,
        normalisation=entry.normalisation,
        sample_rule=rule,
        split_source="official" if official_validation else "svqcast",
        time_kind=entry.time_kind,
        extra=spec_extra(entry),
        **extras,
    )
    return WindowDataset(path, centres, idx_in, idx_out, mean, std, spec, meta.times, valid=spec.valid_mask(),
                         missing_ok=missing_ok, span=(meta.start, meta.stop))


def _store_extras(path: Path, channels: int) -> tuple[dict[str, Any], bool]:
    """The mask and the channels' levels that a store records in stats.json (untrusted: the mask
    is checked when the spec unpacks it, the levels' shape here), and whether it records missing
    values at all (a mask or allowed gaps): stats.json is read once."""
    if not path.exists():
        return {}, False
    raw = read_json(path)
    out: dict[str, Any] = {}
    if isinstance(raw.get("mask"), dict):
        out["mask"] = raw["mask"]
    levels = raw.get("levels")
    if levels is not None:
        if not (isinstance(levels, dict) and isinstance(levels.get("channels"), list)
                and len(levels["channels"]) == channels):
            raise DataError(f"{path}: 'levels' must name each channel's variable and level; re-run "
                            "`svqcast prepare --force`")
        out["levels"] = levels
    return out, bool(raw.get("mask") or raw.get("missing_filled"))


def _store_stats(path: Path, channels: int) -> tuple[list[float], list[float]]:
    """The training statistics of a store, checked as untrusted data (types, count, finite, std > 0)."""
    raw = read_json(path)
    try:
        mean, std = [float(v) for v in raw["mean"]], [float(v) for v in raw["std"]]
    except (TypeError, KeyError, ValueError):
        raise DataError(f"{path}: 'mean' and 'std' must be lists of numbers; "
                        "re-run `svqcast prepare --force`") from None
    if len(mean) != channels or len(std) != channels:
        raise DataError(f"{path}: {len(mean)} means and {len(std)} stds for {channels} channels; re-run "
                        "`svqcast prepare --force`")
    if not all(np.isfinite(mean)) or not all(np.isfinite(std)) or any(s <= 0 for s in std):
        raise DataError(f"{path}: a channel has a non-finite mean or a std that is not positive; re-run "
                        "`svqcast prepare --force`")
    return mean, std


def _ensure_prepared(entry: DatasetEntry, name: str, directory: Path, root: str | os.PathLike[str] | None,
                     official_validation: bool) -> None:
    """Make sure `directory` holds a complete store: embedded samples are prepared on first use
    (or rebuilt when the shipped sample changed); anything else must have been prepared."""
    if entry.is_user and (official_validation or not is_prepared(directory)):
        raise DataError(f"user dataset {name}: " + ("has no official split; drop `official_validation`"
                        if official_validation else f"its store in {directory} is missing; re-run "
                        f"`svqcast prepare {entry.source} --name {name} --force`"))
    if entry.embedded and is_prepared(directory) and _stale(entry, directory):
        with _PREPARE_LOCK:  # the shipped sample changed (new svqcast version): rebuild
            prepare(name, root, official_validation=official_validation, force=True)
    if directory.exists() and not is_prepared(directory):
        # stores are published atomically with their manifest, so a store without one was
        # altered after the fact: never rebuild or use it silently
        raise DataError(f"{directory}: the prepared store has no manifest.json (altered or incomplete); "
                        f"re-run `svqcast prepare {name} --force`")
    if not is_prepared(directory):
        if not entry.embedded:
            flag = " --official-validation" if official_validation else ""
            raise DataError(f"{name} is not prepared in {directory.parent}: run `svqcast download {name}` "
                            f"and `svqcast prepare {name}{flag}` (or pass root=)")
        with _PREPARE_LOCK:
            try:
                prepare(name, root, official_validation=official_validation)
            except OSError:  # another process (e.g. a DDP rank) finished first
                if not is_prepared(directory):
                    raise


_VERIFIED: dict[tuple[object, ...], bool] = {}  # store fingerprint -> verified deeply


def verify_store(directory: Path, deep: bool) -> None:
    """Check the store against its manifest, once per state of its files (size, mtime): a deep
    check (every sha256) also answers later shallow ones, so no file is hashed twice."""

    key = (str(directory), *sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                   for p in directory.rglob("*") if p.is_file()))
    done = _VERIFIED.get(key)
    if done is None or (deep and not done):
        verify(directory, deep=deep)
        _VERIFIED[key] = deep or bool(done)


def spec_extra(entry: DatasetEntry) -> dict[str, object]:
    """What a user dataset adds to the data spec: time step label, grid conventions, source."""
    keys = ("time_step", "calendar_step", "lat_order", "lon_convention", "source_path")
    extra = {k: entry.extra[k] for k in keys if k in entry.extra}
    if entry.is_user:
        extra["user_dataset"] = True
        extra["source_files"] = {Path(p).name: info.get("sha256") or f"{info.get('bytes', '?')} bytes"
                                 for p, info in entry.extra.get("source_files", {}).items()}
    return extra


def _stale(entry: DatasetEntry, directory: Path) -> bool:
    """True if an embedded sample's store was prepared from a different shipped file."""

    src = sample_path(entry.sample_file or "")
    manifest = read_json(directory / MANIFEST)
    if manifest.get("store_version") != STORE_FORMAT:  # prepared by an older svqcast: rebuilt, it is ours
        return True
    return manifest.get("sources", {}).get(src.name) != sha256_file(src)


def resolve_offsets(entry: DatasetEntry, t_in: int | None, t_out: int | None) -> tuple[list[int], list[int]]:
    """Default offsets from the catalog; other lengths keep the catalog's frame step
    (1 for most, 5 for Human3.6M). WeatherBench-M's non-uniform offsets cannot be resized."""
    idx_in, idx_out = list(entry.idx_in), list(entry.idx_out)
    if (t_in is None or t_in == len(idx_in)) and (t_out is None or t_out == len(idx_out)):
        return idx_in, idx_out
    step = _uniform_step(idx_in, idx_out)
    if step is None:
        raise UsageError(f"{entry.name} uses fixed non-uniform offsets {idx_in} -> {idx_out}; "
                         f"t_in/t_out must stay {len(idx_in)}/{len(idx_out)}")
    n_in = len(idx_in) if t_in is None else int(t_in)
    n_out = len(idx_out) if t_out is None else int(t_out)
    if n_in < 1 or n_out < 1:
        raise UsageError("t_in and t_out must be at least 1")
    return [-step * k for k in range(n_in - 1, -1, -1)], [step * k for k in range(1, n_out + 1)]


def _uniform_step(idx_in: Sequence[int], idx_out: Sequence[int]) -> int | None:
    seq = list(idx_in) + list(idx_out)
    steps = {b - a for a, b in zip(seq, seq[1:], strict=False)}
    return steps.pop() if len(steps) == 1 and idx_in[-1] == 0 else None


def sample_centres(entry: DatasetEntry, meta, idx_in: Sequence[int], idx_out: Sequence[int], rule: str) -> np.ndarray:
    n = len(meta.times)
    if meta.centres is not None:  # explicit samples (Human3.6M meta lines)
        c = meta.centres
        ok = (c + min(idx_in) >= 0) & (c + max(idx_out) < n)
        if ok.any():
            seg = meta.segments
            ok[ok] &= seg[c[ok] + min(idx_in)] == seg[c[ok] + max(idx_out)]
        return c[ok]
    if np.unique(meta.segments).size > 1 or meta.strides is not None:
        strides = meta.strides if meta.strides is not None else entry.sample_stride
        return segment_centres(meta.segments, idx_in, idx_out,
                               strides if isinstance(strides, int) else [int(s) for s in strides])
    if rule == "official" and entry.kind == "weather":
        # The official loader subsampled the raw hourly axis with slice(None, -1, step):
        # the store keeps slice(None, None, step); the raw length is recorded at prepare.
        raw = int(meta.attrs.get("raw_steps", n * entry.subsample_step))
        n = min(n, len(subsample_indices(raw, entry.subsample_step, "official")))
    return window_centres(n, idx_in, idx_out, rule if entry.kind == "weather" else "svqcast",
                          stride=entry.sample_stride)


def model_shape(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, object]:
    """`--set` overrides that fit a preset's architecture to dataset `name`: in_shape
    [T_in, C, H, W] and out_frames from the dataset's default window, channels and grid."""
    entry = get_entry(name, root)
    h, w = entry.shape
    return {"model.in_shape": [len(entry.idx_in), len(entry.channel_names), int(h), int(w)],
            "model.out_frames": len(entry.idx_out)}


def spec_for_model(name: str, model_cfg: Mapping[str, Any], stride: int = 1,
                   root: str | os.PathLike[str] | None = None) -> tuple[DataSpec, str]:
    """(data spec with training statistics, manifest sha256) of dataset `name` for a model
    of config `model_cfg`: what `models convert --data` attaches. The store is verified in
    full first, because its statistics are about to be written into a checkpoint."""

    m = model_config(model_cfg)
    shape, t_out = list(m.in_shape), m.out_frames
    ds = get_split_dataset(name, "train", t_in=shape[0], t_out=t_out, root=root, verify=True)
    want = [shape[1], *ds.spec.shape]
    if shape[1:] != want:
        raise UsageError(f"`data` {name}: the model's in_shape (C, H, W) {shape[1:]} does not fit the dataset's "
                         f"{want}; "
                         "choose a matching `preset` or `overrides` model.in_shape")
    return ds.spec.for_network(stride), sha256_file(Path(ds.path).parent / MANIFEST)


def store_path(name: str, root: str | os.PathLike[str] | None = None, official_validation: bool = False) -> Path:
    """The zarr store of a prepared dataset (every split is a time range of it)."""
    return prepared_dir(name, root, official_validation) / STORE
