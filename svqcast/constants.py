"""Every environment variable svqcast reads, in one place."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DEBUG = "SVQCAST_DEBUG"  # "1": show tracebacks instead of one-line errors
ENV_MIRROR = "SVQCAST_MIRROR"  # replaces the upstream base URL of any HTTP data source
ENV_DATA_DIR = "SVQCAST_DATA_DIR"  # root for downloaded and prepared datasets
ENV_CACHE_DIR = "SVQCAST_CACHE_DIR"  # model cache: $SVQCAST_CACHE_DIR/hub (default: the standard Hub cache)


def debug_enabled() -> bool:
    return os.environ.get(ENV_DEBUG, "").strip().lower() in {"1", "true", "yes"}


def data_dir() -> Path:
    """Where datasets live unless `--root` says otherwise."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "svqcast" / "datasets"


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "svqcast"
ENV_ZOO_REGISTRY = "SVQCAST_ZOO_REGISTRY"  # extra zoo registry TOML file(s), os.pathsep-separated


ENV_NETWORK_TIMEOUT = "SVQCAST_NETWORK_TIMEOUT"  # seconds a server may stay silent before a read fails
DEFAULT_NETWORK_TIMEOUT_S = 30.0


def network_timeout() -> float:
    """Seconds a remote server may stay silent ($SVQCAST_NETWORK_TIMEOUT, default 30)."""
    try:
        value = float(os.environ.get(ENV_NETWORK_TIMEOUT, DEFAULT_NETWORK_TIMEOUT_S))
    except ValueError:
        return DEFAULT_NETWORK_TIMEOUT_S
    return value if value > 0 else DEFAULT_NETWORK_TIMEOUT_S
