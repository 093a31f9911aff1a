"""`svqcast predict` and `svqcast plot`: parsing and printing only (logic in forecast/io/plot)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any, Optional

import typer

from svqcast.cli.options import (
    AnimateOpt,
    BatchSizeOpt,
    CheckOpt,
    CompileOpt,
    Device,
    DeviceOpt,
    ForecastOutputOpt,
    FormatOpt,
    InitTimesOpt,
    InputArg,
    Layout,
    LayoutOpt,
    LeadTimeOpt,
    ModelOpt,
    OutputOpt,
    OverwriteOpt,
    PlotFileArg,
    PlotInitTimeOpt,
    PlotLeadTimesOpt,
    PlotTruthOpt,
    StepsOpt,
    VarMapOpt,
    VarOpt,
    cli_message,
)
from svqcast.cli.output import OutputFormat, emit, log, out_console
from svqcast.cli.progress import reporter


def resolve_device(choice: Device | str) -> str:
    """auto: the GPU when one is visible; cuda without one is a usage error (exit 2)."""
    import torch

    from svqcast.errors import UsageError

    name = str(getattr(choice, "value", choice))
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA GPU is visible; use --device cpu (or auto)")
    return "cuda"


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


def _lead_report(ds: Any) -> dict[str, Any]:
    """Lead times as seconds and ISO-8601 (model steps for frame data)."""
    from svqcast.sources.timeaxis import iso_duration

    leads = ds["lead_time"].values
    if not hasattr(leads, "dtype") or leads.dtype.kind != "m":
        return {"lead_times": [f"{int(v)} steps" for v in leads], "lead_time_seconds": None}
    secs = [float(v / 1e9) for v in leads.astype("timedelta64[ns]").astype("int64")]
    return {"lead_times": [iso_duration(s) for s in secs], "lead_time_seconds": secs}


def _written(ds: Any, output: Path, layout: Layout, variables: list[str], t0: float) -> dict[str, Any]:
    """The report entries about the written forecast."""
    from svqcast.forecast.writer import output_format

    return {
        "output": str(output), "layout": layout.value, "format": output_format(output),
        **_lead_report(ds), "grid": list(ds[variables[0]].shape[-2:]),
        "range": {v: [float(ds[v].min()), float(ds[v].max())] for v in variables},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _forecast(fc: Any, prep: Any, n_steps: int, history: str, fmt: OutputFormat) -> Any:
    """Run the roll-out with progress over (initialisation x roll-out step) on stderr."""
    with reporter(fmt) as progress:
        return fc.predict(None, steps=n_steps, history=history, prepared=prep, progress=progress)


def _load_forecaster(model: Optional[str], device: Device, batch_size: int | None, compile: bool) -> Any:
    """The model on its device, with the inference settings (svqcast.models.fastpath)."""
    from svqcast.forecast.forecaster import load_model
    from svqcast.models.fastpath import configure_forecaster

    fc = load_model(model, device=resolve_device(device))
    return configure_forecaster(fc, batch_size=batch_size, compile=compile)


def _refuse_repeated_init_times(init_time: Optional[list[str]]) -> None:
    """`--init-time T --init-time T` would write the same initialisation twice."""
    import pandas as pd

    from svqcast.errors import UsageError

    seen: dict[Any, str] = {}
    for text in init_time or []:
        try:
            key: Any = pd.Timestamp(text)
        except (ValueError, TypeError):
            key = text  # parsed (and refused if bad) with the input later
        if key in seen:
            raise UsageError(f"--init-time {text} is given twice (also as {seen[key]}); give each time once")
        seen[key] = text


def _predict(
    input: InputArg,
    output: ForecastOutputOpt = None,
    model: ModelOpt = None,
    steps: StepsOpt = None,
    lead_time: LeadTimeOpt = None,
    init_time: InitTimesOpt = None,
    var_map: VarMapOpt = None,
    layout: LayoutOpt = Layout.cf,
    device: DeviceOpt = Device.auto,
    batch_size: BatchSizeOpt = 8,
    compile: CompileOpt = False,
    check: CheckOpt = False,
    overwrite: OverwriteOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Forecast from an input file with a trained model and write a CF-1.8 netCDF or zarr store.

    The input is validated against the model's data spec before any compute (variables and
    their aliases, grid, time step, number of frames, units, NaNs). Lead times beyond the
    trained horizon are rolled out autoregressively (the file's attributes say so).

    Example: svqcast predict input.nc -o forecast.nc --lead-time 24h
    """
    from svqcast.errors import UsageError
    from svqcast.forecast.writer import check_forecast_output, check_layout, write_forecast
    from svqcast.sources.lexicon import parse_var_map

    if not check and output is None:
        raise UsageError("missing --output/-o FILE (or pass --check to validate only)")
    if steps is not None and lead_time is not None:
        raise UsageError("give either --steps or --lead-time, not both")
    vmap = parse_var_map(var_map)
    _refuse_repeated_init_times(init_time)
    if output is not None and not check:
        check_forecast_output(output, overwrite=overwrite, inputs=[input])
    t0 = time.perf_counter()
    if model is not None and str(model).startswith("hf://"):
        from svqcast.zoo.hub import resolve_checkpoint

        resolve_checkpoint(str(model))  # fetch, or fail in one line, before torch is even imported
    fc = _load_forecaster(model, device, batch_size, compile)
    n_steps = fc.resolve_steps(steps, lead_time)
    prep = fc.check(input, init_time=init_time or None, var_map=vmap)
    if not check:
        check_layout(layout.value, latlon=fc.spec.dims[0] in ("lat", "latitude"), calendar=prep.time_coord,
                     n_init=len(prep.init_times))
    report: dict[str, Any] = {**prep.report(), "model": fc.ref, "steps": n_steps, "autoregressive": n_steps > fc.t_out}
    if check:
        emit(report, fmt, _check_text)
        return
    for note in prep.notes:
        log(f"note: {note}")
    history = _history(input, output, {
        "--model": model, "--steps": steps, "--lead-time": lead_time, "--init-time": init_time or [],
        "--var-map": var_map or [], "--layout": None if layout == Layout.cf else layout, "--overwrite": overwrite,
    })
    ds = _forecast(fc, prep, n_steps, history, fmt)
    assert output is not None
    write_forecast(ds, output, overwrite=overwrite, layout=layout.value, inputs=[input])
    report.update(_written(ds, output, layout, fc.variables, t0))
    emit(report, fmt, _done_text)


def _plot(
    file: PlotFileArg,
    output: OutputOpt,
    truth: PlotTruthOpt = None,
    var: VarOpt = None,
    lead_time: PlotLeadTimesOpt = None,
    animate: AnimateOpt = None,
    init_time: PlotInitTimeOpt = None,
    overwrite: OverwriteOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Maps of forecast, truth and error per lead time, plus error against lead time.

    Needs the optional extra `plot` (matplotlib).

    Example: svqcast plot forecast.nc --truth observed.nc -o forecast.png
    """
    from svqcast.verify.plot import plot_forecast

    result = plot_forecast(
        file, output, truth=truth, var=var, lead_times=lead_time or None, animate=animate, overwrite=overwrite,
        init_time=init_time,
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
