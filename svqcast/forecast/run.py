"""Predict from a file, end to end: the library function behind `svqcast predict`.

Every refusal comes before any compute, in the order a user can act on: the options, the
output path, the model (fetched or refused before torch starts), the input against the
model's data spec, the layout. Then the roll-out, the atomic write, and a JSON-ready report.
The CLI only parses, prints and maps errors to exit codes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from svqcast.data.spec import time_step
from svqcast.errors import MismatchError, UsageError
from svqcast.forecast.ensemble import Members, same_data
from svqcast.forecast.forecaster import Forecaster, load_model
from svqcast.forecast.writer import (
    check_forecast_output,
    check_layout,
    output_format,
    step_unit,
    with_members,
    write_forecast,
)
from svqcast.models.fastpath import configure_forecaster
from svqcast.progress import Progress
from svqcast.sources.coords import parse_coords
from svqcast.sources.leadtime import format_step, step_label
from svqcast.sources.lexicon import parse_var_map
from svqcast.sources.timeaxis import iso_duration
from svqcast.zoo.hub import resolve_checkpoint
from svqcast.zoo.registry import ensemble_members


@dataclass
class PredictRequest:
    """What to forecast, from what, with which model, and where to write it."""

    input: str | os.PathLike[str]
    output: str | os.PathLike[str] | None = None
    model: str | None = None
    steps: int | None = None
    lead_time: str | None = None
    init_time: Sequence[str] = ()
    var_map: Sequence[str] | Mapping[str, str] | None = None
    layout: str = "cf"
    device: str = "auto"
    batch_size: int | None = 8
    compile: bool = False
    check: bool = False
    overwrite: bool = False
    history: str = ""
    coords: str | Sequence[str] | Mapping[str, str] | None = None  # {role: name} overrides of the guesser
    notes: list[str] = field(default_factory=list)
    members: Members | None = None  # an ensemble (docs/ensembles.md); kind "models" uses `models` too
    models: Sequence[str] = ()  # the other members' models of a "models" ensemble


def resolve_device(name: str) -> str:
    """auto: the GPU when one is visible; cuda without one is a usage error (exit 2)."""
    import torch

    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise UsageError("`device` cuda: no CUDA GPU is visible; use `device` cpu (or auto)")
    return "cuda"


def refuse_repeated_init_times(init_time: Sequence[str]) -> None:
    """The same initialisation twice would write duplicated times into the forecast."""
    seen: dict[Any, str] = {}
    for text in init_time:
        try:
            key: Any = pd.Timestamp(text)
        except (ValueError, TypeError):
            key = text  # parsed (and refused if bad) with the input later
        if key in seen:
            raise UsageError(f"`init_time` {text} is given twice (also as {seen[key]}); give each time once")
        seen[key] = text


def _check_request(req: PredictRequest) -> dict[str, str]:
    """Everything that can be refused from the request alone; returns the parsed `var_map`."""
    if not req.check and req.output is None:
        raise UsageError("missing `output` FILE (or pass `check` to validate only)")
    if req.steps is not None and req.lead_time is not None:
        raise UsageError("give either `steps` or `lead_time`, not both")
    var_map = parse_var_map(req.var_map)
    parse_coords(req.coords)
    refuse_repeated_init_times(list(req.init_time))
    if req.output is not None and not req.check:
        check_forecast_output(req.output, overwrite=req.overwrite, inputs=[req.input])
    return var_map


def _load(req: PredictRequest) -> Forecaster:
    """The model on its device with the inference settings; a Hub model is fetched first."""
    if req.model is not None and str(req.model).startswith("hf://"):
        resolve_checkpoint(str(req.model))  # fetch, or fail in one line, before torch is even imported
    fc = load_model(req.model, device=resolve_device(req.device))
    return configure_forecaster(fc, batch_size=req.batch_size, compile=req.compile)


def _trained_on(fc: Forecaster, ref: str | None) -> str:
    spec = fc.spec
    grid = "x".join(str(len(spec.coords.get(d, []))) for d in spec.dims)
    fixed = time_step(spec)
    step = (spec.extra.get("time_step") if isinstance(spec.extra, dict) else None) or (
        format_step(fixed) if fixed is not None else "frames")
    hint = ("pass `model` RUN (a model trained on data like yours)" if ref is None
            else "use a model trained on your data")
    return (f"the model {fc.ref} was trained on dataset {spec.dataset} (grid {grid}, variables "
            f"{', '.join(fc.variables)}, step {step}); {hint}")


def lead_report(ds: Any) -> dict[str, Any]:
    """Lead times as ISO-8601 and seconds (model steps for frame data)."""
    leads = ds["lead_time"].values
    if not hasattr(leads, "dtype") or leads.dtype.kind != "m":
        attrs = ds["lead_time"].attrs
        counted = (int(attrs.get("svqcast_step_size", 1)), str(attrs.get("svqcast_step_unit", "steps")))
        return {"lead_times": [step_label(int(v), counted) for v in leads], "lead_time_seconds": None}
    secs = [float(v / 1e9) for v in leads.astype("timedelta64[ns]").astype("int64")]
    return {"lead_times": [iso_duration(s) for s in secs], "lead_time_seconds": secs}


def _written(ds: Any, req: PredictRequest, channels: list[str], t0: float) -> dict[str, Any]:
    output = Path(str(req.output))
    variables = [v for v in dict.fromkeys(c.rpartition("@")[0] if c not in ds else c for c in channels) if v in ds]
    return {
        "output": str(output), "layout": req.layout, "format": output_format(output),
        **lead_report(ds), "grid": list(ds[variables[0]].shape[-2:]),
        "range": {v: [float(ds[v].min()), float(ds[v].max())] for v in variables},  # NaN-skipping (masked cells)
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _forecast(fc: Forecaster, req: PredictRequest, prep: Any, n_steps: int, var_map: Any,
              progress: Progress | None) -> Any:
    """The deterministic forecast, or the ensemble `req.members` asks for."""
    plan = req.members
    if plan is None:
        return fc.predict(None, steps=n_steps, history=req.history, prepared=prep, progress=progress)
    if plan.kind == "lagged":
        if len(prep.init_times) != 1:
            raise UsageError("`perturb` lagged makes members for one initialisation; give one `init_time`")
        return fc.predict(req.input, steps=n_steps, init_time=prep.init_times[-1], history=req.history,
                          var_map=var_map, progress=progress, members=plan)
    if plan.kind == "noise":
        return fc.predict(None, steps=n_steps, history=req.history, prepared=prep, progress=progress, members=plan)
    others = [configure_forecaster(load_model(ref, device=resolve_device(req.device)), batch_size=req.batch_size,
                                   compile=req.compile) for ref in req.models]
    same_data([fc.spec, *(o.spec for o in others)], [fc.ref, *(o.ref for o in others)])
    inputs = [prep] + [o.check(req.input, init_time=list(prep.init_times), var_map=var_map,
                               coords=parse_coords(req.coords)) for o in others]  # each model reads its own frames
    members = [f.predict(None, steps=n_steps, history=req.history, prepared=p, progress=progress)
               for f, p in zip((fc, *others), inputs, strict=True)]
    return with_members(members, Members(len(members), "models", models=[fc.ref, *(o.ref for o in others)]).describe())


def predict_file(req: PredictRequest, progress: Progress | None = None) -> dict[str, Any]:
    """Validate, forecast and write `req.output`; the report `svqcast predict` prints.

    With `req.check` only the validation runs and nothing is written.
    """
    var_map = _check_request(req)
    if req.members is not None:
        if req.members.kind == "models":
            req.members.models = [str(req.model), *req.models] if req.model is not None else list(req.models)
            if len(req.members.models) == 1 and ensemble_members(req.members.models[0]):  # a zoo ensemble entry
                req.members.models = ensemble_members(req.members.models[0])
                req.model, req.models = req.members.models[0], req.members.models[1:]
            req.members.count = len(req.members.models)
        req.members.check()
    t0 = time.perf_counter()
    fc = _load(req)
    n_steps = fc.resolve_steps(req.steps, req.lead_time)
    try:
        prep = fc.check(req.input, init_time=list(req.init_time) or None, var_map=var_map,
                        coords=parse_coords(req.coords))
    except MismatchError as exc:  # say first whose model this is, then what does not fit
        raise MismatchError(f"{_trained_on(fc, req.model)}; {exc}") from None
    if not req.check:
        latlon = fc.spec.dims[0] in ("lat", "latitude")
        check_layout(req.layout, latlon=latlon, calendar=prep.time_coord, n_init=len(prep.init_times),
                     fixed_step=step_unit(fc.spec) is None)
        if req.members is not None and output_format(Path(str(req.output))) == "npy":
            raise UsageError("`output` .npy holds bare frames, with no place for ensemble members; write .nc or .zarr")
        if latlon and output_format(Path(str(req.output))) == "npy":
            raise UsageError("`output` .npy holds bare frames without coordinates or times, which a latitude/"
                             "longitude forecast cannot do without; write .nc or .zarr")
    report: dict[str, Any] = {**prep.report(), "model": fc.ref, "steps": n_steps,
                              "autoregressive": n_steps > fc.t_out}
    if req.check:
        return report
    ds = _forecast(fc, req, prep, n_steps, var_map, progress)
    write_forecast(ds, str(req.output), overwrite=req.overwrite, layout=req.layout, inputs=[req.input])
    report.update(_written(ds, req, fc.variables, t0))
    return report


__all__ = ["PredictRequest", "lead_report", "predict_file", "refuse_repeated_init_times", "resolve_device"]
