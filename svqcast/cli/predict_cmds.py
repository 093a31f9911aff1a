"""`svqcast predict` and `svqcast plot`: parsing and printing only (logic in forecast/io/plot)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from svqcast.cli.options import FormatOpt
from svqcast.cli.output import OutputFormat, emit, log, out_console

ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="Zoo name (svqcast models list), hf://ORG/NAME@REVISION, or a checkpoint/run directory. "
        "Default: the zoo's default model.",
    ),
]


def _predict(
    input: Annotated[Path, typer.Argument(help="netCDF or zarr input: a file, or a directory of files.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Forecast file to write (netCDF4, CF-1.8).")] = None,
    model: ModelOpt = None,
    steps: Annotated[Optional[int], typer.Option("--steps", "-n", help="Number of output frames (default: the model's T_out).")] = None,
    lead_time: Annotated[Optional[str], typer.Option("--lead-time", help="Forecast horizon instead of --steps, e.g. 24h, 2d.")] = None,
    init_time: Annotated[
        Optional[list[str]],
        typer.Option("--init-time", help="Initialisation time (repeatable); default: the last time in the input."),
    ] = None,
    var_map: Annotated[
        Optional[list[str]],
        typer.Option("--var-map", help="Map an input variable to a model variable, INPUT=MODEL (repeatable).", metavar="A=B"),
    ] = None,
    check: Annotated[bool, typer.Option("--check", help="Only validate the input against the model and report.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Forecast from an input file with a trained model and write a CF-1.8 netCDF.

    The input is validated against the model's data spec before any compute (variables and their aliases, grid, time step, number of frames, units, NaNs). Lead times beyond the trained horizon are rolled out autoregressively (the file's attributes say so).

    Example: svqcast predict input.nc -o forecast.nc --lead-time 24h
    """
    from svqcast.errors import UsageError
    from svqcast.forecast import load_model
    from svqcast.io import check_output_path, parse_var_map

    if not check and output is None:
        raise UsageError("missing --output/-o FILE (or pass --check to validate only)")
    if steps is not None and lead_time is not None:
        raise UsageError("give either --steps or --lead-time, not both")
    vmap = parse_var_map(var_map)
    if output is not None and not check:
        check_output_path(output, overwrite)
    t0 = time.perf_counter()
    fc = load_model(model)
    n_steps = fc.resolve_steps(steps, lead_time)
    prep = fc.check(input, init_time=init_time or None, var_map=vmap)
    report: dict[str, Any] = {**prep.report(), "model": fc.ref, "steps": n_steps,
                              "autoregressive": n_steps > fc.t_out}
    if check:
        def _text(r: dict[str, Any]) -> None:
            out_console.print(f"ok: {r['input']} can be forecast with {r['model']}")
            out_console.print(f"  variables: {', '.join(f'{k} <- {v}' for k, v in r['variables'].items())}")
            out_console.print(f"  init times: {', '.join(map(str, r['init_times']))}; {r['frames_per_init']} input frames each")
            out_console.print(f"  steps: {r['steps']}" + (" (beyond the trained horizon: autoregressive)" if r["autoregressive"] else ""))
            for note in r["notes"]:
                out_console.print(f"  note: {note}")

        emit(report, fmt, _text)
        return
    for note in prep.notes:
        log(f"note: {note}")
    # the command as given (rebuilt from the parsed options, so it is right in-process too)
    words = ["svqcast", "predict", str(input), "-o", str(output)]
    for flag, value in (("--model", model), ("--steps", steps), ("--lead-time", lead_time)):
        if value is not None:
            words += [flag, str(value)]
    for t in init_time or []:
        words += ["--init-time", t]
    for pair in var_map or []:
        words += ["--var-map", pair]
    if overwrite:
        words.append("--overwrite")
    history = " ".join(shlex.quote(w) for w in words)
    ds = fc.predict(None, steps=n_steps, history=history, prepared=prep)
    from svqcast.io import write_forecast

    assert output is not None
    write_forecast(ds, output, overwrite=overwrite)
    var = fc.variables[0]
    arr = ds[var].values
    report.update({
        "output": str(output),
        "lead_times": [str(v) for v in ds["lead_time"].values.astype("timedelta64[m]")] if "lead_time" in ds else [],
        "range": {v: [float(ds[v].min()), float(ds[v].max())] for v in fc.variables},
        "seconds": round(time.perf_counter() - t0, 3),
    })

    def _text_done(r: dict[str, Any]) -> None:
        out_console.print(
            f"wrote {r['output']}: {var} {arr.shape[1]} lead times x {arr.shape[-2]}x{arr.shape[-1]} "
            f"from {', '.join(map(str, r['init_times']))} with {r['model']}"
            + (" (autoregressive beyond the trained horizon)" if r["autoregressive"] else "")
            + f" in {r['seconds']:.1f} s"
        )

    emit(report, fmt, _text_done)


def _plot(
    file: Annotated[Path, typer.Argument(help="Forecast netCDF written by svqcast predict.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Figure to write (.png, .pdf, .svg).")],
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Observations (netCDF/zarr) covering the valid times.")] = None,
    var: Annotated[Optional[str], typer.Option("--var", help="Variable to plot (default: the first).")] = None,
    lead_time: Annotated[
        Optional[list[str]], typer.Option("--lead-time", help="Lead time(s) to map, e.g. 6h (repeatable; default: 4 spread out).")
    ] = None,
    animate: Annotated[Optional[Path], typer.Option("--animate", help="Also write an animated GIF over all lead times.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing figures.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Maps of forecast, truth and error per lead time, plus error against lead time.

    Needs the optional extra `plot` (matplotlib).

    Example: svqcast plot forecast.nc --truth observed.nc -o forecast.png
    """
    from svqcast.plot import plot_forecast

    result = plot_forecast(
        file, output, truth=truth, var=var, lead_times=lead_time or None, animate=animate, overwrite=overwrite
    )

    def _text(r: dict[str, Any]) -> None:
        out_console.print(f"wrote {r['figure']}" + (f" and {r['animation']}" if r.get("animation") else ""))
        for row in r.get("scores", []):
            out_console.print(f"  lead {row['lead_time']}: MAE {row['mae']:.3f}  RMSE {row['rmse']:.3f} {r['units']}")

    emit(result, fmt, _text)


def register(app: typer.Typer) -> None:
    """Add `predict` and `plot` to the root app."""
    app.command("predict")(_predict)
    app.command("plot")(_plot)
