"""Run the svqcast CLI in-process, the way every CLI test does."""

from __future__ import annotations

from collections.abc import Sequence

import pytest


def run_cli(args: Sequence[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `svqcast ARGS`; paths and numbers may be passed as-is."""
    from svqcast.cli import main

    try:
        main.run([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
