"""`svqcast datasets list|info`, `svqcast download`, `svqcast prepare` (logic: svqcast.data)."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from svqcast.cli.groups import datasets_app
from svqcast.cli.options import (
    DatasetNameArg,
    DownloadDatasetArg,
    DryRunOpt,
    FormatOpt,
    FromOpt,
    MirrorOpt,
    RootOpt,
    SourceOpt,
    VariablesOpt,
    VerifyOpt,
    YearsOpt,
    cli_message,
)
from svqcast.cli.output import OutputFormat, emit, log, out_console
from svqcast.cli.prepare_cmds import prepare_cmd
from svqcast.cli.progress import reporter
from svqcast.errors import UsageError


def _render_list(rows: list[dict[str, Any]]) -> None:
    table = Table(box=None, pad_edge=False)
    for col in ("name", "kind", "channels", "grid", "step", "frames", "source"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["kind"], str(len(r["channel_names"])), f"{r['shape'][0]}x{r['shape'][1]}",
                      _step(r["time_step_seconds"], r["extra"].get("time_step")), f"{r['t_in']}->{r['t_out']}",
                      "user" if r.get("user") else ("embedded" if r["embedded"] else "download"))
    out_console.print(table)


def _step(seconds: float | None, label: str | None = None) -> str:
    if label:  # a user dataset's step as inferred (calendar steps have no fixed length)
        return label
    if seconds is None:
        return "-"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{seconds:g} s"


def _render_info(d: dict[str, Any]) -> None:
    p = out_console.print
    p(Text.assemble((str(d["name"]), "bold"), f": {d['title']}"))
    p(f"  kind         {d['kind']}")
    p("  variables    " + ", ".join(f"{v['name']}{v['level'] or ''} ({v['long_name']}, {v['units']})"
                                     for v in d["variables"]))
    p(f"  grid         {d['grid']} ({d['shape'][0]} x {d['shape'][1]}, dims {d['dims'][0]}/{d['dims'][1]})")
    p(f"  time step    {_step(d['time_step_seconds'], d['extra'].get('time_step'))}"
      + (" (calendar)" if d["extra"].get("calendar_step") else ""))
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
    if d.get("user"):
        _render_user(d)
    if d.get("verified"):
        p(f"  verified     every file of {d['verified']} matches its manifest (sha256)")


def _render_user(d: dict[str, Any]) -> None:
    """Provenance and statistics of a dataset prepared from the user's own files."""
    p = out_console.print
    extra = d["extra"]
    if extra.get("lat_order"):
        p(f"  grid order   latitude {extra['lat_order']}, longitude {extra['lon_convention']} (kept in forecasts)")
    for path, info in extra.get("source_files", {}).items():
        digest = f"sha256 {info['sha256']}" if info.get("sha256") else "sha256 not computed (large file)"
        size = f": {info['bytes']} bytes, {digest}" if "bytes" in info else " (remote)"
        p(f"  input        {path}{size}")
    stats = d.get("stats")
    if stats:
        for ch, m, sd in zip(stats["channels"], stats["mean"], stats["std"], strict=True):
            p(f"  stats        {ch}: mean {m:.6g}, std {sd:.6g} (training split)")


@datasets_app.command("list")
def list_cmd(root: RootOpt = None, fmt: FormatOpt = OutputFormat.text) -> None:
    """List the paper datasets, the embedded real samples and your own prepared datasets (source: user).

    Example: svqcast datasets list --format json
    """
    from svqcast.data import list_datasets
    from svqcast.data.catalog import malformed_user_entries

    for line in malformed_user_entries(root):  # one bad entry spoils only itself
        log(f"note: skipped {cli_message(line)}")
    emit(list_datasets(root), fmt, _render_list)


@datasets_app.command("info")
def info_cmd(name: DatasetNameArg, root: RootOpt = None, verify: VerifyOpt = False,
             fmt: FormatOpt = OutputFormat.text) -> None:
    """Variables, units, grid, time step, frames, splits, source, size, citation and licence;
    for your own datasets also the input files (size, sha256) and the training statistics.

    Example: svqcast datasets info era5-uk-t2m --verify
    """
    from svqcast.data import dataset_info

    info = dataset_info(name, root)
    if verify:
        from svqcast.data.storedir import is_prepared, prepared_dir
        from svqcast.data.storedir import verify as verify_store

        store = prepared_dir(name, root)
        if not is_prepared(store):
            raise UsageError(f"--verify: {name} is not prepared in {store.parent}; run `svqcast prepare` first")
        verify_store(store, deep=True)
        info["verified"] = str(store)
    emit(info, fmt, _render_info)


def download_cmd(
    dataset: DownloadDatasetArg,
    root: RootOpt = None,
    variables: VariablesOpt = None,
    years: YearsOpt = None,
    source: SourceOpt = None,
    from_path: FromOpt = None,
    mirror: MirrorOpt = None,
    dry_run: DryRunOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Download a dataset (resumable, verified) into ROOT/DATASET/raw.

    Example: svqcast download weatherbench-s-t2m --years 2010:2018
    Example: svqcast download weatherbench --variables t2m,r --dry-run
    """
    from svqcast.data import downloads as sources
    from svqcast.data.storedir import root_dir
    from svqcast.fsutil import check_output

    base = root_dir(root)
    yrs = sources.parse_years(years)
    if mirror is not None:
        sources.check_mirror(mirror)
    check_output(base, overwrite=True, kind="dir")  # a file, a FIFO, /proc, a read-only mount: exit 2
    if from_path is not None:
        files = sources.adopt(dataset, base, from_path, years=yrs, variables=variables)
        report = {"dataset": dataset, "adopted_from": str(from_path), "files": len(files),
                  "raw": str(base / dataset / "raw")}
        emit(report, fmt, lambda r: log(f"adopted {r['files']} files from {r['adopted_from']} into {r['raw']}"))
        return
    plan = sources.plan_download(dataset, base, variables=variables, years=yrs, source=source, mirror=mirror)
    if dry_run:
        rows: list[dict[str, Any]] = []
        if plan.wb2_url:
            rows.append({"url": plan.wb2_url, "to": str(plan.wb2_target), "bytes": None,
                         "note": f"zarr: {', '.join(plan.variables)} for {plan.years}"})
        for it in plan.items:
            rows.append({"url": it.url, "to": str(it.extract_to), "bytes": sources.remote_size(it.url),
                         "note": it.label})
        report = {"dataset": dataset, "dry_run": True, "years": plan.years, "fetch": rows}

        def text(r: dict[str, Any]) -> None:
            for row in r["fetch"]:
                size = f"{row['bytes']:,} bytes" if row["bytes"] is not None else "size unknown"
                out_console.print(f"{row['url']}\n  -> {row['to']} ({size})", soft_wrap=True)

        emit(report, fmt, text)
        return
    with reporter(fmt, transient=False) as progress:
        files = sources.run_plan(plan, progress=progress)
    then = "weatherbench-s-t2m (or -s-r, -s-uv10, -s-tcc, -m)" if dataset == sources.WEATHERBENCH_GROUP else dataset
    report = {"dataset": dataset, "files": len(files), "raw": str(base / dataset / "raw"),
              "next": f"svqcast prepare {then}" + (f" --root {root}" if root else "")}
    emit(report, fmt, lambda r: log(f"downloaded {r['files']} files into {r['raw']}; next: {r['next']}"))


def register(app: typer.Typer) -> None:
    """Add `download` and `prepare` to the root app (`datasets list|info` live on datasets_app)."""
    app.command("download")(download_cmd)
    app.command("prepare")(prepare_cmd)
