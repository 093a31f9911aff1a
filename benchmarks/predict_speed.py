#!/usr/bin/env python
"""Forecast throughput of the bundled model: 96 initialisations x 24 h, per-init vs batched.

Rows, interleaved in one process (round r runs them in order, round r+1 reversed):

* `api_per_init`: one `Forecaster.predict(ds, init_time=t, lead_time="24h")` call per
  initialisation (one forecast per network call): the path of a caller that loops.
* `api_batch8`: one call for all 96 initialisations at batch 8, default layout: what
  `svqcast predict` did before `--batch-size` (its Forecaster default).
* `api_batchN`: the same at `--batch-size` N for each N of `--batch-sizes`.
* `cli_batch8` / `cli_default`: `svqcast predict SAMPLE -o OUT.nc --lead-time 24h
  --init-time ... (96 times)` as a user runs it, one process per call (start-up, model
  load with sha256 check, input validation, netCDF write included), with `--batch-size 8`
  (the old behaviour) and with the default.
* with `--compile`: `api_compiled`, the first call (compilation) timed separately.

Forecasts/s = initialisations / seconds per call. Writes results/predict_speed.json; the
reference "today's CLI" figure (7.5 forecasts/s, 24 init times x 12 h, results/throughput.json)
is quoted next to it.

Usage: .venv/bin/python benchmarks/predict_speed.py [--rounds 3] [--threads 2] [--compile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_common import REPO, machine_info, save_json, spread  # noqa: E402

DEFAULT_OUT = REPO / "results" / "predict_speed.json"
REFERENCE_CLI = 7.5  # forecasts/s of `svqcast predict` with 24 --init-time (results/throughput.json)
TARGET_SPEEDUP = 5.0


def _sample() -> Path:
    import svqcast.data.samples as samples

    return Path(samples.__file__).resolve().parent / "era5_uk_t2m_2019-03.nc"


def _inits(n: int) -> list[str]:
    import numpy as np
    import xarray as xr

    with xr.open_dataset(_sample()) as ds:
        return [np.datetime_as_string(t, unit="s") for t in ds["time"].values[-n:]]


def api_rows(inits: list[str], batch_sizes: list[int], compile_: bool) -> dict[str, Callable[[], int]]:
    import xarray as xr

    import svqcast
    from svqcast.models.fastpath import configure_forecaster

    ds = xr.open_dataset(_sample()).load()

    def make(batch: int, compiled: bool = False) -> Callable[[], int]:
        fc = configure_forecaster(svqcast.load_model(), batch_size=batch, compile=compiled)
        return lambda: int(fc.predict(ds, lead_time="24h", init_time=inits).sizes["time"])

    per_init = svqcast.load_model()
    rows: dict[str, Callable[[], int]] = {
        "api_per_init": lambda: sum(int(per_init.predict(ds, lead_time="24h", init_time=[t]).sizes["time"])
                                    for t in inits),
        "api_batch8": make(8),
    }
    for b in batch_sizes:
        if b != 8:
            rows[f"api_batch{b}"] = make(b)
    if compile_:
        rows["api_compiled"] = make(max(batch_sizes), compiled=True)
    return rows


def cli_rows(inits: list[str], tmp: Path, threads: int) -> dict[str, Callable[[], int]]:
    exe = Path(sys.executable).with_name("svqcast")
    base = [str(exe) if exe.exists() else "svqcast", "predict", str(_sample()), "--lead-time", "24h",
            "--overwrite", *[a for t in inits for a in ("--init-time", t)]]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def make(extra: list[str], name: str) -> Callable[[], int]:
        def run() -> int:
            target = tmp / f"{name}.nc"
            proc = subprocess.run([*base, "-o", str(target), *extra], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise RuntimeError(f"svqcast predict failed ({proc.returncode}): {proc.stderr[-600:]}")
            return len(inits)
        return run

    return {"cli_batch8": make(["--batch-size", "8"], "b8"), "cli_default": make([], "default")}


def measure(rows: dict[str, Callable[[], int]], rounds: int) -> dict[str, Any]:
    first: dict[str, float] = {}
    for name, fn in rows.items():  # warm-up (and compilation) outside the rounds
        t0 = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t0
        print(f"first call {name}: {first[name]:.2f} s", flush=True)
    per_round: list[dict[str, float]] = []
    names = list(rows)
    for r in range(rounds):
        row: dict[str, float] = {}
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            n = rows[name]()
            row[name] = n / (time.perf_counter() - t0)
            print(f"round {r + 1}/{rounds} {name}: {row[name]:.2f} forecasts/s", flush=True)
        per_round.append(row)
    fps = {n: spread([row[n] for row in per_round]) for n in names}
    ratios = {f"{n}/{base}": spread([row[n] / row[base] for row in per_round])
              for base in ("api_per_init", "api_batch8", "cli_batch8") if base in names
              for n in names if n != base and n.split("_")[0] == base.split("_")[0]}
    return {"first_call_seconds": first, "per_round": per_round, "forecasts_per_s": fps, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-init", type=int, default=96)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32, 96])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time a torch.compile'd network")
    p.add_argument("--no-cli", action="store_true", help="skip the svqcast predict subprocess rows")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    info, started = machine_info(), dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    inits = _inits(args.n_init)
    with tempfile.TemporaryDirectory() as tmp:
        rows = api_rows(inits, args.batch_sizes, args.compile)
        if not args.no_cli:
            rows.update(cli_rows(inits, Path(tmp), args.threads))
        res = measure(rows, args.rounds)
    fps = res["forecasts_per_s"]
    best_cli = fps.get("cli_default", {}).get("median")
    data = {"schema": "svqcast-predict-speed/1", "started": started, "machine": info,
            "load_average_end": list(os.getloadavg()), "argv": sys.argv[1:], "n_init": len(inits),
            "lead_time": "24h", "threads": args.threads, "reference_cli_forecasts_per_s": REFERENCE_CLI,
            "target_speedup": TARGET_SPEEDUP, **res,
            "cli_default_vs_reference": None if best_cli is None else best_cli / REFERENCE_CLI}
    save_json(data, args.out)
    print(json.dumps({k: v["median"] for k, v in fps.items()}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
