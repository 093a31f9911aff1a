"""`svqcast datasets list|info`, `svqcast download`, `svqcast prepare` (logic: svqcast.data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from svqcast.cli.groups import datasets_app
from svqcast.cli.options import FormatOpt
from svqcast.cli.output import OutputFormat, emit, err_console, log, out_console

RootOpt = Annotated[
    Optional[Path],
    typer.Option("--root", help="Data root (default: $SVQCAST_DATA_DIR or ~/.local/share/svqcast/datasets)."),
]


class RichProgress:
    """A Rich progress bar on stderr: bytes, speed and ETA (svqcast.data.sources.ProgressSink)."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._task: Any = None

    def start(self, name: str, total: int | None, done: int) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                             TimeRemainingColumn(), console=err_console, transient=False)
        self._bar.start()
        self._task = self._bar.add_task(name + (" (resuming)" if done else ""), total=total, completed=done)

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _render_list(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("name", "kind", "channels", "grid", "step", "frames", "source"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], str(len(r["channel_names"])), f"{r['shape'][0]}x{r['shape'][1]}",
                      _step(r["time_step_seconds"]), f"{r['t_in']}->{r['t_out']}",
                      "embedded" if r["embedded"] else "download")
    out_console.print(table)


def _step(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def _render_info(d: dict[str, Any]) -> None:
    p = out_console.print
    p(f"[bold]{d['name']}[/bold]: {d['title']}")
    p(f"  kind         {d['kind']}")
    p("  variables    " + ", ".join(f"{v['name']}{v['level'] or ''} ({v['long_name']}, {v['units']})"
                                     for v in d["variables"]))
    p(f"  grid         {d['grid']} ({d['shape'][0]} x {d['shape'][1]}, dims {d['dims'][0]}/{d['dims'][1]})")
    p(f"  time step    {_step(d['time_step_seconds'])}")
    p(f"  frames       {d['t_in']} in -> {d['t_out']} out; idx_in {d['idx_in']}, idx_out {d['idx_out']}")
    p(f"  normalise    {d['normalisation']}" + (f", values in {d['clip_range']}" if d["clip_range"] else ""))
    p("  splits       " + "; ".join(f"{k}: {v}" for k, v in d["splits"].items()))
    p("  official     " + "; ".join(f"{k}: {v}" for k, v in d["official_splits"].items()))
    p(f"  source       {d['source']}")
    for u in d["urls"]:
        p(f"               {u}")
    p(f"  size         {d['size']}")
    p(f"  citation     {d['citation']}")
    p(f"  licence      {d['licence']}")
    for n in d["notes"]:
        p(f"  note         {n}")


@datasets_app.command("list")
def list_cmd(fmt: FormatOpt = OutputFormat.text) -> None:
    """List the paper datasets and the embedded real samples.

    Example: svqcast datasets list --format json
    """
    from svqcast.data import list_datasets

    emit(list_datasets(), fmt, _render_list)


@datasets_app.command("info")
def info_cmd(name: Annotated[str, typer.Argument(help="Dataset name, e.g. weatherbench-s-t2m.")],
             fmt: FormatOpt = OutputFormat.text) -> None:
    """Variables, units, grid, time step, frames, splits, source, size, citation and licence.

    Example: svqcast datasets info era5-uk-t2m
    """
    from svqcast.data import dataset_info

    emit(dataset_info(name), fmt, _render_info)


def download_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name (see `svqcast datasets list`).")],
    root: RootOpt = None,
    variables: Annotated[Optional[list[str]], typer.Option(
        "--variables", help="WeatherBench variables (folder or short names), repeatable or comma-separated; default: all.")] = None,
    years: Annotated[Optional[str], typer.Option("--years", help="Year range A:B (WeatherBench), e.g. 2010:2018.")] = None,
    source: Annotated[Optional[str], typer.Option(
        "--source", help="WeatherBench: tum (netCDF zips, default) or wb2 (WeatherBench 2 zarr); "
                         "KTH: openstl (jpg frames, default) or kth (original .avi zips).")] = None,
    from_path: Annotated[Optional[Path], typer.Option("--from", help="Adopt a local archive or folder instead of downloading.")] = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", help="Replace the upstream scheme://host (env SVQCAST_MIRROR).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would be fetched and its size; fetch nothing.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Download a dataset (resumable, verified) into ROOT/DATASET/raw.

    Example: svqcast download weatherbench-s-t2m --years 2010:2018
    """
    from svqcast.data import sources
    from svqcast.data.prepare import root_dir

    base = root_dir(root)
    yrs = sources.parse_years(years)
    if from_path is not None:
        files = sources.adopt(dataset, base, from_path, years=yrs, variables=variables)
        report = {"dataset": dataset, "adopted_from": str(from_path), "files": len(files), "raw": str(base / dataset / "raw")}
        emit(report, fmt, lambda r: log(f"adopted {r['files']} files from {r['adopted_from']} into {r['raw']}"))
        return
    plan = sources.plan_download(dataset, base, variables=variables, years=yrs, source=source, mirror=mirror)
    if dry_run:
        rows = []
        if plan.wb2_url:
            rows.append({"url": plan.wb2_url, "to": str(plan.wb2_target), "bytes": None,
                         "note": f"zarr: {', '.join(plan.variables)} for {plan.years}"})
        for it in plan.items:
            rows.append({"url": it.url, "to": str(it.extract_to), "bytes": sources.remote_size(it.url), "note": it.label})
        report = {"dataset": dataset, "dry_run": True, "years": plan.years, "fetch": rows}

        def text(r: dict[str, Any]) -> None:
            for row in r["fetch"]:
                size = f"{row['bytes']:,} bytes" if row["bytes"] is not None else "size unknown"
                out_console.print(f"{row['url']}\n  -> {row['to']} ({size})", soft_wrap=True)

        emit(report, fmt, text)
        return
    files = sources.run_plan(plan, progress=RichProgress())
    report = {"dataset": dataset, "files": len(files), "raw": str(base / dataset / "raw"),
              "next": f"svqcast prepare {dataset}" + (f" --root {root}" if root else "")}
    emit(report, fmt, lambda r: log(f"downloaded {r['files']} files into {r['raw']}; next: {r['next']}"))


def prepare_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name (see `svqcast datasets list`).")],
    root: RootOpt = None,
    official_validation: Annotated[bool, typer.Option(
        "--official-validation", help="Official split: no held-out validation, val = test (OpenSTL behaviour).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if a prepared store exists.")] = False,
    years: Annotated[Optional[list[str]], typer.Option(
        "--years", help="WeatherBench: replace a split's years, SPLIT=A:B (repeatable), e.g. --years test=2018:2018.",
        metavar="SPLIT=A:B")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Write the standard store (netCDF per split), stats.json (training split) and a manifest.

    Example: svqcast prepare weatherbench-s-t2m --root /data
    """
    from svqcast.data.prepare import MANIFEST, parse_split_years, prepare, read_json

    select = parse_split_years(dataset, years, official_validation) if years else None
    target = prepare(dataset, root, official_validation=official_validation, force=force, select=select, log=log)
    manifest = read_json(target / MANIFEST)
    report = {"dataset": dataset, "path": str(target), "frames": manifest["frames"],
              "files": {k: v["sha256"] for k, v in manifest["files"].items()}}
    emit(report, fmt, lambda r: out_console.print(
        f"{r['path']}: " + ", ".join(f"{k} {v} frames" for k, v in r["frames"].items())))


def register(app: typer.Typer) -> None:
    """Add `download` and `prepare` to the root app (`datasets list|info` live on datasets_app)."""
    app.command("download")(download_cmd)
    app.command("prepare")(prepare_cmd)
