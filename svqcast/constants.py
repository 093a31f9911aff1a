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


ENV_DIST_TIMEOUT = "SVQCAST_DIST_TIMEOUT"  # seconds a torchrun process waits for the others (join, collectives)
DEFAULT_DIST_TIMEOUT_S = 1800.0
#: set by torchrun (and by any launcher that follows its convention) for every process of a job
ENV_RANK, ENV_LOCAL_RANK, ENV_WORLD_SIZE, ENV_LOCAL_WORLD_SIZE = "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"


def dist_timeout() -> float:
    """Seconds a process of a distributed job waits for the others ($SVQCAST_DIST_TIMEOUT,
    default 30 min, PyTorch's own default for gloo). It bounds joining the job *and* every
    collective, so it must outlast the longest time one rank works alone: rank 0 preparing a
    dataset on first use while the others wait (prepare big datasets before the job)."""
    try:
        value = float(os.environ.get(ENV_DIST_TIMEOUT, DEFAULT_DIST_TIMEOUT_S))
    except ValueError:
        return DEFAULT_DIST_TIMEOUT_S
    return value if value > 0 else DEFAULT_DIST_TIMEOUT_S


def launch_rank() -> int:
    """This process's global rank under torchrun ($RANK), 0 without it: the CLI prints its
    summaries from rank 0 only, before and after the process group exists."""
    try:
        return int(os.environ.get(ENV_RANK, "0"))
    except ValueError:
        return 0
