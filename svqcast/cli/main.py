"""Entry point: builds the Typer app from one module per command group and maps errors
to exit codes (0 ok, 1 runtime, 2 usage, 3 bad data, 4 network, 130 interrupted)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from svqcast import __version__
from svqcast.constants import debug_enabled

app = typer.Typer(
    name="svqcast",
    help="Spatiotemporal forecasting with Sparse Vector Quantization (SimVP + SVQ).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"svqcast {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """svqcast: SimVP + SVQ forecasting models, datasets, training, evaluation and a model zoo."""


def _register() -> None:
    # Each module adds its commands to `app`; imports stay light (torch is imported inside commands).
    from svqcast.cli import (
        convert_cmds,
        data_cmds,
        groups,
        models_cmds,
        predict_cmds,
        train_cmds,
        zoo_cmds,
    )

    for module in (models_cmds, zoo_cmds, convert_cmds, data_cmds, train_cmds, predict_cmds):
        module.register(app)
    app.add_typer(groups.models_app, name="models")
    app.add_typer(groups.datasets_app, name="datasets")


_register()


def run(argv: Optional[list[str]] = None) -> None:
    """Console-script entry: one-line errors with the right exit code, no traceback."""
    from svqcast.errors import SvqcastError

    try:
        # Without standalone mode, click/Typer *return* the code of `Exit(n)` (and of
        # Ctrl-C, as 1) instead of exiting; pass it on.
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except SvqcastError as exc:
        if debug_enabled():
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click-style usage errors, and genuine bugs
        # Typer >= 0.20 vendors click, so match click exceptions by their interface.
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            if debug_enabled():
                raise
            exc.show()
            sys.exit(exc.exit_code)
        if debug_enabled():
            raise
        typer.echo(
            f"error: internal error: {type(exc).__name__}: {exc} "
            "(set SVQCAST_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    run()
