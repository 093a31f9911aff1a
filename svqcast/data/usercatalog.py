"""The user catalog: datasets prepared from the user's own files, as data under the data root.

`ROOT/user-datasets.json` maps a NAME to the same fields a catalog entry has (variables,
units, grid, time step, offsets, splits) plus its provenance (source path, sha256 or size
of each input file). `get_entry(NAME)` falls back to it, so from then on `train`,
`evaluate`, `predict` and `models convert --data` treat a user dataset like a catalog one.
The file is rewritten atomically; a damaged file is a one-line DataError naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from svqcast.data.entry import entry_from_dict
from svqcast.data.storedir import root_dir
from svqcast.errors import DataError
from svqcast.fsutil import atomic_write_text

CATALOG_FILE = "user-datasets.json"
FORMAT_VERSION = 1


def catalog_path(root: str | os.PathLike[str] | None = None) -> Path:

    return root_dir(root) / CATALOG_FILE


def load_records(root: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """NAME -> record; {} when there is no user catalog yet."""
    path = catalog_path(root)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable user catalog ({exc}); fix or delete it and prepare again") from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise DataError(f"{path}: not a svqcast user catalog (no 'datasets' table); fix or delete it")
    return dict(data["datasets"])


def save_records(records: dict[str, dict[str, Any]], root: str | os.PathLike[str] | None = None) -> None:

    path = catalog_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format_version": FORMAT_VERSION, "datasets": {k: records[k] for k in sorted(records)}}
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")  # keeps split order train, val, test


def register(record: dict[str, Any], root: str | os.PathLike[str] | None = None) -> None:
    records = load_records(root)
    records[str(record["name"])] = record
    save_records(records, root)


def user_entry(name: str, root: str | os.PathLike[str] | None = None) -> Any:
    """The DatasetEntry of user dataset `name`, or None."""
    rec = load_records(root).get(name)
    return None if rec is None else entry_from_record(rec, catalog_path(root))


def user_entries(root: str | os.PathLike[str] | None = None) -> list[Any]:
    path = catalog_path(root)
    return [entry_from_record(r, path) for _, r in sorted(load_records(root).items())]


def entry_from_record(rec: dict[str, Any], where: Path) -> Any:

    try:
        return entry_from_dict(rec)
    except (TypeError, KeyError, ValueError) as exc:
        raise DataError(f"{where}: entry {rec.get('name')!r} is malformed ({exc}); "
                        "prepare it again with `force`") from None
