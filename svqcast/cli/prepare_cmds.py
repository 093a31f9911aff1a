"""`svqcast prepare`: a catalog dataset or the user's own data -> one zarr store, whole or in
parts, on one process or a dask cluster (docs/data.md, docs/own-data.md, docs/scale.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from svqcast.cli.options import (
    AllowCutsOpt,
    AllowMissingOpt,
    CoordsOpt,
    FinaliseOpt,
    ForceOpt,
    FormatOpt,
    LevelOpt,
    LevelsOpt,
    MaskKeepOpt,
    MaskOpt,
    NameOpt,
    OfficialOpt,
    OptionalDatasetArg,
    PartsOpt,
    ResizeOpt,
    RootOpt,
    SchedulerOpt,
    SplitOpt,
    SplitYearsOpt,
    TimeStepOpt,
    TInOpt,
    TOutOpt,
    VariablesOpt,
    WorkersOpt,
)
from svqcast.cli.output import OutputFormat, emit, log, out_console
from svqcast.cli.progress import reporter
from svqcast.errors import UsageError
from svqcast.progress import Progress


def prepare_cmd(
    dataset: OptionalDatasetArg = None,
    name: NameOpt = None,
    root: RootOpt = None,
    official_validation: OfficialOpt = False,
    force: ForceOpt = False,
    years: SplitYearsOpt = None,
    variables: VariablesOpt = None,
    level: LevelOpt = None,
    t_in: TInOpt = None,
    t_out: TOutOpt = None,
    time_step: TimeStepOpt = None,
    split: SplitOpt = None,
    coords: CoordsOpt = None,
    resize: ResizeOpt = None,
    allow_cuts: AllowCutsOpt = False,
    levels: LevelsOpt = None,
    mask: MaskOpt = None,
    mask_keep: MaskKeepOpt = "nonzero",
    allow_missing: AllowMissingOpt = False,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    parts: PartsOpt = None,
    finalise: FinaliseOpt = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Prepare a catalog dataset, or your own file as dataset NAME: one zarr store (splits are time
    ranges of it), stats.json (training split) and a manifest; your own data is registered in the
    data root's user catalog (docs/own-data.md). Large inputs run on dask (--workers, --scheduler)
    or as batch jobs (--parts I/N, then --finalise NAME): docs/scale.md.

    Example: svqcast prepare weatherbench-s-t2m --root /data
    Example: svqcast prepare my_t2m.nc --name my-t2m --t-in 12 --t-out 12
    Example: svqcast prepare era5_pl.nc --name my-pl --levels 500,850 --variables t,z,t2m
    Example: svqcast prepare sst.mnmean.nc --name sst --time-step 1M   (land, NaN in every step, is masked)
    Example: svqcast prepare 'era5/*.nc' --name era5 --workers 4
    Example: svqcast prepare 'era5/*.nc' --name era5 --parts 2/3   (then: svqcast prepare --finalise era5)
    """
    from svqcast.data.dask_run import Scheduler
    from svqcast.data.parts import parse_parts

    sched = Scheduler(workers=workers, address=scheduler).check()
    if finalise is not None:
        if dataset is not None or parts is not None:
            raise UsageError("--finalise NAME merges parts already written: give no DATASET and no --parts with it")
        return _finalise(finalise, root, fmt)
    if dataset is None:
        raise UsageError("missing DATASET: a catalog name or your own file (or --finalise NAME)")
    part = parse_parts(parts) if parts is not None else None
    with reporter(fmt) as progress:
        target, dataset = _prepare(dataset, name, root, official_validation, force, years,
                                   {"variables": variables, "level": level, "t_in": t_in, "t_out": t_out,
                                    "time_step": time_step, "split": split, "coords": coords, "resize": resize,
                                    "allow_cuts": allow_cuts, "levels": levels, "mask": mask,
                                    "mask_keep": mask_keep, "allow_missing": allow_missing},
                                   sched, part, progress)
    if part is not None:
        report = {"dataset": dataset, "part": list(part), "path": str(target),
                  "next": f"svqcast prepare --finalise {dataset}" + (f" --root {root}" if root else "")}
        emit(report, fmt, lambda r: out_console.print(
            f"{r['path']}: part {r['part'][0]}/{r['part'][1]} written; when every part is: {r['next']}"))
        return
    _report(dataset, target, fmt)


def _prepare(dataset: str, name: str | None, root: Path | None, official_validation: bool, force: bool,
             years: list[str] | None, own: dict[str, Any], sched: Any, part: tuple[int, int] | None,
             progress: Progress) -> tuple[Path, str]:
    """(the store directory, or the part's directory; the dataset name)."""
    from svqcast.data.catalog import CATALOG
    from svqcast.data.prepare import parse_split_years, prepare
    from svqcast.sources.formats import looks_like_path

    if name is not None or (dataset not in CATALOG and looks_like_path(dataset)):
        return _prepare_own(dataset, name, root, official_validation, years, force, own, sched, part,
                            progress), str(name)
    given = [k for k in ("variables", "level", "t_in", "t_out", "time_step", "split", "coords", "resize",
                         "levels", "mask") if own[k] is not None] + [k for k in ("allow_cuts", "allow_missing")
                                                                    if own[k]]
    if given:
        raise UsageError("--variables, --level(s), --t-in, --t-out, --time-step, --split, --coords, --resize, "
                         "--mask, --allow-cuts and --allow-missing apply to your own data "
                         "(svqcast prepare PATH --name NAME)")
    select = parse_split_years(dataset, years, official_validation) if years else None
    return prepare(dataset, root, official_validation=official_validation, force=force, select=select, log=log,
                   scheduler=sched, parts=part, progress=progress), dataset


def _prepare_own(path: str, name: str | None, root: Path | None, official_validation: bool,
                 years: list[str] | None, force: bool, own: dict[str, Any], sched: Any,
                 part: tuple[int, int] | None, progress: Progress) -> Path:
    from svqcast.data.userprep import prepare_path
    from svqcast.sources.coords import parse_coords

    if name is None:
        raise UsageError(f"{path}: preparing your own data needs a dataset name: add --name NAME")
    if official_validation or years:
        raise UsageError("--official-validation and --years apply to catalog datasets; use --split for your own data")
    variables = own["variables"]
    wanted = [w.strip() for v in (variables or []) for w in v.split(",") if w.strip()] or None
    return prepare_path(path, name, root=root, variables=wanted, level=own["level"], t_in=own["t_in"],
                        t_out=own["t_out"], time_step=own["time_step"], splits=own["split"], force=force, log=log,
                        progress=progress, coords=parse_coords(own["coords"]), resize=_parse_size(own["resize"]),
                        allow_cuts=own["allow_cuts"], levels=_parse_levels(own["levels"]), mask=own["mask"],
                        mask_keep=own["mask_keep"], allow_missing=own["allow_missing"], scheduler=sched, parts=part)


def _finalise(name: str, root: Path | None, fmt: OutputFormat) -> None:
    from svqcast.data.userprep import finalise_parts

    target = finalise_parts(name, root, log=log)
    _report(name, target, fmt)


def _report(dataset: str, target: Path, fmt: OutputFormat) -> None:
    from svqcast.data.storedir import MANIFEST, read_json

    manifest = read_json(target / MANIFEST)
    files = manifest["files"]
    report = {"dataset": dataset, "path": str(target), "frames": manifest["frames"],
              "files": {k: v["sha256"] for k, v in files.items() if "/" not in k},
              "store_files": sum(1 for k in files if "/" in k),
              "store_bytes": sum(int(v["bytes"]) for k, v in files.items() if "/" in k)}
    emit(report, fmt, lambda r: out_console.print(
        f"{r['path']}: " + ", ".join(f"{k} {v} frames" for k, v in r["frames"].items())))


def _parse_levels(text: str | None) -> list[float] | str | None:
    """`--levels 500,850` -> [500.0, 850.0]; `--levels all` -> "all"."""
    if text is None:
        return None
    if text.strip().lower() == "all":
        return "all"
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"--levels {text!r}: give level values separated by commas (500,850) or all") from None
    if not values:
        raise UsageError("--levels: give at least one level, or all")
    return values


def _parse_size(text: str | None) -> tuple[int, int] | None:
    """`--resize 136x320` -> (136, 320)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if m is None or int(m[1]) < 1 or int(m[2]) < 1:
        raise UsageError(f"--resize {text!r}: give HxW, e.g. 136x320")
    return int(m[1]), int(m[2])


__all__ = ["prepare_cmd"]
