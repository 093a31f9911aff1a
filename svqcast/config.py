"""Presets and configs: TOML files, `extends` inheritance and dotted `--set` overrides.

A config is stored as a nested dict with the sections `model`, `data` and `train` (see
docs/presets.md) and read as a typed tree (`typed_config` -> `svqcast.config_schema`).
Presets are TOML files shipped in `svqcast/presets/`; a user TOML file is accepted wherever
a preset name is. TOML is data, never code: nothing is executed.

Every config -- a preset, a user TOML file (with or without `extends`), `--set` overrides, a
Python dict, a run's or a checkpoint's config.json -- gets `presets/_defaults.toml` merged
under it and passes ONE schema (`validate_config`): the keys and types of `_defaults.toml`
plus the ranges in `RANGES`. So a checked config is always complete: nothing restates a
default in code. A mistake in a file or a `--set` is a `UsageError` naming the key (exit 2);
in a checkpoint it is a `DataError` (exit 3).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from svqcast.config_schema import DEFAULTS, SECTIONS, ModelConfig, SvqcastConfig
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import check_input

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
    """A TOML config file; an empty one is refused (it would silently mean "all defaults")."""
    check_input(path, "config")  # a FIFO would block the reader
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        if not data:
            raise UsageError(f"config file {path} is empty; give at least `extends` or one key "
                             "(an empty file would run on the defaults without saying so)")
        return data
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"config {path} is a directory; give a .toml file") from None
    except OSError as exc:
        raise UsageError(f"config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid TOML ({' '.join(str(exc).split())[:160]})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid TOML (nested too deeply)") from None


def read_json_config(path: Path, what: str = "config") -> Config:
    """A config.json as a dict, or a one-line DataError (missing, not JSON, not an object,
    nested beyond reason)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: {what} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise DataError(f"{path}: {what} is nested too deeply to be a svqcast config") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: {what} must be a JSON object, got a {type(obj).__name__}")
    return obj


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
    return deep_merge(_resolve_parents(raw.pop("extends", []), path, depth), raw)


def _resolve_parents(parents: Any, path: Path, depth: int) -> Config:
    """The merged configs named by `extends` (preset names, or .toml paths relative to `path`)."""
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise UsageError(f"{path}: `extends` must be a preset name, a .toml path or a list of them")
    merged: Config = {}
    for parent in parents:
        parent_path = (path.parent / parent) if parent.endswith(".toml") else preset_path(parent)
        merged = deep_merge(merged, _resolve_file(parent_path, depth + 1))
    return merged


def is_config_path(ref: str | Path) -> bool:
    return str(ref).endswith(".toml") or Path(ref).is_file()


def load_config(
    ref: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
) -> Config:
    """Resolve a preset name, TOML path or dict into a full config and apply overrides.

    The result is complete: `_defaults.toml` is merged under every config, so a dict or a
    TOML file without `extends` runs on the same defaults as a preset. `overrides` is either
    a mapping of dotted keys to values (`{"model.codebook_size": 4096}`) or `--set` strings
    (`["model.codebook_size=4096"]`).
    """
    if isinstance(ref, Mapping):
        cfg = copy.deepcopy(dict(ref))
        cfg = deep_merge(_resolve_parents(cfg.pop("extends", []), Path.cwd() / "config.toml", 0), cfg)
        name = cfg.get("name", "custom")
    elif is_config_path(ref):
        path = Path(ref).expanduser()
        cfg = _resolve_file(path)
        name = cfg.get("name", path.stem)
    else:
        cfg = _resolve_file(preset_path(str(ref)))
        name = str(ref)
    cfg = deep_merge(_schema(), cfg)  # before the overrides: every key can be `--set`
    cfg["name"] = name
    if overrides:
        apply_overrides(cfg, parse_overrides(overrides))
    return validate_config(cfg)


def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return dict(overrides)
    parsed: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"`overrides` expects key=value items, got '{item}' (e.g. train.lr=1e-3)")
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
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), f"a {type(value).__name__}"
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
        f"`overrides` {key}: expected {_type_name(old)} (current value {old!r}), got {new!r}"
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
                raise UsageError(f"`overrides` {key}: no such config key.{hint}")
            if i == len(parts) - 1:
                if isinstance(node[part], dict):
                    raise UsageError(f"`overrides` {key}: is a section; set one of its keys instead")
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


# --------------------------------------------------------------------------- the schema

#: Inclusive numeric ranges; every float must also be finite. (lo, hi); None = unbounded.
#: A non-finite or non-positive `train.lr` is refused here (exit 2); divergence at run time
#: (a finite lr too large) is the training loop's business (exit 1).
RANGES: dict[str, tuple[float | None, float | None]] = {
    "model.out_frames": (1, 10_000), "model.hid_S": (1, 4096), "model.hid_T": (1, 16_384),
    "model.N_S": (1, 32), "model.N_T": (1, 128), "model.mlp_ratio": (1e-3, 64),
    "model.drop": (0, 0.99), "model.drop_path": (0, 0.99),
    "model.spatio_kernel_enc": (1, 31), "model.spatio_kernel_dec": (1, 31),
    "model.codebook_size": (1, 1_000_000), "model.middim": (1, 65_536), "model.residual_period": (1, 100_000),
    "train.epochs": (1, 1_000_000), "train.batch_size": (1, 65_536), "train.val_batch_size": (1, 65_536),
    "train.lr": (1e-12, None), "train.weight_decay": (0, None), "train.warmup_epochs": (0, 1_000_000),
    "train.warmup_lr": (0, None), "train.min_lr": (0, None), "train.final_div_factor": (1e-12, None),
    "train.aux_loss_weight": (0, None), "train.patience": (0, 1_000_000), "train.clip_grad": (0, None),
    "train.seed": (0, 2**32 - 1), "train.num_workers": (0, 1024), "train.max_steps_per_epoch": (0, None),
    "train.max_val_steps": (0, None), "train.num_threads": (0, 4096),
}
#: Tables whose keys are free (quantizer keyword arguments, checked by the quantizer).
FREE_TABLES = ("model.vq_options",)
#: Top-level keys besides the sections.
TOP_LEVEL = {"name": str, "description": str}


def _schema() -> Config:
    """The reference config: `_defaults.toml` (its keys, value types and the defaults).
    Read-only: `deep_merge` copies it."""
    return DEFAULTS


def _check_type(key: str, ref: Any, value: Any) -> Any:
    """The value, with the same harmless coercions `--set` makes (int -> float, number -> str)."""
    if isinstance(ref, bool):
        ok = isinstance(value, bool)
    elif isinstance(ref, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(ref, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(ref, str):
        ok = isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))
        value = str(value) if ok else value
    elif isinstance(ref, list):
        ok = isinstance(value, list)
    else:
        ok = True
    if not ok:
        raise UsageError(f"{key}: expected {_type_name(ref)}, got {value!r}")
    return value


def _check_range(key: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{key} = {value}: must be a finite number")
    lo, hi = RANGES.get(key, (None, None))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"{lo if lo is not None else '-inf'} .. {hi if hi is not None else 'inf'}"
            raise UsageError(f"{key} = {value}: out of range ({span})")
    if key == "model.in_shape" and (
        len(value) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 100_000 for v in value)
    ):
        raise UsageError(f"{key} = {value!r}: expected [T_in, C, H, W], four positive integers")


def _check_table(prefix: str, ref: Mapping[str, Any], table: Any) -> Config:
    if not isinstance(table, Mapping):
        raise UsageError(f"{prefix}: expected a table, got {table!r}")
    out: Config = {}
    for key, value in table.items():
        full = f"{prefix}.{key}"
        if key not in ref:
            same_case = [k for k in ref if k.lower() == str(key).lower()]
            close = same_case or difflib.get_close_matches(str(key), list(ref), n=1, cutoff=0.6)
            hint = f" (did you mean {prefix}.{close[0]}?)" if close else ""
            raise UsageError(f"{full}: no such config key{hint}; see docs/presets.md")
        if full in FREE_TABLES:
            if not isinstance(value, Mapping):
                raise UsageError(f"{full}: expected a table, got {value!r}")
            out[key] = value
        elif isinstance(ref[key], Mapping):
            out[key] = _check_table(full, ref[key], value)
        else:
            out[key] = _check_type(full, ref[key], value)
            _check_range(full, out[key])
    return out


def validate_config(cfg: Mapping[str, Any], source: str = "", error: type[Exception] = UsageError) -> Config:
    """Merge `_defaults.toml` under a config and check keys, types and ranges against the one
    schema; return the complete config with the harmless coercions applied. `error` is raised
    (UsageError for what the user typed, DataError for a stored checkpoint), its message
    prefixed with `source`."""
    ref = _schema()
    try:
        if not isinstance(cfg, Mapping):
            raise UsageError(f"a config must be a table of sections, got a {type(cfg).__name__}")
        out: Config = {}
        for key, value in deep_merge(ref, cfg).items():
            if key in TOP_LEVEL:
                out[key] = value if isinstance(value, str) else str(value)
            elif key in ref and isinstance(ref[key], Mapping):
                out[key] = _check_table(str(key), ref[key], value)
            else:
                known = ", ".join([*(k for k in ref if isinstance(ref[k], Mapping)), *TOP_LEVEL])
                raise UsageError(f"unknown config section or key '{key}' (known: {known})")
        return out
    except UsageError as exc:
        if error is UsageError and not source:
            raise
        raise error(f"{source + ': ' if source else ''}{exc}") from None


def typed_config(cfg: Mapping[str, Any] | SvqcastConfig, source: str = "",
                 error: type[Exception] = UsageError) -> SvqcastConfig:
    """The typed tree of a config (a dict of any completeness, or a tree already): defaults
    merged, keys, types and ranges checked as `validate_config` does."""
    if isinstance(cfg, SvqcastConfig):
        return cfg
    return SvqcastConfig.from_dict(validate_config(cfg, source, error))


def model_config(cfg: Mapping[str, Any] | SvqcastConfig | ModelConfig) -> ModelConfig:
    """The complete, checked `[model]` section of a whole config, or of a `[model]` table
    given alone (`{"quantizer": "svq", "codebook_size": 64}`): what the model builders read."""
    if isinstance(cfg, ModelConfig):
        return cfg
    if isinstance(cfg, Mapping) and cfg and not set(cfg) & {*SECTIONS, *TOP_LEVEL}:
        cfg = {"model": cfg}
    return typed_config(cfg).model


#: Top-level keys of a checkpoint's config.json (svqcast.zoo.checkpoint writes exactly these).
CHECKPOINT_KEYS = {"format_version", "svqcast_version", "preset", "config", "data_spec", "provenance",
                   "weights_sha256", "ensemble"}  # ensemble: the fitted noise amplitudes (forecast/ensemble.py)


def validate_checkpoint_meta(meta: Any, source: str, format_version: int) -> Config:
    """A checkpoint's config.json: known keys only, a format this version reads, the weights'
    sha256 recorded, and a config that passes the schema, returned complete (a key an older
    checkpoint lacks takes its `_defaults.toml` value). Any failure is a DataError (exit 3)."""
    if not isinstance(meta, dict):
        raise DataError(f"{source}: config.json must be a JSON object, got a {type(meta).__name__}")
    unknown = sorted(set(meta) - CHECKPOINT_KEYS)
    if unknown:
        raise DataError(f"{source}: config.json has unknown keys {unknown[:5]}; not written by svqcast "
                        "(or by a newer version: upgrade svqcast)")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= format_version:
        raise DataError(f"{source}: checkpoint format_version {version!r} is not one this svqcast reads "
                        f"(1..{format_version}); upgrade svqcast or re-create the checkpoint")
    sha = meta.get("weights_sha256")
    if not (isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)):
        raise DataError(f"{source}: config.json records no valid weights_sha256, so the weights cannot be "
                        "verified; re-create the checkpoint with svqcast")
    for key in ("data_spec", "provenance", "ensemble"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise DataError(f"{source}: config.json '{key}' must be an object")
    meta = dict(meta)
    meta["config"] = validate_config(meta.get("config"), f"{source}: config.json", error=DataError)
    return meta
