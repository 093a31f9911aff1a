#!/usr/bin/env python
"""Preparation throughput and peak memory on one process, on dask workers and in parts.

One generated input of at least 4 GB (hourly float32 fields, 256 x 512, one netCDF file: the
generator of benchmarks/prepare_memory.py) is prepared by the real CLI, each way in fresh child
processes, in the same run:

* `single`: `svqcast prepare FILE --name bench` (dask's synchronous scheduler, one process);
* `workers-1`, `workers-2`: `--workers N`, a local dask cluster of N one-thread processes;
* `parts-3`: `--parts 1/3`, `2/3`, `3/3` one after another (as three batch jobs would run on
  three machines; here they share two cores), then `--finalise`;
* `baseline`: with `--baseline-src DIR` (the `svqcast` package of an earlier version, e.g.
  `git archive v0.2 svqcast | tar -x -C DIR`), that version's one-process `prepare` on the same
  input, in the same run (its store format differs, so it is left out of the identity check).

`--zlib` writes the input compressed (zlib level 1), where decoding the input dominates: then
the one-process path is bound by one core and workers share the decoding.

Peak RSS is the largest sum of the resident sets of the command's whole process tree (the
dask workers included), polled every 50 ms with psutil. Throughput is input bytes / wall
seconds; CPU is the user + system seconds of the command's processes (dask workers included,
as far as they were waited for). Every way must produce the same store: the manifests' digests
are compared.

Usage: .venv/bin/python benchmarks/prepare_scale.py [--gb 4] [--workdir DIR] [--out results/prepare_scale.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_memory import generate  # noqa: E402 (the one input generator of the prepare benchmarks)
from speed_common import machine_info  # noqa: E402

CLI = [sys.executable, "-c", "from svqcast.cli.main import run; run()"]


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed(args: list[str], src: Path | None = None) -> dict[str, Any]:
    """Wall seconds and peak tree RSS of `svqcast ARGS` (the package in `src` first on the path when
    given); fails loudly on a non-zero exit."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"PYTHONPATH": str(src)} if src else {})}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # `python -c` puts the working directory first on the path: run from the one whose package is meant
    proc = subprocess.Popen([*CLI, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=str(src) if src else None)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.05)
    _, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"svqcast {' '.join(args)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the tree's processes, once waited for
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(cpu, 1), "peak_rss_gb": round(peak / 1e9, 3)}


def digests(root: Path) -> dict[str, str]:
    files = json.loads((root / "bench" / "prepared" / "manifest.json").read_text())["files"]
    return {k: v["sha256"] for k, v in files.items()}


def run_way(way: str, src: Path, work: Path, baseline: Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    root = work / f"root-{way}"
    base = ["prepare", str(src), "--name", "bench", "--root", str(root)]
    if way == "single":
        row = timed(base)
    elif way == "baseline":
        row = timed(base, baseline)
    elif way.startswith("workers-"):
        row = timed([*base, "--workers", way.split("-")[1]])
    else:
        n = int(way.split("-")[1])
        steps = [timed([*base, "--parts", f"{i}/{n}"]) for i in range(1, n + 1)]
        steps.append(timed(["prepare", "--finalise", "bench", "--root", str(root)]))
        row = {"wall_s": round(sum(s["wall_s"] for s in steps), 2), "cpu_s": round(sum(s["cpu_s"] for s in steps), 1),
               "peak_rss_gb": max(s["peak_rss_gb"] for s in steps),
               "part_wall_s": [s["wall_s"] for s in steps[:-1]], "finalise_wall_s": steps[-1]["wall_s"]}
    store = sum(p.stat().st_size for p in (root / "bench" / "prepared").rglob("*") if p.is_file())
    out = digests(root) if way != "baseline" else {}
    shutil.rmtree(root, ignore_errors=True)
    return {"way": way, **row, "store_gb": round(store / 1e9, 3)}, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=4.0, help="input size in GB (the issue asks for >= 4)")
    ap.add_argument("--ways", nargs="+", default=["single", "workers-1", "workers-2", "parts-3"])
    ap.add_argument("--workdir", type=Path, default=Path("bench-prepare-scale-tmp"))
    ap.add_argument("--zlib", action="store_true", help="compress the generated input (zlib level 1)")
    ap.add_argument("--baseline-src", type=Path, help="a directory holding an earlier version's svqcast package")
    ap.add_argument("--out", type=Path, default=Path("results/prepare_scale.json"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / "input.nc"
    try:
        t0 = time.perf_counter()
        frames = generate(src, args.gb, zlib=args.zlib)
        size = src.stat().st_size
        gen_s = round(time.perf_counter() - t0, 1)
        rows, prints = [], []
        for way in args.ways:
            if way == "baseline" and args.baseline_src is None:
                raise SystemExit("way `baseline` needs --baseline-src DIR")
            row, dig = run_way(way, src, args.workdir, args.baseline_src)
            row["throughput_mb_s"] = round(size / 1e6 / row["wall_s"], 1)
            rows.append(row)
            if dig:
                prints.append(dig)
            print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)
    base = rows[0]["wall_s"]
    for r in rows:
        r["speedup_vs_single"] = round(base / r["wall_s"], 3)
    result = {"machine": machine_info(), "input_gb": round(size / 1e9, 3), "input_zlib": args.zlib,
              "frames": frames, "grid": [256, 512],
              "generate_s": gen_s, "identical_stores": all(p == prints[0] for p in prints), "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| way | wall | CPU | throughput | vs single | peak RSS (tree) | store |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['way']} | {r['wall_s']} s | {r['cpu_s']} s | {r['throughput_mb_s']} MB/s | "
              f"{r['speedup_vs_single']}x | {r['peak_rss_gb']} GB | {r['store_gb']} GB |")


if __name__ == "__main__":
    main()
