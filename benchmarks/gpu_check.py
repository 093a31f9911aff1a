#!/usr/bin/env python
"""Exercise svqcast's CUDA paths on one GPU in a few minutes and report JSON.

Checks (each a key of the JSON; a failing check records its error and the others still run):

* `train`: samples/s of the `weatherbench-s-t2m_gsta_svq` training step at `--batch` in fp32,
  fp32 + channels_last, bf16 autocast, bf16 + channels_last, fp16 autocast (+ GradScaler),
  and the official formulation (SVQ `fused=False`) as a baseline; interleaved rounds.
* `sdpa`: the ViT preset's step with fused attention (scaled_dot_product_attention) vs the
  explicit matmuls, bf16, plus the max relative difference of their outputs.
* `pinned`: host-to-device copy throughput of a training batch from pageable vs pinned
  memory (`non_blocking=True`), and a DataLoader with `pin_memory=True`.
* `loss_gap`: a short fixed training run (same seed, same batches) on the bundled ERA5
  sample in fp32 and bf16: final validation losses and the relative gap.
* `ddp`: with 2 or more GPUs, 2 processes with NCCL DistributedDataParallel train a few
  steps; parameters must agree across ranks afterwards; samples/s. Skipped with one GPU.

Without CUDA it prints why and exits 0 without writing anything: it never fails a CPU run.

Usage: .venv/bin/python benchmarks/gpu_check.py [--out results/gpu_check.json] [--batch 16]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_common import REPO, Variant, build_step, interleaved, machine_info, ratio, save_json, short_run  # noqa: E402

DEFAULT_OUT = REPO / "results" / "gpu_check.json"
PRESET = "weatherbench-s-t2m_gsta_svq"


def no_cuda_reason() -> str | None:
    """Why the check cannot run here, or None when a CUDA GPU is usable."""
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (CPU-only build)"
        return (f"no CUDA GPU is visible (torch {torch.__version__}, CUDA build: {build}); "
                "gpu_check needs one: run it on a machine with an NVIDIA GPU")
    return None


def fp16_step(v: Variant) -> Callable[[], float]:
    """fp16 autocast needs a GradScaler (its range is too small for raw gradients)."""
    from speed_common import build_model

    model = build_model(v).cuda().train()
    t, c, h, w = model.in_shape
    x = torch.randn(v.batch, t, c, h, w, device="cuda")
    y = torch.randn(v.batch, model.out_frames, c, h, w, device="cuda")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda")

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            out = model(x, return_aux=True)
        loss = (out.pred.float() - y).abs().mean() + out.aux_loss.float()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    return step


def check_train(args: argparse.Namespace) -> dict[str, Any]:
    b = args.batch
    variants = [Variant("official", PRESET, b, fused_svq=False), Variant("fp32", PRESET, b),
                Variant("fp32+cl", PRESET, b, channels_last=True), Variant("bf16", PRESET, b, "bf16"),
                Variant("bf16+cl", PRESET, b, "bf16", True)]
    steps = {v.name: build_step(v, "cuda")[0] for v in variants}
    steps["fp16"] = fp16_step(Variant("fp16", PRESET, b))
    res = interleaved(steps, {n: b for n in steps}, args.rounds, 2, "cuda")
    res["vs_official"] = {n: ratio(res, n, "official") for n in steps if n != "official"}
    res["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return res


def check_sdpa(args: argparse.Namespace) -> dict[str, Any]:
    preset = "weatherbench-s-t2m_vit"
    fused, model_f = build_step(Variant("fused", preset, args.batch, "bf16"), "cuda")
    explicit, model_e = build_step(Variant("explicit", preset, args.batch, "bf16", fused_attn=False), "cuda")
    res = interleaved({"fused": fused, "explicit": explicit}, {"fused": args.batch, "explicit": args.batch},
                      args.rounds, 2, "cuda")
    res["fused_vs_explicit"] = ratio(res, "fused", "explicit")
    x = torch.randn(2, *model_f.in_shape, device="cuda")
    model_e.load_state_dict(model_f.state_dict())
    with torch.no_grad():
        a, e = model_f.eval()(x), model_e.eval()(x)
    res["fp32_max_rel_diff"] = float((a - e).abs().max() / e.abs().max())
    return res


def check_pinned(args: argparse.Namespace) -> dict[str, Any]:
    x = torch.randn(args.batch, 24, 1, 32, 64)
    out: dict[str, Any] = {"batch_mb": x.numel() * 4 / 2**20}
    for name, src in (("pageable", x), ("pinned", x.pin_memory())):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(50):
            src.to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        out[f"{name}_gb_per_s"] = 50 * x.numel() * 4 / 2**30 / (time.perf_counter() - t0)
    ds = torch.utils.data.TensorDataset(torch.randn(256, 12, 1, 32, 64), torch.randn(256, 12, 1, 32, 64))
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, pin_memory=True, num_workers=2,
                                         persistent_workers=True)
    xb, _ = next(iter(loader))
    out["dataloader_batch_is_pinned"] = bool(xb.is_pinned())
    return out


def check_loss_gap(args: argparse.Namespace) -> dict[str, Any]:
    runs = {p: short_run(p, args.loss_steps, device="cuda") for p in ("32", "bf16")}
    gap = abs(runs["bf16"]["val_loss"] - runs["32"]["val_loss"]) / runs["32"]["val_loss"]
    return {"runs": runs, "relative_gap": gap}


def _ddp_worker(rank: int, world: int, port: int, steps: int, batch: int, queue: Any) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    from speed_common import build_model

    model = build_model(Variant("ddp", PRESET, batch)).cuda()
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank])
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(batch, *model.in_shape, generator=g).cuda()
    y = torch.randn(batch, model.out_frames, *model.in_shape[1:], generator=g).cuda()
    for i in range(steps + 1):
        if i == 1:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = net(x, return_aux=True)
        ((out.pred.float() - y).abs().mean() + out.aux_loss.float()).backward()
        opt.step()
    torch.cuda.synchronize()
    sps = world * batch * steps / (time.perf_counter() - t0)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    if rank == 0:
        queue.put({"world_size": world, "samples_per_s": sps,
                   "max_param_diff_across_ranks": float((gathered[0] - gathered[1]).abs().max())})
    dist.destroy_process_group()


def check_ddp(args: argparse.Namespace) -> dict[str, Any]:
    if torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU visible; DDP needs 2"}
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.start_processes(_ddp_worker, args=(2, 29517, 5, args.batch, queue), nprocs=2, join=True,
                       start_method="spawn")
    return queue.get(timeout=60)


CHECKS = {"train": check_train, "sdpa": check_sdpa, "pinned": check_pinned, "loss_gap": check_loss_gap,
          "ddp": check_ddp}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--loss-steps", type=int, default=100)
    p.add_argument("--checks", nargs="+", default=list(CHECKS), choices=list(CHECKS))
    args = p.parse_args(argv)
    reason = no_cuda_reason()
    if reason:
        print(f"gpu_check: skipped: {reason}", file=sys.stderr)
        return 0
    torch.backends.cudnn.benchmark = True
    data: dict[str, Any] = {"schema": "svqcast-gpu-check/1", "machine": machine_info(),
                            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for name in args.checks:
        t0 = time.perf_counter()
        try:
            data[name] = CHECKS[name](args)
        except Exception as exc:  # a failed check is a result too; the others still run
            data[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        data[name]["seconds"] = time.perf_counter() - t0
        print(f"gpu_check {name}: done in {data[name]['seconds']:.1f} s", flush=True)
        save_json(data, args.out)
    print(json.dumps({k: v for k, v in data.items() if k != "machine"}, indent=1, default=str)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
