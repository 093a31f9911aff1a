"""Shared measuring helpers for svq_bench.py and quantizer_bench.py (docs/reference/official-behaviour.md §9 method).

* Timing: variants of one comparison run in the same process, round-robin (A B C, then
  C B A, ...); a fast call is repeated a few times back to back within a round and the
  block's median kept. We report the median over rounds, and ratios as the median of the
  per-round ratios with their [min, max].
* Peak memory: a fresh child process per configuration builds its module and input, reads
  VmRSS, resets VmHWM through /proc/self/clear_refs, runs fwd+bwd twice and reports
  VmHWM - RSS-after-construction. (ru_maxrss is inherited across execve, so not used.)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def proc_status(key: str) -> int:
    """A /proc/self/status field in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def machine() -> dict[str, Any]:
    cpu = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    with open("/proc/meminfo") as fh:
        total = int(fh.readline().split()[1]) * 1024
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
        "mem_total_gb": round(total / 1e9, 1),
        "mem_available_gb": round(mem_available() / 1e9, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_start": os.getloadavg(),
    }


def time_block(fn: Callable[[], Any], reps: int) -> float:
    """Median seconds of `reps` back-to-back calls."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def round_robin(
    variants: dict[str, Callable[[], Any]], rounds: int, reps: dict[str, int]
) -> dict[str, list[float]]:
    """Per-variant list of per-round block medians; order alternates every round."""
    names = list(variants)
    for name in names:  # warm-up (allocator, oneDNN kernel choice)
        variants[name]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            out[name].append(time_block(variants[name], reps.get(name, 1)))
    return out


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio(num: Sequence[float], den: Sequence[float]) -> dict[str, float]:
    return summary([a / b for a, b in zip(num, den, strict=True)])  # paired by round


def child_argv() -> list[str] | None:
    """The arguments after `--child` when this process is a `child_peak` child, else None."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return sys.argv[2:]
    return None


def child_peak(script: Path, args: list[str], timeout: float = 900) -> dict[str, Any]:
    """Run `script --child ARGS` in a fresh interpreter and parse its last JSON line."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))
    proc = subprocess.run(
        [sys.executable, str(script), "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["child failed"])[-1][:300]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_in_child(step: Callable[[], Any], iterations: int = 2) -> dict[str, Any]:
    """Inside a child: peak RSS increase of `iterations` calls of `step` (after construction)."""
    base = proc_status("VmRSS:")
    reset_peak()
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    seconds = (time.perf_counter() - t0) / iterations
    peak = proc_status("VmHWM:")
    return {"peak_increase_mb": round((peak - base) / 1e6, 1), "seconds_per_call": seconds}


def fwd_bwd(module: torch.nn.Module, z: torch.Tensor) -> Callable[[], None]:
    """One training-style call: forward, a scalar loss (plus the aux loss), backward."""

    def step() -> None:
        module.zero_grad(set_to_none=True)
        out = module(z)
        (out.quantized.square().mean() + out.aux_loss).backward()

    return step


def write_json(data: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(out)
