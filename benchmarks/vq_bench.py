"""The VQ baselines' fast codebook forward against vector-quantize-pytorch's own, same run.

Two comparisons, each timed round-robin in one process (quant_common's method):

* the quantizer alone, fwd+bwd in training mode (EMA update included), for vq / rvq / grvq /
  mhvq at the latent of the study's ERA5 recipe: batch 16 x 25 frames of 8 x 16 x 24
  (153,600 tokens of dimension 8; the multi-codebook kinds get dimension 64 as in the
  WeatherBench-S configs, 16 x 12 frames of 64 x 8 x 16);
* one optimizer step of the whole SimVP+VQ model of the study's ERA5 recipe (the cost that
  made the study's VQ runs 4-6x slower per epoch than SimVP+SVQ).

Peak memory (RSS increase of two quantizer fwd+bwd in a fresh child) is reported per variant.

    .venv/bin/python benchmarks/vq_bench.py --out results/vq_bench.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quant_common as qc  # noqa: E402

from svqcast.models.quantizers.baselines import VQBaseline  # noqa: E402

#: kind -> (token dimension, latent (frames, C, H, W)) of one benchmark batch
SHAPES: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "vq": (8, (16 * 25, 8, 16, 24)),
    "rvq": (64, (16 * 12, 64, 8, 16)),
    "grvq": (64, (16 * 12, 64, 8, 16)),
    "mhvq": (64, (16 * 12, 64, 8, 16)),
}
ERA5_RECIPE: dict[str, Any] = {
    "model.in_shape": [25, 1, 32, 48], "model.out_frames": 12, "model.hid_S": 8, "model.hid_T": 32,
    "model.N_T": 2, "model.drop_path": 0.1, "model.residual": "anomaly", "model.residual_period": 24,
    "model.quantizer": "vq",
}


def build_quantizer(kind: str, fast: bool) -> tuple[VQBaseline, torch.Tensor]:
    dim, shape = SHAPES[kind]
    torch.manual_seed(0)
    q = VQBaseline(kind, dim, fast=fast).train()
    return q, torch.randn(*shape, requires_grad=True)


def model_step(fast: bool, batch: int):
    """One AdamW step of the study's ERA5 SimVP+VQ on random normalised input."""
    from svqcast.api import build_model

    torch.manual_seed(0)
    model = build_model("era5-uk-t2m_gsta", ERA5_RECIPE).train()
    if not fast:  # the library's forward: undo the class switch on every codebook
        import vector_quantize_pytorch.vector_quantize_pytorch as vqp

        for m in model.modules():
            if isinstance(m, vqp.Codebook):
                m.__class__ = vqp.Codebook
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 25, 1, 32, 48), torch.randn(batch, 12, 1, 32, 48)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    return step


def child(args: list[str]) -> None:
    kind, fast = args[0], args[1] == "fast"
    torch.set_num_threads(int(args[2]))
    q, z = build_quantizer(kind, fast)
    print(json.dumps(qc.measure_in_child(qc.fwd_bwd(q, z), iterations=2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("results/vq_bench.json"))
    ap.add_argument("--kinds", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="1 = how the study runs each job")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--no-memory", action="store_true", help="skip the child-process peak-RSS runs")
    if (child_args := qc.child_argv()) is not None:
        child(child_args)
        return
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    result: dict[str, Any] = {
        "benchmark": "VQ baselines: fast codebook forward vs the library's, fwd+bwd in training mode",
        "machine": qc.machine(),
        "settings": {"rounds": a.rounds, "threads": a.threads, "batch": a.batch,
                     "shapes": {k: SHAPES[k] for k in a.kinds}, "model_recipe": ERA5_RECIPE},
        "quantizer": [],
    }
    for kind in a.kinds:
        variants = {name: qc.fwd_bwd(*build_quantizer(kind, name == "fast")) for name in ("library", "fast")}
        times = qc.round_robin(variants, a.rounds, {"library": 1, "fast": 2})
        row: dict[str, Any] = {"kind": kind, "tokens": SHAPES[kind][1][0] * SHAPES[kind][1][2] * SHAPES[kind][1][3]}
        for name in variants:
            row[name] = {"fwd_bwd_s": qc.summary(times[name])}
            if not a.no_memory:
                row[name]["peak_increase_mb"] = qc.child_peak(
                    Path(__file__), [kind, name, str(a.threads)]).get("peak_increase_mb")
        row["speedup"] = qc.ratio(times["library"], times["fast"])
        result["quantizer"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    steps = {name: model_step(name == "fast", a.batch) for name in ("library", "fast")}
    times = qc.round_robin(steps, max(3, a.rounds // 2), {})
    result["model_step"] = {name: qc.summary(times[name]) for name in steps}
    result["model_step"]["speedup"] = qc.ratio(times["library"], times["fast"])
    print(json.dumps(result["model_step"]), file=sys.stderr, flush=True)
    result["machine"]["loadavg_end"] = __import__("os").getloadavg()
    qc.write_json(result, a.out)
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
