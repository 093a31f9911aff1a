"""`svqcast models calibrate` (logic in svqcast/verify/calibrate.py)."""

from __future__ import annotations

from typing import Any

import typer

from svqcast.cli.groups import models_app
from svqcast.cli.options import (
    CalMembersOpt,
    CalSamplesOpt,
    EvalRefArg,
    NoiseLengthOpt,
    OutputOpt,
    OverwriteOpt,
    ReportFormatOpt,
    RootOpt,
)
from svqcast.cli.output import OutputFormat, emit, out_console
from svqcast.cli.progress import reporter


@models_app.command("calibrate")
def _calibrate(
    ref: EvalRefArg,
    output: OutputOpt,
    members: CalMembersOpt = 8,
    samples: CalSamplesOpt = 32,
    noise_length: NoiseLengthOpt = 3.0,
    root: RootOpt = None,
    overwrite: OverwriteOpt = False,
    fmt: ReportFormatOpt = OutputFormat.text,
) -> None:
    """Fit the noise amplitude of a model's ensemble, then a per-lead dispersion, on its validation
    split and write a copy of the checkpoint that carries them (config.json `ensemble`, and a
    per-lead table in the card);
    `svqcast predict --members N` then uses it.

    Example: svqcast models calibrate runs/uk -o runs/uk-ens --members 8
    """
    from svqcast.forecast.forecaster import load_model
    from svqcast.fsutil import check_output
    from svqcast.verify.calibrate import fit_noise_amplitude, write_calibrated
    from svqcast.zoo.hub import resolve_checkpoint

    check_output(output, overwrite=overwrite, kind="dir")
    source = resolve_checkpoint(ref)
    fc = load_model(ref)
    with reporter(fmt) as progress:
        fitted = fit_noise_amplitude(fc, members=members, samples=samples, length=noise_length, root=root,
                                     progress=progress)
    target = write_calibrated(source, fitted, output, overwrite=overwrite)
    report = {"model": str(ref), "output": str(target), **fitted}

    def _text(r: dict[str, Any]) -> None:
        out_console.print(f"wrote {r['output']}: noise amplitude {', '.join(f'{a:.4g}' for a in r['amplitude'])} "
                          f"fitted on {r['fitted_on']} ({r['samples']} samples, {r['members']} members)")
        for ch, values in r["spread_skill_by_lead_amplitude_only"].items():
            out_console.print(f"  {ch} spread/skill by lead, amplitude only: " + " ".join(f"{v:.2f}" for v in values))
            out_console.print(f"  {ch} dispersion by lead: " + " ".join(f"{v:.2f}" for v in r["dispersion"][ch]))
            out_console.print(f"  {ch} spread/skill by lead, calibrated: "
                              + " ".join(f"{v:.2f}" for v in r["spread_skill_by_lead"][ch]))

    emit(report, fmt, _text)


def register(app: typer.Typer) -> None:
    """The command lives on the shared `models` group (added to the root app by main.py)."""
