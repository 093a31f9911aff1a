"""`svqcast score`: parsing and printing only (the scoring is svqcast.verify.scoring)."""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

import typer

from svqcast.cli.options import (
    BootstrapOpt,
    BootstrapSeedOpt,
    ClimatologyOpt,
    CoordsOpt,
    ForecastFileArg,
    FssScalesOpt,
    OverwriteOpt,
    PlotOpt,
    RegionOpt,
    ResultsOutputOpt,
    ScoreFormat,
    ScoreFormatOpt,
    ScoreVariablesOpt,
    ThresholdsOpt,
    TruthOpt,
)
from svqcast.cli.output import emit, log, out_console, print_event_scores
from svqcast.cli.progress import reporter
from svqcast.errors import UsageError

_COLUMNS = ("rmse", "mae", "bias", "acc")
_ENSEMBLE = ("crps", "spread", "spread_skill")  # ensemble files: the mean's scores, then these


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _ci(row: dict[str, Any]) -> str:
    bounds = (row.get("ci") or {}).get("rmse")
    return "-" if not bounds else f"{bounds[0]:.4g}..{bounds[1]:.4g}"


def _print_text(r: dict[str, Any]) -> None:
    out_console.print(f"{r['forecast']} vs {r['truth']}: {r['init_times']} initialisations "
                      f"({r['first_init']} .. {r['last_init']}); {r['layout']} layout; weights: {r['weights']}")
    if r.get("confidence"):
        c = r["confidence"]
        out_console.print(f"rmse ci: {c['level']:.0%} {c['method']} ({c['resamples']} resamples, seed {c['seed']})")
    for var, v in r["variables"].items():
        for region, table in v["regions"].items():
            _print_field(var, v, region, table, v["references"]["persistence"]["regions"][region])
        if v.get("ensemble"):
            _print_ranks(var, v["ensemble"])
        if v.get("events"):
            print_event_scores(var, {"forecast": v["events"], "persistence": v["references"]["persistence"]["events"]})
    for note in r["notes"]:
        out_console.print(f"note: {note}")


def _print_field(var: str, v: dict[str, Any], region: str, table: dict[str, Any], pers: dict[str, Any]) -> None:
    cols = [c for c in _COLUMNS if c in table["overall"]]
    if "ensemble" in v:
        cols += list(_ENSEMBLE)
    where = "" if region == "global" else f", {region}"
    members = f", ensemble of {v['ensemble']['members']}: rmse/mae/bias of its mean" if "ensemble" in v else ""
    out_console.print(f"\n{var} [{v['units'] or '-'}] (truth: {v['truth_variable']}{where}{members})")
    shown = {"spread_skill": "spr/skill"}
    out_console.print("  lead        " + "".join(f"{shown.get(c, c):>10}" for c in cols) + f"{'rmse ci':>20}"
                      + f"{'persist. rmse':>15}{'n':>6}")
    for row, prow in zip(table["per_lead"] + [table["overall"]], pers["per_lead"] + [pers["overall"]], strict=True):
        lead = "+" + row["lead"] if "lead" in row else "overall"
        out_console.print(f"  {lead:<12}" + "".join(f"{_fmt(row.get(c)):>10}" for c in cols) + f"{_ci(row):>20}"
                          + f"{_fmt(prow.get('rmse')):>15}{row['n']:>6}")


def _print_ranks(var: str, ens: dict[str, Any]) -> None:
    hist = ens["rank_histogram"]
    out_console.print(f"{var}: rank histogram of the truth among {ens['members']} members (p: chi-square flatness)")
    for j, (counts, p) in enumerate(zip(hist["counts"], hist["p_value"], strict=True)):
        out_console.print(f"  +{j + 1:<3} " + " ".join(f"{c:>5}" for c in counts) + f"   p {_fmt(p)}")


def csv_rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (variable, forecast or reference, lead time), plus an `overall` row each."""
    rows = []
    for var, v in r["variables"].items():
        for name, field_tables in (("forecast", v), ("persistence", v["references"]["persistence"])):
            for region, table in field_tables["regions"].items():
                for row in table["per_lead"] + [{**table["overall"], "lead_time": "overall"}]:
                    ci = row.get("ci") or {}
                    rows.append({"variable": var, "level": v["level"], "region": region, "reference": name,
                                 "lead_time": row.get("lead_time"), "lead_time_seconds": row.get("lead_time_seconds"),
                                 "lead": row.get("lead", "overall"), **{c: row.get(c) for c in _COLUMNS + _ENSEMBLE},
                                 **{f"{c}_ci_lower": (ci.get(c) or [None, None])[0] for c in _COLUMNS},
                                 **{f"{c}_ci_upper": (ci.get(c) or [None, None])[1] for c in _COLUMNS},
                                 "n": row["n"]})
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
    fmt: ScoreFormatOpt = ScoreFormat.text,
    output: ResultsOutputOpt = None,
    region: RegionOpt = None,
    bootstrap: BootstrapOpt = 1000,
    seed: BootstrapSeedOpt = 0,
    thresholds: ThresholdsOpt = None,
    fss_scales: FssScalesOpt = None,
    plot: PlotOpt = None,
    overwrite: OverwriteOpt = False,
    coords: CoordsOpt = None,
) -> None:
    """Score a forecast file against observations, matched by valid time over all initialisations.

    Latitude-weighted RMSE, MAE, bias (and ACC with --climatology) per variable and level, lead
    time and region, each with a bootstrap confidence interval, and persistence (the truth at
    the initialisation) as a reference; wind speed and wind-vector error when both wind
    components are forecast; OpenSTL image metrics for frame data. Cells missing in forecast or
    truth (land, radar coverage) are left out. A variable that cannot be scored is named.

    Examples: svqcast score forecast.nc --truth era5.nc --format json
              svqcast score wb2.zarr --truth era5.zarr --variables geopotential@500 --region europe,tropics
              svqcast score wb2.zarr --truth era5.zarr --region all --format netcdf -o results.nc
              svqcast score nowcast.nc --truth radar.nc --thresholds 0.1mm/h,1mm/h --fss-scales 1,5,15
    """
    from svqcast.sources.coords import parse_coords
    from svqcast.verify.figures import check_plot_target, plot_scores
    from svqcast.verify.results_file import write_results
    from svqcast.verify.scoring import score_forecast

    if (fmt == ScoreFormat.netcdf) != (output is not None):
        raise UsageError("--format netcdf writes its results file to --output (and --output needs --format netcdf)")
    if output is not None:
        from svqcast.fsutil import check_output

        check_output(output, overwrite=overwrite, inputs=[forecast, truth])
    if plot is not None:
        check_plot_target(plot, overwrite=overwrite, inputs=[forecast, truth])
    wanted = [p.strip() for text in (variables or []) for p in text.split(",") if p.strip()]
    with reporter("json" if fmt == ScoreFormat.json else "text") as progress:
        result = score_forecast(forecast, truth, climatology=climatology, variables=wanted or None,
                                progress=progress, coords=parse_coords(coords), regions=region,
                                bootstrap=bootstrap, seed=seed, thresholds=thresholds, fss_scales=fss_scales)
    if plot is not None:
        plot_scores(result, plot, overwrite=overwrite)
        result["plot"] = str(plot)
        if fmt == ScoreFormat.text:
            log(f"wrote {plot}")
    if output is not None:
        write_results(result, output, overwrite=overwrite, inputs=(forecast, truth))
        _print_text(result)
        log(f"wrote {output}")
    elif fmt == ScoreFormat.csv:
        for note in result["notes"]:  # CSV holds the table only: the notes (leads without truth) go to stderr
            log(f"note: {note}")
        _print_csv(result)
    else:
        emit(result, fmt.value, _print_text)


def register(app: typer.Typer) -> None:
    """Add `score` to the root app."""
    app.command("score")(_score)
