"""`svqcast models convert openstl CHECKPOINT.pth --preset PRESET -o DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from svqcast.cli.groups import models_app
from svqcast.cli.options import FormatOpt, SetOpt
from svqcast.cli.output import OutputFormat, emit, out_console

convert_app = typer.Typer(
    name="convert",
    help="Import checkpoints trained elsewhere into svqcast checkpoint directories.",
    no_args_is_help=True,
)


@convert_app.command("openstl")
def openstl(
    checkpoint: Annotated[Path, typer.Argument(help="OpenSTL / SVQ-Forecasting checkpoint.pth or latest.pth.")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset (or TOML path) the checkpoint was trained with.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint directory to create.")],
    set_: SetOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Convert an OpenSTL or SVQ-Forecasting state dict (read with torch.load(weights_only=True),
    never a full unpickle) into a svqcast checkpoint directory, mapping every key strictly.

    Example:

        svqcast models convert openstl work_dirs/t2m_svq/checkpoint.pth --preset weatherbench-s-t2m_gsta_svq -o ckpt/t2m_svq
    """
    from svqcast.convert import convert_openstl

    report = convert_openstl(checkpoint, preset, output, overrides=set_ or None, overwrite=overwrite)

    def text(r: dict) -> None:
        out_console.print(
            f"wrote {r['output']} ({r['tensors']} tensors, {r['params']:,} parameters, preset {r['preset']})"
        )

    emit(report, fmt, text)


def register(app: typer.Typer) -> None:
    """Attach `convert` to the shared `svqcast models` group."""
    models_app.add_typer(convert_app, name="convert")
