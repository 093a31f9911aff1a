"""Entry point: builds the Typer app from one module per command group and maps errors
to exit codes (0 ok, 1 runtime, 2 usage, 3 bad data, 4 network, 130/143 interrupted)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Optional

import typer

from svqcast.cli.options import VersionOpt, cli_message
from svqcast.constants import debug_enabled

app = typer.Typer(
    name="svqcast",
    help="Spatiotemporal forecasting with Sparse Vector Quantization (SimVP + SVQ).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    rich_markup_mode="rich",
)


@app.callback()
def _root(version: VersionOpt = False) -> None:
    """svqcast: SimVP + SVQ forecasting models, datasets, training, evaluation and a model zoo."""


def _register() -> None:
    # Each module adds its commands to `app`; imports stay light (torch is imported inside commands).
    from svqcast.cli import (
        calibrate_cmds,
        convert_cmds,
        data_cmds,
        export_cmds,
        groups,
        models_cmds,
        predict_cmds,
        score_cmds,
        train_cmds,
        zoo_cmds,
    )

    for module in (models_cmds, zoo_cmds, convert_cmds, export_cmds, calibrate_cmds, data_cmds, train_cmds,
                   predict_cmds, score_cmds):
        module.register(app)
    app.add_typer(groups.models_app, name="models")
    app.add_typer(groups.datasets_app, name="datasets")


_register()


def _quiet_libraries() -> None:
    """Third-party warnings (xarray time encoding, zarr metadata, torch, huggingface_hub retries)
    are not the user's business: svqcast reports what matters as one line of its own."""

    warnings.simplefilter("ignore")
    for name in ("huggingface_hub", "urllib3", "fsspec", "zarr", "numcodecs", "py.warnings"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _exit_os_error(exc: OSError) -> None:
    """An OSError nobody classified: still one line, naming the file, never "internal error"."""

    where = f" at {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        typer.echo(f"error: disk full{where}; free some space and run again", err=True)
        sys.exit(1)
    reason = os.strerror(exc.errno).lower() if exc.errno else _one_line(exc)
    typer.echo(f"error: {reason}{where}", err=True)
    sys.exit(2 if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else 1)


def _dispatch(argv: Optional[list[str]]) -> None:
    # Without standalone mode, click/Typer *return* the code of `Exit(n)` (and of
    # Ctrl-C, as 1) instead of exiting; pass it on.
    rc = app(args=argv, standalone_mode=False)
    if rc == 130:  # Typer swallows Ctrl-C into a returned 130: report it like every interrupt
        raise KeyboardInterrupt
    if isinstance(rc, int) and rc:
        sys.exit(rc)


def _click_error(exc: Exception) -> int | None:
    """A click/Typer usage error (bad option value, missing argument) as ONE line; None if
    `exc` is not one. Typer >= 0.20 vendors click, so they are matched by their interface."""
    if not (callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)):
        return None
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # type: ignore[attr-defined]  # the help text is the point
        return int(exc.exit_code)  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    typer.echo(f"error: {_one_line(Exception(exc.format_message()))}{hint}", err=True)  # type: ignore[attr-defined]
    return int(exc.exit_code)  # type: ignore[attr-defined]


def _report(exc: BaseException, debug: bool) -> int:
    """Print one line for `exc` and return the exit code; re-raise what is not ours to report."""

    from svqcast.errors import Interrupted, SvqcastError

    if isinstance(exc, (SystemExit, typer.Exit)) or (debug and not isinstance(exc, Interrupted)):
        raise exc
    if isinstance(exc, Interrupted):
        typer.echo(f"error: {_one_line(exc)}", err=True)
        return exc.exit_code
    if isinstance(exc, SvqcastError):  # library messages name parameters; show the flags
        typer.echo(f"error: {cli_message(_one_line(exc))}", err=True)
        return exc.exit_code
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        typer.echo(f"error: {Interrupted(signal.SIGINT)}", err=True)
        return 130
    if isinstance(exc, OSError):
        _exit_os_error(exc)
    if isinstance(exc, Exception) and (code := _click_error(exc)) is not None:
        return code
    if not isinstance(exc, Exception):
        raise exc
    typer.echo(
        f"error: internal error: {type(exc).__name__}: {_one_line(exc)} "
        "(set SVQCAST_DEBUG=1 for the traceback, and please report it)",
        err=True,
    )
    return 1


def run(argv: Optional[list[str]] = None) -> None:
    """Console-script entry: one-line errors with the right exit code, no traceback.

    SIGTERM becomes `Interrupted` like Ctrl-C, so every command cleans up, prints one line and
    exits 143 (SIGINT: 130); file writes defer both (svqcast.fsutil). The previous SIGTERM
    handler is restored on return, so calling `run` in-process (tests, notebooks) leaves no trace.
    """

    from svqcast.fsutil import raise_interrupted

    debug = debug_enabled()
    if not debug:
        _quiet_libraries()
    old_term = None
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        _dispatch(argv)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes one line and a code
        sys.exit(_report(exc, debug))
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":  # pragma: no cover
    run()
