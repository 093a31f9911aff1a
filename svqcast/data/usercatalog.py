"""The user catalog: datasets prepared from the user's own files, as data under the data root.

`ROOT/user-datasets.json` maps a NAME to the same fields a catalog entry has (variables,
units, grid, time step, offsets, splits) plus its provenance (source path, sha256 or size
of each input file). `get_entry(NAME)` falls back to it, so from then on `train`,
`evaluate`, `predict` and `models convert --data` treat a user dataset like a catalog one.

The file is untrusted input: names must follow the `--name` rule (so a store path can never
leave the data root), fields only the library sets (embedded samples, builders, download
URLs) are refused, and semantic fields (clip ranges) are checked. Updates are a
read-modify-write under a file lock (`filelock`), so concurrent `prepare` runs of different
names all land; a damaged file is a one-line DataError naming it, and one malformed entry
spoils only itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from svqcast.data.entry import DatasetEntry, entry_from_dict
from svqcast.data.storedir import read_json, root_dir
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import atomic_write_text

CATALOG_FILE = "user-datasets.json"
FORMAT_VERSION = 1
NAME_RULE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # `--name`: a single path component, never '.' or '..'
LOCK_TIMEOUT_S = 600.0  # a prepare of another name may hold the catalog while it registers
# fields only the library's own catalog may set: a user entry that sets them (non-empty) is refused
_LIBRARY_ONLY = ("embedded", "sample_file", "builder", "urls")


def check_name(name: str) -> str:
    """`name` if it follows the dataset-name rule, else a UsageError (exit 2)."""
    if not NAME_RULE.fullmatch(name or "") or set(name) <= {"."}:
        raise UsageError(f"`name` {name!r}: use lower-case letters, digits, '.', '_' or '-' (at most 64)")
    return name


def catalog_path(root: str | os.PathLike[str] | None = None) -> Path:
    return root_dir(root) / CATALOG_FILE


@contextmanager
def locked(root: str | os.PathLike[str] | None = None, what: str = CATALOG_FILE) -> Iterator[None]:
    """Hold the data root's lock for `what` (the catalog, or one dataset name) while the block runs.

    The lock files live in the system's temp folder, keyed by the root's real path, so the data
    root holds only data (and a failed command leaves nothing there); an OS-level lock dies with
    its process, so a killed run never blocks the next.
    """
    base = root_dir(root)
    key = hashlib.sha256(os.path.realpath(base).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "svqcast-locks"
    folder.mkdir(mode=0o1777, exist_ok=True)
    lock = FileLock(str(folder / f"{key}-{what}.lock"))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        raise DataError(f"{base}: another svqcast process holds the lock on {what}; try again") from None
    try:
        yield
    finally:
        lock.release()


def load_records(root: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """NAME -> record; {} when there is no user catalog yet."""
    path = catalog_path(root)
    if path.exists() and not path.is_file():
        raise DataError(f"{path}: the user catalog is not a regular file; move it away and prepare again")
    if not path.exists():
        return {}
    data = read_json(path, what="user catalog", fix="fix or delete it and prepare again")
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise DataError(f"{path}: not a svqcast user catalog (no 'datasets' table); fix or delete it")
    return dict(data["datasets"])


def save_records(records: dict[str, dict[str, Any]], root: str | os.PathLike[str] | None = None) -> None:
    path = catalog_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format_version": FORMAT_VERSION, "datasets": {k: records[k] for k in sorted(records)}}
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")  # keeps split order train, val, test


def register(record: dict[str, Any], root: str | os.PathLike[str] | None = None) -> None:
    """Add or replace one record: read, modify and write under the catalog's lock."""
    with locked(root):
        records = load_records(root)
        records[check_name(str(record["name"]))] = record
        save_records(records, root)


def user_entry(name: str, root: str | os.PathLike[str] | None = None) -> DatasetEntry | None:
    """The DatasetEntry of user dataset `name`, or None."""
    rec = load_records(root).get(name)
    return None if rec is None else entry_from_record(name, rec, catalog_path(root))


def user_entries(root: str | os.PathLike[str] | None = None) -> tuple[list[DatasetEntry], list[str]]:
    """The valid entries, and one line per malformed one (listed, not fatal)."""
    path, good, bad = catalog_path(root), [], []
    for name, rec in sorted(load_records(root).items()):
        try:
            good.append(entry_from_record(name, rec, path))
        except DataError as exc:
            bad.append(str(exc))
    return good, bad


def _check_untrusted(name: str, rec: Any) -> None:
    if not isinstance(rec, dict):
        raise ValueError("not a table")
    if not NAME_RULE.fullmatch(name) or set(name) <= {"."} or rec.get("name") != name:
        raise ValueError("its name breaks the dataset-name rule or differs from its key")
    library_only = sorted(k for k in _LIBRARY_ONLY if rec.get(k))
    if library_only:
        raise ValueError(f"it sets {', '.join(library_only)}, which user datasets may not")
    clip = rec.get("clip_range")
    if clip is not None and not (isinstance(clip, list) and len(clip) == 2
                                 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in clip)
                                 and clip[0] < clip[1]):
        raise ValueError(f"clip_range {clip!r} is not two finite numbers, low < high")


def entry_from_record(name: str, rec: Any, where: Path) -> DatasetEntry:
    try:
        _check_untrusted(name, rec)
        return entry_from_dict(rec)
    except (TypeError, KeyError, ValueError, RecursionError) as exc:
        shown = name if NAME_RULE.fullmatch(name) else repr(name)[:40]
        raise DataError(f"{where}: entry {shown} is malformed ({str(exc)[:160]}); "
                        "prepare it again with `force`") from None
