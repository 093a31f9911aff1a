"""`svqcast score`: parsing and printing only (the scoring is svqcast.verify.scoring)."""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

import typer

from svqcast.cli.options import (
    ClimatologyOpt,
    CoordsOpt,
    ForecastFileArg,
    OverwriteOpt,
    PlotOpt,
    ScoreVariablesOpt,
    TableFormat,
    TableFormatOpt,
    TruthOpt,
)
from svqcast.cli.output import emit, log, out_console
from svqcast.cli.progress import reporter

_COLUMNS = ("rmse", "mae", "bias", "acc")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _print_text(r: dict[str, Any]) -> None:
    out_console.print(f"{r['forecast']} vs {r['truth']}: {r['init_times']} initialisations "
                      f"({r['first_init']} .. {r['last_init']}); {r['layout']} layout; weights: {r['weights']}")
    for var, v in r["variables"].items():
        cols = [c for c in _COLUMNS if c in v["overall"]]
        out_console.print(f"\n{var} [{v['units'] or '-'}] (truth: {v['truth_variable']})")
        out_console.print("  lead        " + "".join(f"{c:>10}" for c in cols) + f"{'persist. rmse':>15}{'n':>6}")
        pers = v["references"]["persistence"]
        for row, prow in zip(v["per_lead"] + [v["overall"]], pers["per_lead"] + [pers["overall"]], strict=True):
            lead = "+" + row["lead"] if "lead" in row else "overall"
            out_console.print(f"  {lead:<12}" + "".join(f"{_fmt(row.get(c)):>10}" for c in cols)
                              + f"{_fmt(prow.get('rmse')):>15}{row['n']:>6}")
    for note in r["notes"]:
        out_console.print(f"note: {note}")


def csv_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (variable, forecast or reference, lead time), plus an `overall` row each."""
    rows = []
    for var, v in r["variables"].items():
        for name, table in (("forecast", v), ("persistence", v["references"]["persistence"])):
            for row in table["per_lead"] + [{**table["overall"], "lead_time": "overall"}]:
                rows.append({"variable": var, "reference": name, "lead_time": row.get("lead_time"),
                             "lead_time_seconds": row.get("lead_time_seconds"), "lead": row.get("lead", "overall"),
                             **{c: row.get(c) for c in _COLUMNS}, "n": row["n"]})
    return rows


def _print_csv(r: dict[str, Any]) -> None:
    rows = csv_rows(r)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    sys.stdout.write(buf.getvalue())


def _score(
    forecast: ForecastFileArg,
    truth: TruthOpt,
    climatology: ClimatologyOpt = None,
    variables: ScoreVariablesOpt = None,
    fmt: TableFormatOpt = TableFormat.text,
    plot: PlotOpt = None,
    overwrite: OverwriteOpt = False,
    coords: CoordsOpt = None,
) -> None:
    """Score a forecast file against observations, matched by valid time over all initialisations.

    Latitude-weighted RMSE, MAE, bias (and ACC with --climatology) per lead time and overall,
    with persistence (the truth at the initialisation) as a reference; OpenSTL image metrics
    for frame data. A truth grid larger than the forecast's is cut to it; missing valid times
    are counted and reported.

    Example: svqcast score forecast.nc --truth era5.nc --format json
    """
    from svqcast.sources.coords import parse_coords
    from svqcast.verify.figures import check_plot_target, plot_scores
    from svqcast.verify.scoring import score_forecast

    if plot is not None:
        check_plot_target(plot, overwrite=overwrite, inputs=[forecast, truth])
    with reporter("json" if fmt != TableFormat.text else "text") as progress:
        result = score_forecast(forecast, truth, climatology=climatology, variables=variables or None,
                                progress=progress, coords=parse_coords(coords))
    if plot is not None:
        plot_scores(result, plot, overwrite=overwrite)
        result["plot"] = str(plot)
        if fmt == TableFormat.text:
            log(f"wrote {plot}")
    if fmt == TableFormat.csv:
        for note in result["notes"]:  # CSV holds the table only: the notes (leads without truth) go to stderr
            log(f"note: {note}")
        _print_csv(result)
    else:
        emit(result, fmt.value, _print_text)


def register(app: typer.Typer) -> None:
    """Add `score` to the root app."""
    app.command("score")(_score)
