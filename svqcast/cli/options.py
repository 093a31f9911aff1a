"""Reusable `Annotated` option types, so every command spells them the same way."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from svqcast.cli.output import OutputFormat

FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: text for humans, json for scripts.")
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        help="Override a config key, e.g. --set model.codebook_size=4096 (repeatable).",
        metavar="KEY=VALUE",
    ),
]
