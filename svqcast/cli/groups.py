"""Command groups shared by several modules (e.g. `svqcast models ...` gets commands from
the model, zoo and conversion modules)."""

from __future__ import annotations

import typer

models_app = typer.Typer(
    name="models",
    help="Presets, architecture summaries, the model zoo, and checkpoint conversion.",
    no_args_is_help=True,
)
datasets_app = typer.Typer(
    name="datasets",
    help="The dataset catalog: paper datasets and the embedded real samples.",
    no_args_is_help=True,
)
