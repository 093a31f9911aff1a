"""The CLI's contract: version, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

from svqcast._version import __version__


def _svqcast(*args: str, env_debug: bool = False) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    env.pop("SVQCAST_DEBUG", None)
    if env_debug:
        env["SVQCAST_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "svqcast.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_version() -> None:
    res = _svqcast("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"svqcast {__version__}"


def test_unknown_command_is_usage_error() -> None:
    res = _svqcast("frobnicate")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr


def test_error_mapping_in_process(capsys) -> None:
    import pytest

    from svqcast.cli import main
    from svqcast.errors import DataError

    @main.app.command("raise-data-error-for-test", hidden=True)
    def _boom() -> None:
        raise DataError("demo.nc: variable 't2m' missing (use --var-map)")

    with pytest.raises(SystemExit) as exc:
        main.run(["raise-data-error-for-test"])
    assert exc.value.code == 3
    err = capsys.readouterr().err
    assert err.strip() == "error: demo.nc: variable 't2m' missing (use --var-map)"
    assert "Traceback" not in err


def test_exit_codes_raised_inside_commands_propagate() -> None:
    import pytest
    import typer

    from svqcast.cli import main

    @main.app.command("exit-7-for-test", hidden=True)
    def _exit7() -> None:
        raise typer.Exit(7)

    @main.app.command("interrupt-for-test", hidden=True)
    def _interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        main.run(["exit-7-for-test"])
    assert exc.value.code == 7
    with pytest.raises(SystemExit) as exc:
        main.run(["interrupt-for-test"])
    assert exc.value.code == 130
