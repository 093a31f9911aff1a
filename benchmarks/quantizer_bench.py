"""Quantizer costs at the WeatherBench-S latent shape, and SVQ vs SVQ-raw as N grows (Fig. 1).

    .venv/bin/python benchmarks/quantizer_bench.py --out results/quantizer_bench.json

Part A, `per_quantizer`: fwd+bwd time and peak RSS increase of every quantizer (SVQ fused and
official at N=10000, SVQ frozen, SVQ-raw at its preset size, and the seven VQ baselines with
the official configs' settings) on `batch` WB-S samples (12 frames x 32 x 16 x 32 each).
Default batch 4 as in docs/reference/official-behaviour.md §9 (LFQ and multi-head VQ would need ~20 GB at 16);
every method here is linear in tokens, so multiply by 4 for batch 16. A quantizer whose peak
memory, extrapolated from a batch-1 child, would exceed the budget is skipped and says so.

Part B, `scaling`: one WB-S sample (6,144 tokens), N = 2^6 .. 2^16: fused SVQ, the official
materialised SVQ, and SVQ-raw (K=5 unrolled ISTA steps, N x N lateral matrix). SVQ-raw stops
when its predicted time (quadratic extrapolation of the last measured N) exceeds
--max-seconds or its estimated memory exceeds the budget, the official SVQ likewise (linear
extrapolation); the JSON says which. Fused SVQ runs at every N.

Method: docs/reference/official-behaviour.md §9 (round-robin timing in one process, medians with [min, max];
peak memory from a fresh child per configuration via VmHWM / clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quant_common as qc  # noqa: E402

from svqcast.models.quantizers.baselines import BASELINE_SETTINGS, VQBaseline  # noqa: E402
from svqcast.models.quantizers.svq import SVQ  # noqa: E402
from svqcast.models.quantizers.svq_raw import SVQRaw  # noqa: E402

C, H, W, FRAMES = 32, 16, 32, 12
PART_A = ["svq", "svq-official", "svq-frozen", "svq-raw", *BASELINE_SETTINGS]
RAW_ITERS = 5


def build(kind: str, n: int, batch: int, seed: int = 0) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    if kind in ("svq", "svq-official", "svq-frozen"):
        q: torch.nn.Module = SVQ(C, codebook_size=n, freeze_codebook=kind == "svq-frozen")
        q.fused = kind != "svq-official"
    elif kind == "svq-raw":
        q = SVQRaw(C, codebook_size=n, iters=RAW_ITERS)
    else:
        q = VQBaseline(kind, C)
    q.train()
    return q, torch.randn(batch * FRAMES, C, H, W)


def default_n(kind: str) -> int:
    return 1024 if kind == "svq-raw" else 10000


def raw_bytes(tokens: int, n: int) -> int:
    """SVQ-raw training memory: K code tensors (+ pre-activations and grads) and the N x N matrices."""
    return 4 * (3 * RAW_ITERS * tokens * n + 4 * n * n)


def child(args: list[str]) -> None:
    kind, n, batch, threads = args[0], int(args[1]), int(args[2]), int(args[3])
    torch.set_num_threads(threads)
    q, z = build(kind, n, batch)
    print(json.dumps(qc.measure_in_child(qc.fwd_bwd(q, z), iterations=2)))


def reps_for(seconds: float) -> int:
    return 3 if seconds < 0.3 else 1


def time_variants(variants: dict[str, Any], rounds: int) -> dict[str, list[float]]:
    reps = {}
    for name, fn in variants.items():  # first call doubles as warm-up and sets the block size
        t0 = time.perf_counter()
        fn()
        reps[name] = reps_for(time.perf_counter() - t0)
    return qc.round_robin(variants, rounds, reps)


def part_a(a: argparse.Namespace, script: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    runnable: dict[str, Any] = {}
    for kind in a.quantizers:
        n = default_n(kind)
        row: dict[str, Any] = {"quantizer": kind, "N": n if kind.startswith("svq") else None}
        budget = a.mem_fraction * qc.mem_available()
        one = qc.child_peak(script, [kind, str(n), "1", str(a.threads)])
        if "error" in one:
            row["skipped"] = f"batch-1 probe failed: {one['error']}"
            rows.append(row)
            continue
        predicted = one["peak_increase_mb"] * 1e6 * a.batch
        row["batch1_peak_increase_mb"] = one["peak_increase_mb"]
        if predicted > budget:
            row["skipped"] = (
                f"predicted peak {predicted / 1e9:.1f} GB at batch {a.batch} "
                f"(linear from batch 1) exceeds the budget {budget / 1e9:.1f} GB"
            )
        else:
            runnable[kind] = row
        rows.append(row)
        print(f"[A] probe {kind}: {one}", file=sys.stderr, flush=True)
    modules = {k: build(k, default_n(k), a.batch) for k in runnable}
    variants = {k: qc.fwd_bwd(*modules[k]) for k in runnable}
    times = time_variants(variants, a.rounds)
    del variants, modules
    ref = times.get("svq-official")
    for kind, row in runnable.items():
        row["fwd_bwd_s"] = qc.summary(times[kind])
        if ref is not None:
            row["time_vs_svq_official"] = qc.ratio(times[kind], ref)
        if a.batch == 1:  # the probe already measured exactly this configuration
            row["peak_increase_mb"] = row["batch1_peak_increase_mb"]
        else:
            peak = qc.child_peak(script, [kind, str(default_n(kind)), str(a.batch), str(a.threads)])
            row["peak_increase_mb"] = peak.get("peak_increase_mb", peak.get("error"))
        print(f"[A] {json.dumps(row)}", file=sys.stderr, flush=True)
    return rows


def part_b(a: argparse.Namespace, script: Path) -> list[dict[str, Any]]:
    tokens = FRAMES * H * W
    rows: list[dict[str, Any]] = []
    raw_stopped: str | None = None
    official_stopped: str | None = None
    last_raw: tuple[int, float] | None = None
    last_official: tuple[int, float] | None = None
    for e in range(a.min_exp, a.max_exp + 1):
        n = 2**e
        row: dict[str, Any] = {"N": n}
        kinds = ["svq"]
        budget = a.mem_fraction * qc.mem_available()
        if official_stopped is None:
            predicted_s = last_official[1] * n / last_official[0] if last_official else 0.0
            need = 4 * 2 * tokens * n
            if need > budget:
                official_stopped = f"from N={n}: estimated {need / 1e9:.1f} GB exceeds the budget {budget / 1e9:.1f} GB"
            elif predicted_s > a.max_seconds:
                official_stopped = (
                    f"from N={n}: predicted {predicted_s:.0f} s per fwd+bwd (linear from N={last_official[0]}) "
                    f"exceeds --max-seconds {a.max_seconds:g}"
                )
            else:
                kinds.append("svq-official")
        if "svq-official" not in kinds:
            row["svq-official"] = {"skipped": official_stopped}
        if raw_stopped is None:
            need = raw_bytes(tokens, n)
            predicted_s = last_raw[1] * (n / last_raw[0]) ** 2 if last_raw else 0.0
            if need > budget:
                raw_stopped = f"from N={n}: estimated {need / 1e9:.1f} GB exceeds the budget {budget / 1e9:.1f} GB"
            elif predicted_s > a.max_seconds:
                raw_stopped = (
                    f"from N={n}: predicted {predicted_s:.0f} s per fwd+bwd (quadratic from N={last_raw[0]}) "
                    f"exceeds --max-seconds {a.max_seconds:g}"
                )
            else:
                kinds.append("svq-raw")
        if "svq-raw" not in kinds:
            row["svq-raw"] = {"skipped": raw_stopped}
        modules = {k: build(k, n, 1) for k in kinds}
        times = time_variants({k: qc.fwd_bwd(*modules[k]) for k in kinds}, a.rounds)
        del modules
        for k in kinds:
            peak = qc.child_peak(script, [k, str(n), "1", str(a.threads)])
            row[k] = {"fwd_bwd_s": qc.summary(times[k]),
                      "peak_increase_mb": peak.get("peak_increase_mb", peak.get("error"))}
        if "svq-official" in kinds:
            row["official_over_fused"] = qc.ratio(times["svq-official"], times["svq"])
            last_official = (n, row["svq-official"]["fwd_bwd_s"]["median"])
        if "svq-raw" in kinds:
            if "svq-official" in kinds:
                row["raw_over_official"] = qc.ratio(times["svq-raw"], times["svq-official"])
            row["raw_over_fused"] = qc.ratio(times["svq-raw"], times["svq"])
            last_raw = (n, row["svq-raw"]["fwd_bwd_s"]["median"])
        rows.append(row)
        print(f"[B] {json.dumps(row)}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/quantizer_bench.json"))
    ap.add_argument("--batch", type=int, default=4, help="WB-S samples for part A (12 latent frames each)")
    ap.add_argument("--quantizers", nargs="+", default=PART_A)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-exp", type=int, default=6)
    ap.add_argument("--max-exp", type=int, default=16)
    ap.add_argument("--max-seconds", type=float, default=20.0,
                    help="stop SVQ-raw / official SVQ beyond this predicted time")
    ap.add_argument("--mem-fraction", type=float, default=0.5, help="budget = this x MemAvailable")
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    if (child_args := qc.child_argv()) is not None:
        child(child_args)
        return
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    script = Path(__file__).resolve()
    result: dict[str, Any] = {
        "benchmark": "quantizer fwd+bwd cost at the WeatherBench-S latent shape",
        "machine": qc.machine(),
        "settings": {
            "part_a_batch": a.batch, "frames_per_sample": FRAMES, "latent": [C, H, W],
            "part_a_tokens": a.batch * FRAMES * H * W, "part_b_tokens": FRAMES * H * W,
            "rounds": a.rounds, "threads": a.threads, "svq_raw_iters": RAW_ITERS,
            "max_seconds": a.max_seconds, "mem_fraction": a.mem_fraction,
        },
    }
    if not a.skip_a:
        result["per_quantizer"] = part_a(a, script)
        qc.write_json(result, a.out)
    if not a.skip_b:
        result["scaling"] = part_b(a, script)
    result["machine"]["loadavg_end"] = os.getloadavg()
    qc.write_json(result, a.out)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
