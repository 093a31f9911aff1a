"""Downloads: HTTP(S) with resume and verification, safe archive extraction, WeatherBench 2 zarr.

Hand-written on purpose: the upstream servers are plain HTTP(S) file hosts (no Hub), and no small
library does Range resume + sha256 + safe zip extraction together with svqcast's exit codes.

Every HTTP fetch streams into `<dest>.part`, resumes an existing `.part` with an HTTP Range
request, checks the size against Content-Length (and a known size), checks sha256 against
a known digest or the digest recorded in `<dest>.sha256` on the first download, and only
then renames atomically to `<dest>`. Archives are extracted into a temporary directory,
refusing members that would escape the target (`../`, absolute paths, links), flattening
the upstream top-level folder, and moved into place at the end: a corrupt archive leaves
nothing behind (DataError, exit 3). Network failures are NetworkError (exit 4) naming the
URL and the `--from PATH` alternative.

`--mirror URL` / `SVQCAST_MIRROR` replaces scheme://host of every upstream URL, keeping
the path and query: `https://dataserv.ub.tum.de/s/x?y` -> `<mirror>/s/x?y`.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from svqcast.constants import ENV_MIRROR
from svqcast.data.archives import extract_archive
from svqcast.data.catalog import WB2_HTTPS, get_entry
from svqcast.data.entry import DatasetEntry
from svqcast.errors import DataError, NetworkError, UsageError
from svqcast.fsutil import atomic_dir, check_interrupted, classify_write_error, sha256_file
from svqcast.progress import SILENT, Progress
from svqcast.sources.remote_zarr import load, open_zarr

CHUNK = 1 << 16


def check_mirror(mirror: str) -> str:
    """A mirror must be an http(s) URL with a host; anything else is a usage error (exit 2)."""
    parts = urllib.parse.urlsplit(mirror.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"`mirror` {mirror!r} (or ${ENV_MIRROR}): expected an http(s) URL such as "
                         "https://mirror.example.org")
    return mirror.strip()


def mirror_url(url: str, mirror: str | None = None) -> str:
    mirror = mirror if mirror is not None else os.environ.get(ENV_MIRROR) or None
    if not mirror:
        return url
    mirror = check_mirror(mirror)
    u = urllib.parse.urlsplit(url)
    rest = u.path + (f"?{u.query}" if u.query else "")
    return mirror.rstrip("/") + rest


def _network_error(url: str, why: str) -> NetworkError:
    return NetworkError(f"cannot download {url}: {why}; check the network or `mirror`, "
                        "or adopt files you already have with `from_path` PATH")


def _open(url: str, start: int = 0, method: str = "GET", timeout: float = 60.0) -> Any:
    req = urllib.request.Request(url, method=method, headers={"User-Agent": "svqcast"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:
            return exc  # range not satisfiable: the .part may already be complete
        raise _network_error(url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _network_error(url, f"unreachable ({getattr(exc, 'reason', exc)})") from None


def remote_size(url: str) -> int | None:
    """Content-Length from a HEAD request; None if unknown or unreachable (dry runs)."""
    try:
        with _open(url, method="HEAD", timeout=15) as resp:
            n = resp.headers.get("Content-Length")
            return int(n) if n is not None else None
    except NetworkError:
        return None


def download_file(url: str, dest: str | os.PathLike[str], *, sha256: str | None = None, size: int | None = None,
                  progress: Progress | None = None) -> Path:
    """Fetch `url` to `dest` with resume and verification (see module docstring)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    sidecar = dest.with_name(dest.name + ".sha256")
    known = sha256 or (sidecar.read_text().split()[0] if sidecar.is_file() else None)
    if dest.is_file() and known is not None:
        if sha256_file(dest) == known and (size is None or dest.stat().st_size == size):
            return dest  # already downloaded and verified: nothing to fetch
        dest.unlink()  # damaged since: fetch again
    start = part.stat().st_size if part.is_file() else 0
    resp = _open(url, start)
    sink = progress or SILENT
    total: int | None
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        if status == 416:
            total = start
            mode = "ab"
        else:
            if status == 206:
                m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", resp.headers.get("Content-Range", ""))
                if not m or int(m[1]) != start:
                    raise _network_error(url, "server answered the range request with a different range")
                total = int(m[2]) if m[2] != "*" else None
                mode = "ab"
            else:  # 200: the server ignored Range (or no .part): start over
                start = 0
                n = resp.headers.get("Content-Length")
                total = int(n) if n is not None else None
                mode = "wb"
            label = dest.name + (" (resuming)" if start else "")
            sink.begin(dest.name, total, label=label, done=start, unit="bytes")
            try:
                _stream(resp, part, mode, sink, url)
            finally:
                sink.end(dest.name)
    got = part.stat().st_size
    if total is not None and got != total:
        raise _network_error(url, f"got {got} of {total} bytes; run the command again to resume")
    if size is not None and got != size:
        part.unlink(missing_ok=True)
        raise DataError(f"{dest}: size {got} bytes, expected {size}; the upstream file changed or is corrupt")
    digest = sha256_file(part)
    if known is not None and digest != known:
        part.unlink(missing_ok=True)
        raise DataError(f"{dest}: sha256 {digest[:12]}... does not match the expected {known[:12]}...; "
                        "the download is corrupt (deleted), run again")
    os.replace(part, dest)
    if known is None:
        sidecar.write_text(f"{digest}  {dest.name}\n")
    return dest


def _stream(resp: Any, part: Path, mode: str, sink: Progress, url: str) -> None:
    """Copy the response into `.part`: a failed read is the network's fault (exit 4, resumable),
    a failed write the disk's (disk full, permissions: classified, never "network")."""
    with open(part, mode) as fh:
        while True:
            try:
                block = resp.read(CHUNK)
            except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
                raise _network_error(url, f"connection lost ({exc}); run the command again to resume") from None
            if not block:
                return
            try:
                fh.write(block)
            except OSError as exc:
                raise (classify_write_error(exc, part) or exc) from None
            sink.update(part.name.removesuffix(".part"), advance=len(block))


# ---- what to fetch for each dataset ---------------------------------------------------


@dataclass
class Item:
    """One upstream file: where from, where the archive goes, where it is extracted."""

    url: str
    archive: Path
    extract_to: Path
    keep: Callable[[str], bool] | None = None
    size: int | None = None
    sha256: str | None = None
    label: str = ""


@dataclass
class DownloadPlan:
    dataset: str
    source: str
    items: list[Item] = field(default_factory=list)
    wb2_url: str | None = None
    wb2_target: Path | None = None
    variables: list[str] = field(default_factory=list)
    years: tuple[int, int] | None = None


def parse_years(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{4})\s*(?::\s*(\d{4}))?\s*", text)
    if not m:
        raise UsageError(f"`years` {text!r}: use A:B, e.g. 2010:2018, or a single year")
    a, b = int(m[1]), int(m[2] or m[1])
    if b < a:
        raise UsageError(f"`years` {text!r}: the end year is before the start year")
    return a, b


def default_years(entry: DatasetEntry) -> tuple[int, int] | None:
    years = entry.select.get("years")
    if not years:
        return None
    return min(v[0] for v in years.values()), max(v[1] for v in years.values())


def _year_filter(years: tuple[int, int] | None) -> Callable[[str], bool] | None:
    if years is None:
        return None

    def keep(rel: str) -> bool:
        m = re.search(r"_(\d{4})_", PurePosixPath(rel).name)
        return m is None or years[0] <= int(m[1]) <= years[1]

    return keep


def plan_download(name: str, root: Path, *, variables: Iterable[str] | None = None,
                  years: tuple[int, int] | None = None,
                  source: str | None = None, mirror: str | None = None) -> DownloadPlan:
    """What `svqcast download` fetches. `source`: WeatherBench tum (default) | wb2; KTH
    openstl (jpg frames, default) | kth (the original .avi zips); others: the upstream."""
    if name == WEATHERBENCH_GROUP:
        if source not in (None, "", "tum"):
            raise UsageError("download weatherbench fetches the TUM netCDF zips; for `source` wb2 name a dataset, "
                             "e.g. weatherbench-m")
        return plan_weatherbench(root, variables=variables, years=years, mirror=mirror)
    entry = get_entry(name)
    if entry.embedded:
        raise UsageError(f"{name} is embedded in svqcast: nothing to download (it is prepared on first use)")
    base = root / name
    raw = base / "raw"
    dl = base / "downloads"
    plan = DownloadPlan(dataset=name, source=source or "")
    if name.startswith("weatherbench"):
        folders = sorted({v.folder for v in entry.variables})
        wanted = [w.strip() for v in (variables or []) for w in v.split(",") if w.strip()]  # repeat or commas
        if wanted:
            known = {v.folder for v in entry.variables} | {v.name for v in entry.variables}
            unknown = [w for w in wanted if w not in known]
            if unknown:
                raise UsageError(f"`variables` {', '.join(unknown)} not in {name}: choose from "
                                 f"{', '.join(sorted(known))}")
            folders = sorted({v.folder for v in entry.variables if v.folder in wanted or v.name in wanted})
        plan.variables = folders
        plan.years = years or default_years(entry)
        source = source or "tum"
        plan.source = source
        if source == "wb2":
            if entry.subsample_step % 6:
                raise UsageError(f"WeatherBench 2's 64x32 ERA5 store is 6-hourly; {name} needs hourly data: "
                                 "use `source` tum")
            plan.wb2_url = mirror_url(WB2_HTTPS, mirror)
            plan.wb2_target = raw / "wb2.zarr"
            return plan
        if source != "tum":
            raise UsageError(f"`source` {source!r}: use tum or wb2")
        for url, folder in zip(entry.urls, folders_in_url_order(entry), strict=False):
            if folder not in folders:
                continue
            plan.items.append(Item(url=mirror_url(url, mirror), archive=dl / f"{folder}_5.625deg.zip",
                                   extract_to=raw / folder, keep=_year_filter(plan.years), label=folder))
        return plan
    if variables or years:
        raise UsageError(f"`variables` and `years` apply to WeatherBench datasets only, not {name}")
    choices = entry.extra.get("sources", {})
    if choices:
        source = entry.extra["default_source"] if source in (None, "", "default") else source
        if source not in choices:
            raise UsageError(f"`source` {source!r} for {name}: choose one of {', '.join(choices)}")
        urls = list(choices[source])
    elif source not in (None, "", "default", "upstream"):
        raise UsageError(f"`source` {source!r} applies to WeatherBench datasets (tum, wb2) and kth (openstl, kth)")
    else:
        urls = list(entry.urls)
    plan.source = source or "upstream"
    for url in urls:
        fname = PurePosixPath(urllib.parse.urlsplit(url).path).name or f"{name}.bin"
        sub = {"kitti_data.zip": "kitti", "data_and_labels.zip": "caltech"}.get(fname, "")
        plan.items.append(Item(url=mirror_url(url, mirror), archive=dl / fname, extract_to=raw / sub if sub else raw,
                               label=fname))
    return plan


WEATHERBENCH_GROUP = "weatherbench"  # every 5.625 deg variable WeatherBench-S and -M use
WEATHERBENCH_DATASETS = ("weatherbench-s-t2m", "weatherbench-s-r", "weatherbench-s-uv10", "weatherbench-s-tcc",
                         "weatherbench-m")


def plan_weatherbench(root: Path, *, variables: Iterable[str] | None = None, years: tuple[int, int] | None = None,
                      mirror: str | None = None) -> DownloadPlan:
    """`svqcast download weatherbench`: each variable's zip once, into ROOT/weatherbench/raw/<folder>,
    where `prepare weatherbench-s-* / -m` also look (the catalog names stay as they are)."""
    folders: dict[str, tuple[str, list[str], tuple[int, int]]] = {}  # folder -> (url, names, years)
    for name in WEATHERBENCH_DATASETS:
        entry = get_entry(name)
        y = default_years(entry) or (1979, 2018)
        for url, folder in zip(entry.urls, folders_in_url_order(entry), strict=False):
            names = [v.name for v in entry.variables if v.folder == folder]
            _, had, yrs = folders.get(folder, (url, [], y))
            folders[folder] = (url, sorted(set(had + names)), (min(yrs[0], y[0]), max(yrs[1], y[1])))
    wanted = [w.strip() for v in (variables or []) for w in v.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in folders and not any(w in n for _, n, _ in folders.values())]
    if unknown:
        known = sorted(set(folders) | {n for _, ns, _ in folders.values() for n in ns})
        raise UsageError(f"`variables` {', '.join(unknown)}: not a WeatherBench-S/M variable; "
                         f"choose from {', '.join(known)}")
    base = root / WEATHERBENCH_GROUP
    plan = DownloadPlan(dataset=WEATHERBENCH_GROUP, source="tum", years=years)
    for folder, (url, names, yrs) in sorted(folders.items()):
        if wanted and folder not in wanted and not set(wanted) & set(names):
            continue
        plan.variables.append(folder)
        plan.items.append(Item(url=mirror_url(url, mirror), archive=base / "downloads" / f"{folder}_5.625deg.zip",
                               extract_to=base / "raw" / folder, keep=_year_filter(years or yrs), label=folder))
    return plan


def folders_in_url_order(entry: DatasetEntry) -> list[str]:
    out = []
    for url in entry.urls:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        if "path" in q:
            out.append(q["path"][0].rsplit("/", 1)[-1])
    return out


def run_plan(plan: DownloadPlan, *, progress: Progress | None = None) -> list[Path]:
    """Execute a plan: fetch (resuming), verify, extract, clean up the archive."""
    done: list[Path] = []
    if plan.wb2_url is not None:
        assert plan.wb2_target is not None
        fetch_wb2(plan, plan.wb2_url, plan.wb2_target)
        return [plan.wb2_target]
    for item in plan.items:
        path = download_file(item.url, item.archive, sha256=item.sha256, size=item.size, progress=progress)
        try:
            done += extract_archive(path, item.extract_to, keep=item.keep)
        except DataError:
            # a corrupt archive is useless: remove it (and its recorded digest) so a rerun refetches
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".sha256").unlink(missing_ok=True)
            raise
    return done


def adopt(name: str, root: Path, from_path: str | os.PathLike[str], *, years: tuple[int, int] | None = None,
          variables: Iterable[str] | None = None) -> list[Path]:
    """`--from PATH`: use files the user already has (an upstream archive or a folder)."""
    entry = get_entry(name)
    src = Path(from_path).expanduser()
    if not src.exists():
        raise UsageError(f"`from_path` {src}: no such file or folder")
    if not (src.is_file() or src.is_dir()):
        raise DataError(f"`from_path` {src}: not an archive or a folder (a device, FIFO or socket); "
                        "give the downloaded .zip/.tar or the folder holding the files")
    raw = root / name / "raw"
    if src.is_file():
        if name.startswith("weatherbench"):
            folder = _folder_for_archive(entry, src)
            return extract_archive(src, raw / folder, keep=_year_filter(years or default_years(entry)))
        return extract_archive(src, raw)
    out = []
    wanted = set(variables or [])
    with atomic_dir(root / name / ".adopt", overwrite=True) as tmp:
        for f in sorted(src.rglob("*")):
            if f.is_file():
                rel = f.relative_to(src)
                if wanted and name.startswith("weatherbench") and rel.parts[0] not in wanted:
                    continue
                keep = _year_filter(years or default_years(entry)) if name.startswith("weatherbench") else None
                if keep is not None and not keep(str(rel)):
                    continue
                check_interrupted()
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dst)
                out.append(raw / rel)
        if not out:
            raise DataError(f"`from_path` {src}: no files to adopt (empty folder, or nothing matches "
                            "`years`/`variables`)")
    staged = root / name / ".adopt"
    for f in sorted(staged.rglob("*")):
        if f.is_file():
            dst = raw / f.relative_to(staged)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, dst)
    shutil.rmtree(staged, ignore_errors=True)
    return out


def _folder_for_archive(entry: DatasetEntry, archive: Path) -> str:
    for v in entry.variables:
        if archive.name.startswith(v.folder):
            return v.folder
    raise UsageError(f"`from_path` {archive}: cannot tell which variable this archive holds; "
                     f"name it like {entry.variables[0].folder}_5.625deg.zip")


# ---- WeatherBench 2 -------------------------------------------------------------------


def fetch_wb2(plan: DownloadPlan, base_url: str, target: Path, block: int = 1464) -> Path:
    """Copy the selected variables/levels/years of WB2's zarr (read lazily over HTTPS with
    xarray + zarr + fsspec) into a local zarr store (`raw/wb2.zarr`) in the same layout,
    `block` time steps at a time (1,464 six-hourly steps = one leap year), so memory stays
    small; each block's chunks are fetched concurrently."""

    entry = get_entry(plan.dataset)
    remote = open_zarr(base_url)
    sub = _wb2_selection(remote, entry, plan, base_url)
    n = sub.sizes["time"]
    with atomic_dir(target, overwrite=True) as tmp:
        for a in range(0, n, block):
            part = load(base_url, sub.isel(time=slice(a, a + block)))
            if a == 0:
                enc = {v: {"chunks": tuple(block if d == "time" else part.sizes[d] for d in part[v].dims)}
                       for v in part.data_vars}
                part.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True, encoding=enc)
            else:
                part.to_zarr(tmp, mode="a", append_dim="time", zarr_format=2, consolidated=True)
    return target


def _wb2_selection(remote: Any, entry: DatasetEntry, plan: DownloadPlan, base_url: str) -> Any:
    """The lazy sub-dataset `fetch_wb2` copies: variables, pressure levels and years."""

    times = remote["time"].values.astype("datetime64[ns]")
    y0, y1 = plan.years or default_years(entry) or (1979, 2018)
    start, stop = np.datetime64(f"{y0}-01-01", "ns"), np.datetime64(f"{y1 + 1}-01-01", "ns")
    sel = np.flatnonzero((times >= start) & (times < stop))
    if sel.size == 0:
        raise DataError(f"{base_url}: no time steps in {y0}-{y1}")
    names = sorted({v.wb2_name or v.folder for v in entry.variables if v.folder in plan.variables})
    missing = [v for v in names if v not in remote.data_vars]
    if missing:
        have = ", ".join(map(str, remote.data_vars))
        raise DataError(f"{base_url}: variables {missing} not in the store (has: {have})")
    sub = remote[names].isel(time=slice(int(sel[0]), int(sel[-1]) + 1))
    keep = sorted({int(v.level) for v in entry.variables if v.folder in plan.variables and v.level is not None})
    if keep:
        levels = [int(x) for x in remote["level"].values] if "level" in remote.coords else []
        if any(lv not in levels for lv in keep):
            absent = [lv for lv in keep if lv not in levels]
            raise DataError(f"{base_url}: levels {absent} hPa not in the store's levels {levels}")
        sub = sub.sel(level=keep)
    for name in names:
        if sub[name].dims[0] != "time":
            raise DataError(f"{base_url}/{name}: time must be the first dimension, got {list(sub[name].dims)}")
    return sub.drop_vars([c for c in sub.coords if c not in sub.dims])
