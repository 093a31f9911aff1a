"""Presets and configs: TOML files, `extends` inheritance and dotted `--set` overrides.

A config is a plain nested dict with the sections `model`, `data` and `train` (see
docs/presets.md). Presets are TOML files shipped in `svqcast/presets/`; a user TOML file
is accepted wherever a preset name is. TOML is data, never code: nothing is executed.

Overrides are validated against the resolved config: a key that does not exist, or a
value of the wrong type, is a `UsageError` naming the key (CLI exit code 2).
"""

from __future__ import annotations

import copy
import difflib
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from svqcast.errors import DataError, UsageError

Config = dict[str, Any]
PRESET_PACKAGE = "svqcast.presets"
_MAX_EXTENDS_DEPTH = 8


def _preset_root() -> Path:
    return Path(str(resources.files(PRESET_PACKAGE)))


def list_presets() -> list[str]:
    """Names of every shipped preset (files under `presets/`, not the `_base` fragments)."""
    root = _preset_root()
    names = [p.stem for p in root.glob("*.toml") if not p.name.startswith("_")]
    return sorted(names)


def preset_path(name: str) -> Path:
    path = _preset_root() / f"{name}.toml"
    if not path.is_file():
        close = difflib.get_close_matches(name, list_presets(), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UsageError(
            f"unknown preset '{name}'.{hint} List them with `svqcast models presets`, "
            "or pass the path of a TOML file."
        )
    return path


def _read_toml(path: Path) -> Config:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: not valid TOML ({exc})") from None


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> Config:
    """`top` wins; nested tables merge key by key."""
    out: Config = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_file(path: Path, depth: int = 0) -> Config:
    if depth > _MAX_EXTENDS_DEPTH:
        raise DataError(f"{path}: `extends` chain deeper than {_MAX_EXTENDS_DEPTH} (a cycle?)")
    raw = _read_toml(path)
    parents = raw.pop("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    merged: Config = {}
    for parent in parents:
        parent_path = (path.parent / parent) if parent.endswith(".toml") else preset_path(parent)
        merged = deep_merge(merged, _resolve_file(parent_path, depth + 1))
    return deep_merge(merged, raw)


def is_config_path(ref: str | Path) -> bool:
    return str(ref).endswith(".toml") or Path(ref).is_file()


def load_config(
    ref: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
) -> Config:
    """Resolve a preset name, TOML path or dict into a full config and apply overrides.

    `overrides` is either a mapping of dotted keys to values
    (`{"model.codebook_size": 4096}`) or `--set` strings (`["model.codebook_size=4096"]`).
    """
    if isinstance(ref, Mapping):
        cfg = copy.deepcopy(dict(ref))
        name = cfg.get("name", "custom")
    elif is_config_path(ref):
        path = Path(ref).expanduser()
        cfg = _resolve_file(path)
        name = cfg.get("name", path.stem)
    else:
        cfg = _resolve_file(preset_path(str(ref)))
        name = str(ref)
    cfg["name"] = name
    if overrides:
        apply_overrides(cfg, parse_overrides(overrides))
    return cfg


def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got '{item}' (e.g. --set train.lr=1e-3)")
        key, text = item.split("=", 1)
        parsed[key.strip()] = _parse_value(text.strip())
    return parsed


def _parse_value(text: str) -> Any:
    """Interpret a `--set` value as TOML (numbers, booleans, arrays), else as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}.get(
        type(value), type(value).__name__
    )


def _coerce(key: str, old: Any, new: Any) -> Any:
    if isinstance(old, bool) or isinstance(new, bool):
        if isinstance(old, bool) and isinstance(new, bool):
            return new
    elif isinstance(old, float) and isinstance(new, (int, float)):
        return float(new)
    elif isinstance(old, int) and isinstance(new, int):
        return new
    elif isinstance(old, str) and isinstance(new, str):
        return new
    elif isinstance(old, list) and isinstance(new, list):
        return new
    elif isinstance(old, str) and isinstance(new, (int, float)):
        return str(new)
    raise UsageError(
        f"--set {key}: expected a {_type_name(old)} (current value {old!r}), got {new!r}"
    )


def _all_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, Mapping):
            keys.extend(_all_keys(v, full + "."))
    return keys


def apply_overrides(cfg: Config, overrides: Mapping[str, Any]) -> Config:
    """Set dotted keys in place. Only existing keys may be set, with a compatible type."""
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = cfg
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.6)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                raise UsageError(f"--set {key}: no such config key.{hint}")
            if i == len(parts) - 1:
                if isinstance(node[part], dict):
                    raise UsageError(f"--set {key}: is a section; set one of its keys instead")
                node[part] = _coerce(key, node[part], value)
            else:
                node = node[part]
    return cfg


def get(cfg: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node
