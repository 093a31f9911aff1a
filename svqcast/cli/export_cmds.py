"""`svqcast models export` (logic in svqcast/forecast/export.py)."""

from __future__ import annotations

from typing import Any

import typer

from svqcast.cli.groups import models_app
from svqcast.cli.options import (
    ExportFormat,
    ExportFormatOpt,
    ExportRefArg,
    OutputOpt,
    OverwriteOpt,
    ReportFormatOpt,
    ToleranceOpt,
    ValidateOpt,
)
from svqcast.cli.output import OutputFormat, emit, out_console


@models_app.command("export")
def _export(
    output: OutputOpt,
    ref: ExportRefArg = None,
    export_format: ExportFormatOpt = ExportFormat.onnx,
    validate: ValidateOpt = False,
    tolerance: ToleranceOpt = 1e-4,
    overwrite: OverwriteOpt = False,
    fmt: ReportFormatOpt = OutputFormat.text,
) -> None:
    """Export a model for ONNX Runtime, TorchScript/libtorch or torch.export users.

    Writes the network and data_spec.json (variables, units, grid, normalisation mean/std,
    T_in/T_out and frame offsets): everything needed to normalise an input and de-normalise
    the output without svqcast. ONNX needs the optional extra `export`.

    Example: svqcast models export era5-uk-t2m_gsta_svq --format onnx -o export/ --validate
    """
    from svqcast.forecast.export import export_model

    report = export_model(ref, export_format.value, output, overwrite=overwrite, validate=validate,
                          tolerance=tolerance)

    def _text(r: dict[str, Any]) -> None:
        out_console.print(f"wrote {r['output']}/ ({', '.join(r['files'])}): {r['model']} as {r['format']}")
        if "validation" in r:
            v = r["validation"]
            out_console.print(f"  validated on {v['sample']}: max |diff| vs PyTorch {v['max_abs_diff']:.3g} "
                              f"(tolerance {v['tolerance']:g})")

    emit(report, fmt, _text)


def register(app: typer.Typer) -> None:
    """The command lives on the shared `models` group (added to the root app by main.py)."""

