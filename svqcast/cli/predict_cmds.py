"""`svqcast predict` and `svqcast plot`: parsing and printing only (svqcast.forecast.run, svqcast.verify.plot)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from svqcast.cli.options import (
    AnimateOpt,
    BatchSizeOpt,
    CheckOpt,
    CompileOpt,
    CoordsOpt,
    Device,
    DeviceOpt,
    ForecastOutputOpt,
    FormatOpt,
    InitTimesOpt,
    InitTimesRangeOpt,
    InputArg,
    Layout,
    LayoutOpt,
    LeadTimeOpt,
    MemberSeedOpt,
    MembersOpt,
    ModelsOpt,
    NoiseAmplitudeOpt,
    NoiseLengthOpt,
    OutputOpt,
    OverwriteOpt,
    PerturbOpt,
    PlotFileArg,
    PlotInitTimeOpt,
    PlotLeadTimesOpt,
    PlotTruthOpt,
    ScoreAgainstOpt,
    StepsOpt,
    VarMapOpt,
    VarOpt,
    cli_message,
)
from svqcast.cli.output import OutputFormat, emit, log, out_console
from svqcast.cli.progress import reporter
from svqcast.errors import UsageError

DEFAULT_NOISE_LENGTH = 3.0  # cells: svqcast.forecast.ensemble.DEFAULT_LENGTH (kept light: no torch at start-up)


def _history(input: Path, output: Path | None, options: dict[str, Any]) -> str:
    """The command as given, rebuilt from the parsed options (so it is right in-process too)."""
    words = ["svqcast", "predict", str(input), "-o", str(output)]
    for flag, value in options.items():
        if value in (None, False, [], ()):
            continue
        if value is True:
            words.append(flag)
            continue
        for item in value if isinstance(value, list) else [value]:
            words += [flag, str(getattr(item, "value", item))]
    return " ".join(shlex.quote(w) for w in words)


def _check_text(r: dict[str, Any]) -> None:
    out_console.print(f"ok: {r['input']} can be forecast with {r['model']}")
    out_console.print(f"  variables: {', '.join(f'{k} <- {v}' for k, v in r['variables'].items())}")
    out_console.print(f"  init times: {', '.join(map(str, r['init_times']))}; {r['frames_per_init']} input frames each")
    auto = " (beyond the trained horizon: autoregressive)" if r["autoregressive"] else ""
    out_console.print(f"  steps: {r['steps']}{auto}")
    for note in r["notes"]:
        out_console.print(f"  note: {note}")


def _done_text(r: dict[str, Any]) -> None:
    auto = " (autoregressive beyond the trained horizon)" if r["autoregressive"] else ""
    out_console.print(
        f"wrote {r['output']} ({r['layout']} layout): {', '.join(r['range'])} {len(r['lead_times'])} lead times "
        f"x {r['grid'][0]}x{r['grid'][1]} from {', '.join(map(str, r['init_times']))} with {r['model']}{auto} "
        f"in {r['seconds']:.1f} s"
    )


def _predict(
    input: InputArg,
    output: ForecastOutputOpt = None,
    model: ModelsOpt = None,
    steps: StepsOpt = None,
    lead_time: LeadTimeOpt = None,
    init_time: InitTimesOpt = None,
    init_times: InitTimesRangeOpt = None,
    score_against: ScoreAgainstOpt = None,
    var_map: VarMapOpt = None,
    coords: CoordsOpt = None,
    layout: LayoutOpt = Layout.cf,
    device: DeviceOpt = Device.auto,
    batch_size: BatchSizeOpt = 8,
    compile: CompileOpt = False,
    check: CheckOpt = False,
    overwrite: OverwriteOpt = False,
    members: MembersOpt = None,
    perturb: PerturbOpt = "noise",
    noise_amplitude: NoiseAmplitudeOpt = None,
    noise_length: NoiseLengthOpt = DEFAULT_NOISE_LENGTH,
    seed: MemberSeedOpt = 0,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Forecast from an input file with a trained model and write a CF-1.8 netCDF or zarr store.

    The input is validated against the model's data spec before any compute (variables and
    their aliases, grid, time step, number of frames, units, NaNs). Lead times beyond the
    trained horizon are rolled out autoregressively (the file's attributes say so).

    Example: svqcast predict input.nc -o forecast.nc --lead-time 24h
    Example: svqcast predict input.nc -o ens.nc --members 8 --perturb noise --seed 1
    Example: svqcast predict input.nc -o ens.nc --perturb models --model runs/a --model runs/b
    Example: svqcast predict era5.nc -o year.zarr --init-times 2019-01-02T00:2019-12-31T00:12h --score-against era5.nc
    """
    from svqcast.forecast.ensemble import Members
    from svqcast.forecast.run import PredictRequest, predict_file

    models = list(model or [])
    if init_times is not None or score_against is not None:
        _refuse_many(init_times, init_time, members, perturb, models)
    plan = None
    if members is not None or perturb == "models":
        plan = Members(members or len(models), perturb, seed, _amplitudes(noise_amplitude), noise_length)
    elif len(models) > 1:
        raise UsageError("several --model make a models ensemble: add --perturb models")
    history = _history(input, output, {
        "--model": models, "--members": members, "--perturb": perturb if plan else None,
        "--seed": seed if plan else None, "--noise-amplitude": noise_amplitude, "--steps": steps,
        "--lead-time": lead_time, "--init-time": init_time or [], "--init-times": init_times,
        "--var-map": var_map or [], "--coords": coords or [],
        "--layout": None if layout == Layout.cf else layout, "--overwrite": overwrite,
    })
    req = PredictRequest(input, output, models[0] if models else None, steps, lead_time, init_time or [], var_map,
                         layout.value, device.value, batch_size, compile, check, overwrite, history, coords,
                         members=plan, models=models[1:])
    if init_times is not None:
        _predict_many(req, init_times, score_against, fmt)
        return
    with reporter(fmt) as progress:
        report = predict_file(req, progress=progress)
    if check:
        emit(report, fmt, _check_text)
        return
    for note in report["notes"]:
        log(f"note: {note}")
    emit(report, fmt, _done_text)


def _refuse_many(init_times: str | None, init_time: list[str] | None, members: int | None, perturb: str,
                 models: list[str]) -> None:
    """`--init-times` streams deterministic forecasts of one model; everything else is refused first."""
    if init_times is None:
        raise UsageError("--score-against scores a streamed run: give --init-times too (or use `svqcast score`)")
    if init_time:
        raise UsageError("give either --init-time (repeatable) or --init-times, not both")
    if members is not None or perturb == "models" or len(models) > 1:
        raise UsageError("--init-times writes deterministic forecasts of one model; make ensembles with --init-time")


def _predict_many(req: Any, init_times: str, score_against: Path | None, fmt: OutputFormat) -> None:
    """Parse the initialisations (refused before anything is loaded), stream, print on rank 0."""
    from svqcast.api import predict_many
    from svqcast.cli.score_cmds import _print_text as print_scores

    fields = {k: getattr(req, k) for k in ("model", "steps", "lead_time", "var_map", "layout", "device",
                                           "batch_size", "compile", "check", "overwrite", "history", "coords")}
    with reporter(fmt) as progress:
        report = predict_many(req.input, req.output, init_times, score_against=score_against,
                              progress=progress, **fields)
    if report.get("rank", 0) != 0:
        return

    def _text(r: dict[str, Any]) -> None:
        if r.get("ok") and "computed" not in r:
            out_console.print(f"ok: {r['input']} can be forecast with {r['model']} from {r['inits']} initialisations "
                              f"({r['init_times'][0]} .. {r['init_times'][1]})")
            return
        out_console.print(f"wrote {r['output']} ({r['layout']} layout): {r['inits']} initialisations "
                          f"({r['init_times'][0]} .. {r['init_times'][1]}) x {r['steps']} steps with {r['model']}: "
                          f"computed {r['computed']}, skipped {r['skipped']} (done before) on {r['ranks']} rank(s) "
                          f"in {r['seconds']:.1f} s, {r['forecasts_per_second'] or 0:.2f} forecasts/s")
        if r.get("scores"):
            print_scores(r["scores"])

    emit(report, fmt, _text)


def _amplitudes(text: str | None) -> list[float] | None:
    """`--noise-amplitude 0.5` or `0.5,2` -> floats (checked for sign and finiteness later)."""
    if text is None:
        return None
    try:
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"--noise-amplitude {text!r}: give numbers, one or one per channel") from None


def _plot(
    file: PlotFileArg,
    output: OutputOpt,
    truth: PlotTruthOpt = None,
    var: VarOpt = None,
    lead_time: PlotLeadTimesOpt = None,
    animate: AnimateOpt = None,
    init_time: PlotInitTimeOpt = None,
    overwrite: OverwriteOpt = False,
    coords: CoordsOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Maps of forecast, truth and error per lead time, plus error against lead time.

    Needs the optional extra `plot` (matplotlib).

    Example: svqcast plot forecast.nc --truth observed.nc -o forecast.png
    """
    from svqcast.sources.coords import parse_coords
    from svqcast.verify.plot import plot_forecast

    result = plot_forecast(
        file, output, truth=truth, var=var, lead_times=lead_time or None, animate=animate, overwrite=overwrite,
        init_time=init_time, coords=parse_coords(coords),
    )
    result["notes"] = [cli_message(note) for note in result.get("notes", [])]  # parameters -> flags
    for note in result["notes"]:
        log(f"note: {note}")

    def _text(r: dict[str, Any]) -> None:
        out_console.print(f"wrote {r['figure']}" + (f" and {r['animation']}" if r.get("animation") else ""))
        for row in r.get("scores", []):
            out_console.print(f"  lead {row['lead_time']}: MAE {row['mae']:.3f}  RMSE {row['rmse']:.3f} {r['units']}")

    emit(result, fmt, _text)


def register(app: typer.Typer) -> None:
    """Add `predict` and `plot` to the root app."""
    app.command("predict")(_predict)
    app.command("plot")(_plot)
