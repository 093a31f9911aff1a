"""`svqcast evaluate --format netcdf`: a model's scores as a WeatherBench2-style results file.

The evaluation report is recast as the tables of `svqcast score` (one field per channel, a
channel cut from a variable on levels becoming its variable at its level) so that one writer,
`svqcast.verify.results_file`, lays out both: ``<variable>(metric, region, lead_time[, level])``
for the model, and ``<variable>_persistence`` etc. are not written (the JSON report has the
references; a results file holds one forecast, as WeatherBench2's do).
"""

from __future__ import annotations

from typing import Any

from svqcast.sources.forecast_files import parse_field
from svqcast.verify.regions import describe_regions


def _lead_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    steps = [int(v) for v in result["lead_times"]]
    secs = result.get("lead_time_seconds")
    labels = result.get("lead_labels") or [None] * len(steps)
    return [{"lead_time_seconds": None if secs is None else float(secs[k]), "lead_steps": steps[k],
             "lead": labels[k] or str(steps[k])} for k in range(len(steps))]


def _rows(per_metric: dict[str, Any], ci: dict[str, Any] | None, channel: str,
          leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for k, lead in enumerate(leads):
        row = {**lead, **{m: values[channel][k] for m, values in per_metric.items()}}
        if ci:
            row["ci"] = {m: bounds[channel][k] for m, bounds in ci.items()}
        rows.append(row)
    return rows


def evaluation_as_scores(result: dict[str, Any], forecast: str = "model") -> dict[str, Any]:
    """The `evaluate(..., per_lead_time=True)` report in `score_forecast`'s shape, for one forecast."""
    leads = _lead_rows(result)
    extra = list(result.get("regions") or {})
    variables: dict[str, Any] = {}
    for j, channel in enumerate(result["channels"]):
        var, level = parse_field(channel)
        ci = (result.get("per_lead_time_ci") or {}).get(forecast)
        tables = {"global": {"per_lead": _rows(result["per_lead_time"][forecast], ci, channel, leads)}}
        for region in extra:
            tables[region] = {"per_lead": _rows(result["regions"][region][forecast], None, channel, leads)}
        variables[channel] = {"variable": var, "level": level, "units": result["units"][j],
                              "per_lead": tables["global"]["per_lead"],
                              "overall": dict.fromkeys(result["per_lead_time"][forecast]), "regions": tables}
    return {"forecast": f"{result['ref']} ({forecast})", "truth": f"{result['dataset']}/{result['split']}",
            "weights": result.get("weights", ""), "regions": describe_regions(["global", *extra]),
            "confidence": result.get("confidence"), "init_times": int(result["samples"]), "first_init": "",
            "last_init": "", "variables": variables}


__all__ = ["evaluation_as_scores"]
