"""Fused SVQ against the official materialised formulation, fwd+bwd, at the WeatherBench-S
shape (B=16, T=12 -> 192 latent frames of 32 x 16 x 32 = 98,304 tokens), N in {1e3, 1e4, 1e5}.

    .venv/bin/python benchmarks/svq_bench.py --out results/svq_bench.json

Method: docs/reference/official-behaviour.md §9 (round-robin timing in one process, medians, per-round ratios with
[min, max]; peak RSS increase from a fresh child per configuration). The materialised path
needs about 2 * tokens * N * 4 bytes in training (W saved for the product, plus dW); where
that estimate exceeds the memory budget the JSON records `skipped` with the estimate
instead of running it. Acceptance target (issue 2): fused >= 50x faster at N = 10000.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quant_common as qc  # noqa: E402

from svqcast.models.quantizers.svq import SVQ  # noqa: E402

C, H, W = 32, 16, 32


def build(n: int, batch: int, fused: bool, seed: int = 0) -> tuple[SVQ, torch.Tensor]:
    torch.manual_seed(seed)
    q = SVQ(C, codebook_size=n)
    q.fused = fused
    z = torch.randn(batch * 12, C, H, W)
    return q, z


def materialised_bytes(tokens: int, n: int, k: int) -> int:
    """W saved for the backward plus dW, plus the small activations (4 bytes each)."""
    return 4 * (2 * tokens * n + 3 * tokens * (k + C))


def macs(tokens: int, n: int, fused: bool) -> int:
    """Analytic multiply-accumulates of one fwd+bwd (docs/reference/official-behaviour.md §9)."""
    k = min(128, n)
    if fused:
        return 6 * tokens * C * k + 3 * n * k * C
    return 3 * tokens * (C * k + k * n + n * C)


def child(args: list[str]) -> None:
    n, batch, fused = int(args[0]), int(args[1]), args[2] == "fused"
    torch.set_num_threads(int(args[3]))
    q, z = build(n, batch, fused)
    res = qc.measure_in_child(qc.fwd_bwd(q, z), iterations=2)
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/svq_bench.json"))
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mem-fraction", type=float, default=0.6, help="budget = this x MemAvailable")
    ap.add_argument("--no-memory", action="store_true", help="skip the child-process peak-RSS runs")
    if (child_args := qc.child_argv()) is not None:
        child(child_args)
        return
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tokens = a.batch * 12 * H * W
    result: dict[str, Any] = {
        "benchmark": "svq fused vs materialised, fwd+bwd",
        "machine": qc.machine(),
        "settings": {
            "batch": a.batch, "frames": 12, "latent": [C, H, W], "tokens": tokens,
            "rounds": a.rounds, "threads": a.threads, "middim": 128, "codebook_init": "normal",
        },
        "results": [],
    }
    for n in a.sizes:
        row: dict[str, Any] = {"N": n, "k": min(128, n)}
        budget = a.mem_fraction * qc.mem_available()
        need = materialised_bytes(tokens, n, min(128, n))
        row["materialised_estimate_gb"] = round(need / 1e9, 2)
        row["macs"] = {"fused": macs(tokens, n, True), "materialised": macs(tokens, n, False)}
        variants = {}
        qf, zf = build(n, a.batch, True)
        variants["fused"] = qc.fwd_bwd(qf, zf)
        fits = need < budget
        if fits:
            qm, zm = build(n, a.batch, False)
            variants["materialised"] = qc.fwd_bwd(qm, zm)
        else:
            row["materialised"] = {
                "skipped": f"estimated {need / 1e9:.1f} GB for W and dW exceeds the budget "
                f"{budget / 1e9:.1f} GB ({a.mem_fraction} x MemAvailable): the official path cannot fit"
            }
        print(f"N={n}: timing {list(variants)}", file=sys.stderr, flush=True)
        t0 = time.time()
        times = qc.round_robin(variants, a.rounds, {"fused": 3, "materialised": 1})
        row["fused"] = {"fwd_bwd_s": qc.summary(times["fused"])}
        if "materialised" in times:
            row["materialised"] = {"fwd_bwd_s": qc.summary(times["materialised"])}
            row["speedup"] = qc.ratio(times["materialised"], times["fused"])
        del variants
        qf = zf = None
        if fits:
            qm = zm = None
        if not a.no_memory:
            row["fused"]["peak_increase_mb"] = qc.child_peak(
                Path(__file__), [str(n), str(a.batch), "fused", str(a.threads)]
            ).get("peak_increase_mb")
            if fits:
                row["materialised"]["peak_increase_mb"] = qc.child_peak(
                    Path(__file__), [str(n), str(a.batch), "materialised", str(a.threads)]
                ).get("peak_increase_mb")
        row["wall_s"] = round(time.time() - t0, 1)
        result["results"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    ten = [r for r in result["results"] if r["N"] == 10000 and "speedup" in r]
    if ten:
        median = ten[0]["speedup"]["median"]
        result["target_50x_at_10000"] = {"speedup_median": median, "met": median >= 50}
    result["machine"]["loadavg_end"] = __import__("os").getloadavg()
    qc.write_json(result, a.out)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
