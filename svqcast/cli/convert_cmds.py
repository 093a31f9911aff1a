"""`svqcast models convert openstl CHECKPOINT.pth --preset PRESET -o DIR`."""

from __future__ import annotations

import typer

from svqcast.cli.groups import models_app
from svqcast.cli.options import (
    ConvertPresetOpt,
    DataOpt,
    FormatOpt,
    OpenSTLCheckpointArg,
    OutputOpt,
    OverwriteOpt,
    RootOpt,
    SetOpt,
)
from svqcast.cli.output import OutputFormat, emit, out_console

convert_app = typer.Typer(
    name="convert",
    help="Import checkpoints trained elsewhere into svqcast checkpoint directories.",
    no_args_is_help=True,
)


@convert_app.command("openstl")
def openstl(
    checkpoint: OpenSTLCheckpointArg,
    preset: ConvertPresetOpt,
    output: OutputOpt,
    set_: SetOpt = None,
    overwrite: OverwriteOpt = False,
    data: DataOpt = None,
    root: RootOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Convert an OpenSTL or SVQ-Forecasting state dict (read with torch.load(weights_only=True),
    never a full unpickle) into a svqcast checkpoint directory, mapping every key strictly.

    Example:

        svqcast models convert openstl work_dirs/t2m_svq/checkpoint.pth \
            --preset weatherbench-s-t2m_gsta_svq -o ckpt/t2m_svq
    """
    from svqcast.zoo.convert import convert_openstl

    report = convert_openstl(checkpoint, preset, output, overrides=set_ or None, overwrite=overwrite, data=data,
                             root=root)

    def text(r: dict) -> None:
        out_console.print(
            f"wrote {r['output']} ({r['tensors']} tensors, {r['params']:,} parameters, preset {r['preset']})"
        )

    emit(report, fmt, text)


def register(app: typer.Typer) -> None:
    """Attach `convert` to the shared `svqcast models` group."""
    models_app.add_typer(convert_app, name="convert")
