"""`svqcast models presets|describe` (logic in svqcast/models/summary.py)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from svqcast.cli.groups import models_app
from svqcast.cli.options import FormatOpt, PresetArg, SetOpt
from svqcast.cli.output import OutputFormat, emit, out_console, print_table


@models_app.command("presets")
def _presets(fmt: FormatOpt = OutputFormat.text) -> None:
    """List the shipped presets (`<dataset>_<translator>[_<quantizer>]`).

    Example: svqcast models presets --format json
    """
    from svqcast.models.summary import preset_rows

    rows = preset_rows()

    def _text(data: list[dict[str, Any]]) -> None:
        print_table([("name", True), ("dataset", True), ("translator", False), ("quantizer", False),
                     ("description", False)],
                    [[r["name"], r["dataset"], r["translator"], r["quantizer"], r["description"]] for r in data])

    emit(rows, fmt, _text)


def _human(n: int, unit: str = "") -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3f} {suffix}{unit}"
    return f"{n} {unit}".strip()


@models_app.command("describe")
def _describe(
    preset: PresetArg,
    overrides: SetOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Parameters, trainable parameters, FLOPs and shapes of a preset's model.

    FLOPs follow the fvcore convention of the paper's Table 12 (1 multiply-add = 1 flop,
    one model call on a (1, T, C, H, W) input, official materialised SVQ); `flops_fused`
    is what svqcast executes. Nothing is allocated: the model is built on the meta device.

    Example: svqcast models describe weatherbench-s-t2m_gsta_svq --set model.codebook_size=4096
    """
    from svqcast.models.summary import describe

    info = describe(preset, overrides or None)

    def _text(r: dict[str, Any]) -> None:
        table = Table(title=r["name"], box=None, pad_edge=False, show_header=False)
        table.add_column("key", style="bold")
        table.add_column("value")
        table.add_row("translator", r["translator"])
        table.add_row("quantizer", r["quantizer"])
        table.add_row("params", f"{r['params']:,} ({_human(r['params'])})")
        table.add_row("trainable params", f"{r['trainable_params']:,}")
        table.add_row("quantizer params", f"{r['quantizer_params']:,}")
        table.add_row("FLOPs (paper, fvcore)", f"{r['flops']:,} ({_human(r['flops'])})")
        table.add_row("FLOPs (fused, executed)", f"{r['flops_fused']:,} ({_human(r['flops_fused'])})")
        table.add_row("model calls per forecast", str(r["model_calls"]))
        table.add_row("input shape", str(tuple(r["input_shape"])))
        table.add_row("output shape", str(tuple(r["output_shape"])))
        table.add_row("latent (C', H', W')", str(tuple(r["latent_shape"])))
        out_console.print(table)

    emit(info, fmt, _text)


def register(app: typer.Typer) -> None:
    """Commands live on the shared `models` group (added to the root app by main.py)."""
