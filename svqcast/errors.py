"""Errors that map to the CLI's exit codes (docs/reliability.md lists them).

Library code raises these with a message that names the problem *and* the fix; the CLI
prints the message on one line and exits with `exit_code`, without a traceback.

Messages name the *parameters* of the Python API, never CLI flags: a parameter is written in
backticks (`` `init_time` ``, `` `steps` ``). A Python user reads the parameter's name; the CLI
rewrites each marked name to its flag (`--init-time`) with the vocabulary it owns
(`svqcast.cli.options.flag_for`), so one message serves both audiences. Backticks around
anything that is not a bare lower-case identifier (`` `svqcast prepare NAME` ``) are left alone.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

# A marked parameter name in a message: a lower-case identifier between backticks.
PARAM_MARK = re.compile(r"`([a-z][a-z0-9_]*)`")


def rename_params(message: str, rename: Callable[[str], str | None]) -> str:
    """`message` with every marked parameter replaced by `rename(name)`; a name `rename`
    does not know (None) keeps its backticks."""
    return PARAM_MARK.sub(lambda m: rename(m.group(1)) or m.group(0), message)


class SvqcastError(Exception):
    """A failure the user can act on. Exit code 1 (runtime error)."""

    exit_code = 1


class UsageError(SvqcastError):
    """Bad arguments, unknown preset, bad `--set` key or value. Exit code 2."""

    exit_code = 2


class DataError(SvqcastError):
    """Invalid or corrupt data, checkpoint or checksum mismatch. Exit code 3."""

    exit_code = 3


class MismatchError(DataError):
    """The input is not data like the model's (other variables, grid or time step). Exit code 3;
    `svqcast predict` leads the message with the model and the data it was trained on."""


class NetworkError(SvqcastError):
    """The network is needed but unavailable (offline, unreachable, HTTP error). Exit code 4."""

    exit_code = 4


class Interrupted(BaseException):
    """SIGINT (exit 130) or SIGTERM (exit 143) arrived; partial outputs were removed first.

    The codes follow the shell convention 128 + signal number, so scripts can tell an
    interrupted run from a failed one. Like KeyboardInterrupt it derives from BaseException:
    an `except Exception` written to survive a bad file can never swallow a signal.
    """

    def __init__(self, signum: int = signal.SIGINT, what: str = "") -> None:
        self.signum = int(signum)
        self.exit_code = 128 + self.signum
        name = signal.Signals(self.signum).name
        where = f" while writing {what}" if what else ""
        super().__init__(f"interrupted by {name}{where}; no partial output was left behind")


class MissingExtraError(SvqcastError):
    """An optional dependency is not installed; the message names the pip extra."""

    exit_code = 1

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional package '{module}': pip install 'svqcast[{extra}]'"
        )
