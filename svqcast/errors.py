"""Errors that map to the CLI's exit codes (ARCHITECTURE.md section 3).

Library code raises these with a message that names the problem *and* the fix; the CLI
prints the message on one line and exits with `exit_code`, without a traceback.
"""

from __future__ import annotations


class SvqcastError(Exception):
    """A failure the user can act on. Exit code 1 (runtime error)."""

    exit_code = 1


class UsageError(SvqcastError):
    """Bad arguments, unknown preset, bad `--set` key or value. Exit code 2."""

    exit_code = 2


class DataError(SvqcastError):
    """Invalid or corrupt data, checkpoint or checksum mismatch. Exit code 3."""

    exit_code = 3


class NetworkError(SvqcastError):
    """The network is needed but unavailable (offline, unreachable, HTTP error). Exit code 4."""

    exit_code = 4


class MissingExtraError(SvqcastError):
    """An optional dependency is not installed; the message names the pip extra."""

    exit_code = 1

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional package '{module}': pip install 'svqcast[{extra}]'"
        )
