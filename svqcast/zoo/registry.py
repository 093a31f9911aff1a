"""The zoo registry: named, pinned models (`registry.toml` shipped with the package, plus
files named by $SVQCAST_ZOO_REGISTRY), as data.

An entry names a Hugging Face repository and revision with the sha256 of its weights, or a
model bundled inside the package; `svqcast.zoo.hub` downloads and verifies them.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from svqcast.constants import ENV_ZOO_REGISTRY
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import check_input
from svqcast.zoo.checkpoint import WEIGHTS_NAME

# ORG/NAME as the Hub accepts it: each part starts and ends with a letter or digit, holds letters,
# digits, '_', '.', '-', never '..' or '--', at most 96 characters ('org/..', 'org/.git' are refused)
_PART = r"(?!.*(?:\.\.|--))[A-Za-z0-9](?:[\w.-]{0,94}[A-Za-z0-9])?"
REPO_RE = re.compile(rf"^{_PART}/{_PART}$")


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model of the zoo (a table of registry.toml)."""

    name: str
    description: str
    preset: str
    repo_id: str | None = None
    revision: str | None = None
    sha256: str | None = None
    licence: str = ""
    bundled: str | None = None  # path inside the svqcast package
    default: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    reproduce: str = ""  # the commands that produced the weights
    members: list[str] = field(default_factory=list)  # a models ensemble: the references of its members
    source: str = ""  # which registry file defined it

    def bundled_path(self) -> Path | None:
        if not self.bundled:
            return None
        path = Path(str(resources.files("svqcast"))) / self.bundled
        return path if (path / WEIGHTS_NAME).is_file() else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bundled_available"] = self.bundled_path() is not None
        return out


def _registry_files() -> list[Path]:
    files = [Path(str(resources.files("svqcast"))) / "zoo" / "registry.toml"]
    extra = os.environ.get(ENV_ZOO_REGISTRY, "").strip()
    if extra:
        for part in extra.split(os.pathsep):
            if part:
                files.append(Path(part).expanduser())
    return files


def _parse_entry(name: str, raw: Mapping[str, Any], source: Path) -> ZooEntry:
    known = {f for f in ZooEntry.__dataclass_fields__} - {"name", "source"}
    unknown = set(raw) - known
    if unknown:
        raise DataError(f"{source}: zoo entry '{name}' has unknown keys {sorted(unknown)}")
    for key in ("description", "preset"):
        if not raw.get(key):
            raise DataError(f"{source}: zoo entry '{name}' needs '{key}'")
    if not raw.get("bundled") and not (raw.get("repo_id") and raw.get("revision")):
        raise DataError(f"{source}: zoo entry '{name}' needs repo_id and a pinned revision (or bundled)")
    members = raw.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) and m for m in members) or len(members) == 1:
        raise DataError(f"{source}: zoo entry '{name}': members must list at least two model references")
    sha = raw.get("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
        raise DataError(f"{source}: zoo entry '{name}': sha256 must be 64 lowercase hex digits")
    return ZooEntry(name=name, source=str(source), **{k: raw[k] for k in raw if k in known})


def load_registry() -> dict[str, ZooEntry]:
    """All zoo entries: the packaged registry, then files named by $SVQCAST_ZOO_REGISTRY."""
    entries: dict[str, ZooEntry] = {}
    for path in _registry_files():
        check_input(path, "zoo registry")  # a FIFO would block the reader
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise UsageError(f"zoo registry {path} not found (check ${ENV_ZOO_REGISTRY})") from None
        except IsADirectoryError:
            raise UsageError(f"zoo registry {path} is a directory; give a .toml file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not valid TOML ({' '.join(str(exc).split())[:160]})") from None
        for name, table in (raw.get("models") or {}).items():
            entries[name] = _parse_entry(name, table, path)
    return entries


def ensemble_members(ref: str | None) -> list[str]:
    """The members a zoo entry lists for a models ensemble ([] for any other reference)."""
    if not ref:
        return []
    entry = load_registry().get(str(ref))
    return list(entry.members) if entry is not None else []


def default_model_name() -> str:
    reg = load_registry()
    for entry in reg.values():
        if entry.default:
            return entry.name
    if not reg:
        raise UsageError("the model zoo is empty; pass `model` DIR or hf://ORG/NAME")
    return next(iter(reg))


def list_models(pattern: str | None = None) -> list[ZooEntry]:
    """Entries whose name matches `pattern` (shell glob, or a plain substring)."""
    entries = list(load_registry().values())
    if pattern:
        glob = any(c in pattern for c in "*?[")
        entries = [
            e for e in entries
            if (fnmatch.fnmatch(e.name, pattern) if glob else pattern.lower() in e.name.lower())
        ]
    return sorted(entries, key=lambda e: (not e.default, e.name))


def get_entry(name: str) -> ZooEntry:
    reg = load_registry()
    if name not in reg:

        close = difflib.get_close_matches(name, list(reg), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown zoo model '{name}'.{hint} List them with `svqcast models list`")
    return reg[name]
