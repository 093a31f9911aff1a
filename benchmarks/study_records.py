"""The study's JSON file (results/study.json): load, merge with what another invocation saved
meanwhile (under a file lock), atomic save; the run records, their reruns and the machine time."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from study_design import REPO

SCHEMA = "svqcast-study/2"


def empty_results() -> dict[str, Any]:
    return {"schema": SCHEMA, "created": utc_now(), "updated": utc_now(), "machine": machine_info(),
            "settings": {}, "sessions": [], "runs": [], "references": {}, "units": {}}


def load_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return empty_results()
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise SystemExit(f"{path}: schema {data.get('schema')!r}, expected {SCHEMA!r}; move it away to start over")
    return data


def save_results(data: Mapping[str, Any], path: Path) -> None:
    """Atomic, and safe to share: two invocations (two sessions, or one per dataset) may write
    the same file. Under an exclusive lock, the runs, sessions and references already on disk
    that this invocation does not hold are merged in first (runs are only ever added), then the
    file is replaced in one rename, so a study interrupted mid-write keeps the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if isinstance(data, dict):
            merge_from_disk(data, path)
        payload = {**data, "updated": utc_now()}
        if isinstance(data, dict):
            data["updated"] = payload["updated"]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=1, sort_keys=False, default=json_default)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock on a sidecar file (never on the JSON itself, which is replaced)."""
    import fcntl

    with open(path.with_name(f".{path.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _session_key(session: Mapping[str, Any]) -> tuple[Any, Any]:
    return session.get("start"), session.get("pid")


def merge_from_disk(data: dict[str, Any], path: Path) -> None:
    """Add to `data` what another invocation saved in `path` meanwhile: runs this one does not
    hold (a finished run wins over a failed one), other sessions, references and units."""
    if not path.exists():
        return
    try:
        disk = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # unreadable: the atomic replace below restores a complete file
    if disk.get("schema") != SCHEMA:
        return
    superseded = {_record_key(r): r for r in [*disk.get("superseded", []), *data.get("superseded", [])]}
    if superseded:
        data["superseded"] = sorted(superseded.values(), key=lambda r: (r["run_id"], r.get("finished") or ""))
    # a record replaced by a rerun (here or in another invocation) never comes back
    ours = {r["run_id"]: r for r in data.setdefault("runs", []) if _record_key(r) not in superseded}
    for run in disk.get("runs", []):
        if _record_key(run) in superseded:
            continue
        mine = ours.get(run["run_id"])
        if mine is None or (mine.get("status") != "ok" and run.get("status") == "ok"):
            ours[run["run_id"]] = run
    data["runs"] = list(ours.values())
    # sessions only grow: keep the longest record of each (another invocation's copy of a running
    # session is stale once that session saves again), updated in place so a live one stays live
    mine_by_key = {_session_key(s): s for s in data.setdefault("sessions", [])}
    for s in disk.get("sessions", []):
        held = mine_by_key.get(_session_key(s))
        if held is None:
            data["sessions"].append(s)
        elif float(s.get("wall_seconds") or 0.0) > float(held.get("wall_seconds") or 0.0):
            held.update(s)
    data["sessions"].sort(key=lambda s: s.get("start") or "")
    data["wall_seconds"] = machine_seconds(data["sessions"])
    for ds, refs in (disk.get("references") or {}).items():
        for name, scores in refs.items():
            data.setdefault("references", {}).setdefault(ds, {}).setdefault(name, scores)
    for ds, units in (disk.get("units") or {}).items():
        data.setdefault("units", {}).setdefault(ds, units)


def _record_key(record: Mapping[str, Any]) -> tuple[str, str]:
    """One run record: a rerun keeps the run_id, so its finish time tells the two apart."""
    return record["run_id"], str(record.get("finished"))


def supersede(data: dict[str, Any], record: dict[str, Any], reason: str) -> None:
    """Put a rerun's `record` in place of the run it redoes; the old record moves, whole, to
    `data["superseded"]` (its curve, scores and cost stay on file, out of the comparisons)."""
    record["rerun_reason"] = reason
    for old in data["runs"]:
        if old["run_id"] == record["run_id"] and old.get("status") == "ok" and old is not record:
            data.setdefault("superseded", []).append({**old, "superseded_reason": reason,
                                                      "superseded_by_finished": record.get("finished")})
    put_run(data, record)


def put_run(data: dict[str, Any], record: dict[str, Any]) -> None:
    """`record` becomes the one record of its run_id in `data["runs"]`."""
    data["runs"] = [r for r in data["runs"] if r["run_id"] != record["run_id"]] + [record]


def machine_seconds(sessions: Iterable[Mapping[str, Any]]) -> float:
    """Machine time of the study: the length of the union of the sessions' wall-clock
    intervals, so that two invocations running side by side are not counted twice. A session
    without a parsable start counts its whole wall time."""
    spans: list[tuple[float, float]] = []
    loose = 0.0
    for s in sessions:
        wall = float(s.get("wall_seconds") or 0.0)
        try:
            start = dt.datetime.fromisoformat(str(s.get("start"))).timestamp()
        except ValueError:
            loose += wall
            continue
        spans.append((start, start + wall))
    total, end = 0.0, -math.inf
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return loose + total


def done_on_disk(path: Path, rerun: str | None = None) -> set[str]:
    """The finished runs in `path` now (another invocation may have added some)."""
    with contextlib.suppress(OSError, ValueError):
        disk = json.loads(path.read_text())
        if disk.get("schema") == SCHEMA:
            return done_ids(disk, rerun)
    return set()


def json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def done_ids(data: Mapping[str, Any], rerun: str | None = None) -> set[str]:
    """Finished runs; with `rerun`, only those already redone for that reason (see `--rerun`)."""
    return {r["run_id"] for r in data.get("runs", [])
            if r.get("status") == "ok" and (rerun is None or r.get("rerun_reason") == rerun)}


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
                            "platform": platform.platform()}
    with contextlib.suppress(Exception):
        import torch

        info["torch"] = torch.__version__
    with contextlib.suppress(Exception):
        import svqcast

        info["svqcast"] = svqcast.__version__
    with contextlib.suppress(Exception):
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    return info
