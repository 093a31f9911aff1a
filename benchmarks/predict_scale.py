#!/usr/bin/env python
"""`svqcast predict --init-times` at scale: forecasts/s and peak RSS, 100 vs 1,000 initialisations,
Python API vs CLI, 1 rank vs 2 (torchrun), on the bundled model (issue 26, item 3).

Every row runs in its own process (so peak RSS is that row's): `api_N` a Python child calling
`svqcast.api.predict_many` (forecasts/s over the call), `cli_N` the `svqcast predict` command as a
user runs it (forecasts/s over the whole process: start-up, model load and validation included),
`torchrun2_N` the same command under `torchrun --nproc_per_node 2` (RSS: the largest rank). Rows
are interleaved, round r in order and round r+1 reversed. The input is the bundled March 2019
sample twice over (April = March shifted by 31 days): 1,464 hourly initialisations.

Usage: .venv/bin/python benchmarks/predict_scale.py [--rounds 1] [--out results/predict_scale.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_common import REPO, machine_info, save_json, spread  # noqa: E402

SVQCAST = Path(sys.executable).with_name("svqcast")
CHILD = """
import json, resource, sys, time
from svqcast.api import predict_many
t = time.perf_counter()
r = predict_many(sys.argv[1], sys.argv[2], sys.argv[3], batch_size=8, history="")
s = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": s, "computed": r["computed"], "rss_mib": rss}))
"""


def _input(folder: Path) -> Path:
    import numpy as np
    import xarray as xr

    sample = REPO / "svqcast" / "data" / "samples" / "era5_uk_t2m_2019-03.nc"
    with xr.open_dataset(sample) as ds:
        march = ds.load()
    april = march.assign_coords(time=march["time"].values + np.timedelta64(31 * 24, "h"))
    path = folder / "era5_uk_t2m_2019-03-04.nc"
    xr.concat([march, april], dim="time").to_netcdf(path)
    return path


def _span(n: int) -> str:
    start = dt.datetime(2019, 3, 2)
    return f"{start:%Y-%m-%dT%H}:{start + dt.timedelta(hours=n - 1):%Y-%m-%dT%H}:1h"


def _waited(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of the largest process of the tree, stdout) of a command."""
    import time

    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {err.read()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read()


def _row(kind: str, n: int, data: Path, out: Path) -> dict[str, Any]:
    env = {**os.environ, "NO_COLOR": "1"}
    store = out / f"{kind}_{n}.zarr"
    if kind == "api":
        _, _, stdout = _waited([sys.executable, "-c", CHILD, str(data), str(store), _span(n)], env)
        got = json.loads(stdout)
        return {"forecasts_per_second": n / got["seconds"], "seconds": got["seconds"], "rss_mib": got["rss_mib"]}
    cmd = [str(SVQCAST), "predict", str(data), "-o", str(store), "--init-times", _span(n), "--format", "json"]
    if kind == "torchrun2":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *cmd]
        env["OMP_NUM_THREADS"] = "1"
    wall, rss, stdout = _waited(cmd, env)
    report = json.loads(stdout)
    return {"forecasts_per_second": n / wall, "seconds": wall, "rss_mib": rss,
            "inner_forecasts_per_second": report["forecasts_per_second"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--rows", default="api_100,api_1000,cli_100,cli_1000,torchrun2_1000")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "predict_scale.json")
    args = ap.parse_args()
    rows = [(r.rpartition("_")[0], int(r.rpartition("_")[2])) for r in args.rows.split(",")]
    results: dict[str, list[dict[str, Any]]] = {f"{k}_{n}": [] for k, n in rows}
    with tempfile.TemporaryDirectory() as tmp:
        data = _input(Path(tmp))
        for r in range(args.rounds):
            for kind, n in rows if r % 2 == 0 else rows[::-1]:
                folder = Path(tmp) / f"r{r}"
                folder.mkdir(exist_ok=True)
                got = _row(kind, n, data, folder)
                print(f"round {r} {kind}_{n}: {got['forecasts_per_second']:.2f} forecasts/s, "
                      f"{got['rss_mib']:.0f} MiB", flush=True)
                results[f"{kind}_{n}"].append(got)
    summary = {name: {key: spread([v[key] for v in values]) for key in values[0]} for name, values in results.items()}
    med = {name: s["forecasts_per_second"]["median"] for name, s in summary.items()}
    rss = {name: s["rss_mib"]["median"] for name, s in summary.items()}
    ratios = {}
    if "cli_1000" in med and "api_1000" in med:
        ratios["cli_over_api_1000"] = med["cli_1000"] / med["api_1000"]
    if "api_1000" in rss and "api_100" in rss:
        ratios["rss_api_1000_over_100"] = rss["api_1000"] / rss["api_100"]
    if "cli_1000" in rss and "cli_100" in rss:
        ratios["rss_cli_1000_over_100"] = rss["cli_1000"] / rss["cli_100"]
    if "torchrun2_1000" in med and "cli_1000" in med:
        ratios["two_ranks_over_one_1000"] = med["torchrun2_1000"] / med["cli_1000"]
    save_json({"benchmark": "predict_scale", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "machine": {**machine_info(), "cpu_flags": _flags()}, "rounds": args.rounds, "rows": summary,
               "ratios": ratios, "targets": {"cli_over_api_1000": 0.9, "rss_1000_over_100": "about 1 (flat)"}},
              args.out)
    print(json.dumps(ratios, indent=1))


def _flags() -> list[str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("Flags:")), "")
    return line.split(":", 1)[1].split() if line else []


if __name__ == "__main__":
    main()
