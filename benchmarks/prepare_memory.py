#!/usr/bin/env python
"""Peak memory and throughput of `svqcast prepare PATH --name NAME` on large generated inputs.

The claim under test (issue "Your own data"): preparation streams the input block by block,
so its peak resident memory stays under 1.5 GB however large the input is. Two inputs of
different sizes (default 1 GB and 4 GB of float32 hourly fields, 256 x 512, in one netCDF
file written block by block) are prepared by the real CLI in a fresh child process each.

Why it is measured this way:

* **VmHWM of the child, polled.** The child's /proc/PID/status VmHWM (the high-water mark of
  its resident set, reset by exec) is read every 50 ms until it exits; being monotonic, the
  last reading is the peak. ru_maxrss is not used: Linux carries it over from the parent.
* **Throughput** is input bytes / wall seconds of the whole command (read, validate, write
  three split stores, statistics, sha256 of every store file, manifest).
* The generated inputs and stores are deleted afterwards (`--keep` keeps them).

Usage: .venv/bin/python benchmarks/prepare_memory.py [--sizes 1 4] [--workdir DIR] [--out results/prepare_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

H, W = 256, 512
FRAME_BYTES = H * W * 4


def generate(path: Path, gigabytes: float, block: int = 64, zlib: bool = False) -> int:
    """A hourly netCDF of about `gigabytes` GB (float32 t2m, in memory), written `block` frames at
    a time; `zlib` compresses it (level 1, as many archives do)."""
    import netCDF4

    n = int(gigabytes * 1e9 // FRAME_BYTES)
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(89.5, -89.5, H), np.linspace(0, 360, W, endpoint=False)
    base = (250 + 40 * np.cos(np.deg2rad(lat)))[:, None].astype(np.float32)
    with netCDF4.Dataset(path, "w") as nc:
        for name, size in (("time", n), ("lat", H), ("lon", W)):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "i8", ("time",))
        t.units, t.calendar = "hours since 2000-01-01 00:00:00", "standard"
        t[:] = np.arange(n)
        for name, values, unit in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            v = nc.createVariable(name, "f8", (name,))
            v.units, v[:] = unit, values
        var = nc.createVariable("t2m", "f4", ("time", "lat", "lon"), chunksizes=(block, H, W), zlib=zlib,
                                complevel=1)
        var.units = "K"
        noise = rng.normal(0, 1, (block, H, W)).astype(np.float32)
        for a in range(0, n, block):
            b = min(n, a + block)
            var[a:b] = base[None] + np.roll(noise, a % W, axis=2)[: b - a]
    return n


def peak_rss_of(cmd: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    """(exit code, wall seconds, peak RSS bytes) of `cmd` run as a child."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.05)
    _, err = proc.communicate()
    if proc.returncode:
        sys.stderr.write(err.decode(errors="replace"))
    return proc.returncode, time.perf_counter() - t0, peak


def run_size(gb: float, work: Path, keep: bool) -> dict[str, object]:
    src = work / f"input_{gb:g}GB.nc"
    root = work / f"root_{gb:g}"
    t0 = time.perf_counter()
    frames = generate(src, gb)
    gen_s = time.perf_counter() - t0
    size = src.stat().st_size
    cmd = [sys.executable, "-c", "from svqcast.cli.main import run; run()", "prepare", str(src), "--name",
           "bench", "--root", str(root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    code, secs, peak = peak_rss_of(cmd, env)
    store = sum(p.stat().st_size for p in (root / "bench" / "prepared").glob("*")) if code == 0 else 0
    if not keep:
        src.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    return {"input_gb": round(size / 1e9, 3), "frames": frames, "grid": [H, W], "exit_code": code,
            "wall_s": round(secs, 1), "peak_rss_gb": round(peak / 1e9, 3),
            "throughput_mb_s": round(size / 1e6 / secs, 1), "store_gb": round(store / 1e9, 3),
            "generate_s": round(gen_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1.0, 4.0], help="input sizes in GB")
    ap.add_argument("--workdir", type=Path, default=Path("bench-prepare-tmp"))
    ap.add_argument("--out", type=Path, default=Path("results/prepare_memory.json"))
    ap.add_argument("--keep", action="store_true", help="keep the generated inputs and stores")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for gb in args.sizes:
            rows.append(run_size(gb, args.workdir, args.keep))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu_count": os.cpu_count(), "runs": rows}, indent=2) + "\n")
    print("| input | frames (256x512) | wall | throughput | peak RSS |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['input_gb']} GB | {r['frames']} | {r['wall_s']} s | {r['throughput_mb_s']} MB/s "
              f"| {r['peak_rss_gb']} GB |")


if __name__ == "__main__":
    main()
