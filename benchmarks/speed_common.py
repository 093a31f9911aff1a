"""Shared pieces of train_speed.py, predict_speed.py and gpu_check.py.

* `Variant` / `build_step`: one training configuration (preset, batch, precision,
  channels_last, compile, SVQ formulation, attention path) and its step function: forward
  under autocast, loss in fp32 (+ the quantizer's auxiliary loss), backward, Adam.
* `interleaved`: the project's timing method (docs/benchmarks.md): every variant in one
  process, round-robin A B C then C B A ..., medians and [min, max] over rounds, ratios as
  medians of per-round ratios.
* `short_run`: a short fixed training run (same seed, same batches) on the bundled ERA5
  sample, returning the final validation loss, to compare precisions.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Variant:
    name: str
    preset: str = "weatherbench-s-t2m_gsta_svq"
    batch: int = 4
    precision: str = "32"
    channels_last: bool = False
    compile: bool = False
    fused_svq: bool = True
    fused_attn: bool = True
    overrides: tuple[tuple[str, Any], ...] = ()


def build_model(v: Variant, seed: int = 0) -> torch.nn.Module:
    """The preset's model with the variant's switches; same seed -> same weights."""
    from svqcast.config import load_config
    from svqcast.models.factory import build_model_from_config
    from svqcast.models.translators.transformers import set_fused_attn

    cfg = load_config(v.preset)
    for key, value in v.overrides:
        cfg["model"][key] = value
    torch.manual_seed(seed)
    model = build_model_from_config(cfg)
    q = getattr(model, "quantizer", None)
    if q is not None and hasattr(q, "fused"):
        q.fused = v.fused_svq
    set_fused_attn(model, v.fused_attn)
    return model


def build_step(v: Variant, device: str = "cpu", seed: int = 0) -> tuple[Callable[[], float], torch.nn.Module]:
    """(step function, model) for variant `v` on a fixed random batch."""
    from svqcast.models.fastpath import autocast_context, compile_model, prepare_model

    model = build_model(v, seed).to(device).train()
    prepare_model(model, v.precision, "on" if v.channels_last else "off", device)
    net = compile_model(model, v.compile)
    t, c, h, w = model.in_shape
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(v.batch, t, c, h, w, generator=gen).to(device)
    y = torch.randn(v.batch, model.out_frames, c, h, w, generator=gen).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, v.precision):
            out = net(x, return_aux=True)
        loss = (out.pred.float() - y).abs().mean() + out.aux_loss.float()
        loss.backward()
        opt.step()
        return float(loss.detach())  # one host sync per step, as in any timing

    return step, model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def spread(values: Sequence[float]) -> dict[str, Any]:
    vals = [float(v) for v in values]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}


def interleaved(
    steps: dict[str, Callable[[], float]], samples: dict[str, int], rounds: int, warmup: int = 1,
    device: str = "cpu", log: Callable[[str], None] = print, max_rounds: dict[str, int] | None = None,
) -> dict[str, Any]:
    """samples/s of every step function, round-robin; warm-up calls are timed separately
    (the first includes torch.compile's compilation). `max_rounds` caps the rounds of very
    slow variants (they join the first N rounds only)."""
    limit = max_rounds or {}
    first: dict[str, float] = {}
    for name, fn in steps.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        sync(device)
        first[name] = time.perf_counter() - t0
        log(f"warm-up {name}: {first[name]:.2f} s")
    per_round: list[dict[str, float]] = []
    names = list(steps)
    for r in range(rounds):
        row: dict[str, float] = {}
        for name in names if r % 2 == 0 else names[::-1]:
            if r >= limit.get(name, rounds):
                continue
            t0 = time.perf_counter()
            steps[name]()
            sync(device)
            row[name] = samples[name] / (time.perf_counter() - t0)
            log(f"round {r + 1}/{rounds} {name}: {row[name]:.3f} samples/s")
        per_round.append(row)
    return {"rounds": rounds, "max_rounds": limit, "warmup_seconds": first, "per_round": per_round,
            "samples_per_s": {n: spread([row[n] for row in per_round if n in row]) for n in names}}


def ratio(result: dict[str, Any], a: str, b: str) -> dict[str, Any]:
    """Median [min, max] of the per-round ratios a / b of samples/s (rounds with both)."""
    return spread([row[a] / row[b] for row in result["per_round"] if a in row and b in row])


def era5_windows(t_in: int = 12, t_out: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) windows of the bundled ERA5 UK t2m sample, z-scored, hourly stride 6."""
    import numpy as np
    import xarray as xr

    import svqcast.data.samples as samples

    path = Path(samples.__file__).resolve().parent / "era5_uk_t2m_2019-03.nc"
    with xr.open_dataset(path) as ds:
        a = ds["t2m"].values.astype(np.float32)
    a = (a - a.mean()) / a.std()
    starts = range(0, a.shape[0] - t_in - t_out + 1, 6)
    x = torch.from_numpy(np.stack([a[s : s + t_in] for s in starts]))[:, :, None]
    y = torch.from_numpy(np.stack([a[s + t_in : s + t_in + t_out] for s in starts]))[:, :, None]
    return x, y


def short_run(precision: str, steps: int, batch: int = 8, seed: int = 0, channels_last: bool = False,
              preset: str = "era5-uk-t2m_gsta_svq", device: str = "cpu", lr: float = 1e-3) -> dict[str, Any]:
    """Train `preset` for `steps` Adam steps on the ERA5 sample (same seed, same batches for
    every precision); returns the train losses and the final validation loss (fp32 MAE on
    the held-out last 20 % of windows, computed under the same autocast)."""
    from svqcast.models.fastpath import autocast_context, prepare_model

    x, y = era5_windows()
    n_val = max(1, len(x) // 5)
    xt, yt, xv, yv = x[:-n_val], y[:-n_val], x[-n_val:].to(device), y[-n_val:].to(device)
    model = build_model(Variant("run", preset=preset), seed).to(device).train()
    prepare_model(model, precision, "on" if channels_last else "off", device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.randperm(len(xt), generator=torch.Generator().manual_seed(seed))
    losses, t0 = [], time.perf_counter()
    for i in range(steps):
        idx = order[(i * batch) % len(order):][:batch]
        if len(idx) < batch:
            idx = order[:batch]
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, precision):
            out = model(xt[idx].to(device), return_aux=True)
        loss = (out.pred.float() - yt[idx].to(device)).abs().mean() + out.aux_loss.float()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad(), autocast_context(device, precision):
        val = float((model(xv).float() - yv).abs().mean())
    return {"precision": precision, "steps": steps, "batch": batch, "seed": seed, "lr": lr, "preset": preset,
            "train_loss_first": losses[0], "train_loss_last": losses[-1], "val_loss": val,
            "seconds": seconds, "n_train_windows": len(xt), "n_val_windows": n_val}


def machine_info() -> dict[str, Any]:
    from svqcast.models.fastpath import native_bf16

    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                            "torch": torch.__version__, "threads": torch.get_num_threads(),
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "native_bf16_cpu": native_bf16("cpu")}
    with contextlib.suppress(Exception):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
            if line.startswith("Flags:"):  # the vector extensions that decide kernel speed
                flags = line.split(":", 1)[1].split()
                info["cpu_flags"] = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4", "f16c"))]
    with contextlib.suppress(Exception):
        info["load_average"] = list(os.getloadavg())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def save_json(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def variant_dict(v: Variant) -> dict[str, Any]:
    d = asdict(v)
    d["overrides"] = dict(v.overrides)
    return d
