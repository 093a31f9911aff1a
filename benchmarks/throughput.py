#!/usr/bin/env python
"""End-to-end throughput: training samples/s and peak memory of the full WeatherBench-S gSTA
model (SimVP, SimVP+SVQ fused, SimVP+SVQ materialised) on CPU, and `svqcast predict` forecasts/s.

Why it is measured this way (see ../shared/reference/perf-baseline.md for the reasoning):

* **Interleaved rounds.** On a shared 2-core machine absolute timings drift by about ±15 %
  between runs, so all variants run in ONE process, round-robin (A B C, then C B A, ...), and the
  quoted ratios are medians of the per-round ratios with their [min-max] across rounds.
* **Peak memory in a fresh child per configuration.** VmHWM is reset by writing "5" to
  /proc/self/clear_refs after the model, optimizer and batch are built; the reported figure is
  VmHWM minus the RSS at that moment (the increase caused by training steps, Adam state
  included). ru_maxrss would be inherited across exec and is not used.
* **Same weights.** The fused and materialised SVQ models share one state_dict; only
  `model.quantizer.fused` differs, so the comparison isolates the formulation.

Targets (issue 7): fused SVQ >= 90 % of plain SimVP's samples/s at N = 10000, and >= 2x the
materialised formulation.

Usage: .venv/bin/python benchmarks/throughput.py [--rounds 3 --steps 2 --warmup 1] [--parts timing memory predict]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "results" / "throughput.json"
SCHEMA = "svqcast-throughput/1"

# name -> (preset, fused). `fused=None` means the model has no SVQ.
CONFIGS: dict[str, tuple[str, bool | None]] = {
    "simvp": ("weatherbench-s-t2m_gsta", None),
    "svq-fused": ("weatherbench-s-t2m_gsta_svq", True),
    "svq-materialised": ("weatherbench-s-t2m_gsta_svq", False),
}
TARGETS = {"fused_vs_simvp_min": 0.90, "fused_vs_materialised_min": 2.0}


def build(name: str, seed: int = 0):
    """Model, optimizer, loss and a fixed random batch for one configuration.

    The seed is reset before building so svq-fused and svq-materialised get identical weights.
    """
    import torch

    from svqcast import api
    from svqcast.config import load_config

    preset, fused = CONFIGS[name]
    cfg = load_config(preset)
    torch.manual_seed(seed)
    model = api.build_model(cfg)
    if fused is not None:
        quantizer = getattr(model, "quantizer", None)
        if quantizer is None or not hasattr(quantizer, "fused"):
            raise SystemExit(f"{preset}: model has no SVQ quantizer with a `fused` switch")
        quantizer.fused = fused
    model.train()
    t_in, c, h, w = cfg["model"]["in_shape"]
    t_out = cfg["model"]["out_frames"]
    batch = int(cfg["train"]["batch_size"])
    gen = torch.Generator().manual_seed(1234)
    x = torch.randn(batch, t_in, c, h, w, generator=gen)
    y = torch.randn(batch, t_out, c, h, w, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["train"]["lr"]))
    loss_fn = torch.nn.L1Loss() if cfg["train"]["loss"] == "mae" else torch.nn.MSELoss()
    return model, opt, loss_fn, x, y


def train_step(model, opt, loss_fn, x, y) -> float:
    """One training step as the trainer does it: forward, loss + quantizer aux loss, backward, Adam."""
    opt.zero_grad(set_to_none=True)
    pred = model(x)
    loss = loss_fn(pred, y)
    aux = getattr(model, "aux_loss", None)
    if aux is not None:
        loss = loss + aux
    loss.backward()
    opt.step()
    return float(loss.detach())


def _proc_status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_memory(name: str, steps: int) -> dict[str, Any]:
    """Runs in a fresh child process: peak RSS increase of `steps` training steps (MB)."""
    import torch

    model, opt, loss_fn, x, y = build(name)
    rss0 = _proc_status_kb("VmRSS")
    reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed: fall back to the lifetime peak
        reset = False
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, opt, loss_fn, x, y)
    seconds = time.perf_counter() - t0
    hwm = _proc_status_kb("VmHWM")
    return {"config": name, "steps": steps, "rss_after_construction_mb": rss0 / 1024,
            "peak_rss_mb": hwm / 1024, "peak_increase_mb": (hwm - rss0) / 1024,
            "hwm_reset": reset, "seconds": seconds, "threads": torch.get_num_threads()}


def _memory_child(argv: Sequence[str]) -> int:
    name, steps, out = argv
    Path(out).write_text(json.dumps(measure_memory(name, int(steps))))
    return 0


def run_memory(names: Sequence[str], steps: int, threads: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "mem.json"
            proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "_memory", name, str(steps), str(out)],
                                  env=_thread_env(threads), capture_output=True, text=True)
            if proc.returncode != 0 or not out.exists():
                results[name] = {"config": name, "error": (proc.stderr or proc.stdout)[-1500:],
                                 "returncode": proc.returncode}
            else:
                results[name] = json.loads(out.read_text())
        print(f"memory {name}: {results[name].get('peak_increase_mb', 'error')} MB", flush=True)
    return results


def _thread_env(threads: int) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def run_timing(names: Sequence[str], rounds: int, steps: int, warmup: int, threads: int) -> dict[str, Any]:
    """All configurations in one process, interleaved: A B C, C B A, A B C ..."""
    import torch

    torch.set_num_threads(threads)
    built = {name: build(name) for name in names}
    for name in names:
        for _ in range(warmup):
            train_step(*built[name])
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        order = list(names) if r % 2 == 0 else list(reversed(names))
        sps: dict[str, float] = {}
        for name in order:
            model, opt, loss_fn, x, y = built[name]
            t0 = time.perf_counter()
            for _ in range(steps):
                train_step(model, opt, loss_fn, x, y)
            elapsed = time.perf_counter() - t0
            sps[name] = x.shape[0] * steps / elapsed
            print(f"round {r + 1}/{rounds} {name}: {sps[name]:.3f} samples/s ({elapsed / steps:.2f} s/step)", flush=True)
        per_round.append(sps)
    summary = {name: spread([rd[name] for rd in per_round]) for name in names}
    ratios = {}
    for a, b in (("svq-fused", "simvp"), ("svq-fused", "svq-materialised"), ("svq-materialised", "simvp")):
        if a in names and b in names:
            ratios[f"{a}/{b}"] = spread([rd[a] / rd[b] for rd in per_round])
    return {"rounds": rounds, "steps_per_round": steps, "warmup_steps": warmup, "threads": threads,
            "batch_size": int(next(iter(built.values()))[3].shape[0]),
            "per_round_samples_per_s": per_round, "samples_per_s": summary, "ratios": ratios}


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median and [min, max]: the way every timing in this project is quoted."""
    vals = [float(v) for v in values]
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals}


def run_predict(repeats: int, threads: int) -> dict[str, Any]:
    """`svqcast predict` on the bundled sample: the CLI end to end (one process per call, so
    interpreter start-up and model loading count) and the Python API (model loaded once)."""
    import torch

    torch.set_num_threads(threads)
    import xarray as xr

    import svqcast

    out: dict[str, Any] = {"threads": threads}
    sample = _bundled_sample()
    out["input"] = str(sample)
    forecaster = svqcast.load_model(None) if _accepts_none() else svqcast.load_model(_default_model_name())
    ds = xr.open_dataset(sample)
    steps = int(forecaster.spec.t_out)
    forecaster.predict(ds, steps=steps)  # warm-up
    times, n_fc = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        fc = forecaster.predict(ds, steps=steps)
        times.append(time.perf_counter() - t0)
        n_fc = _n_forecasts(fc)
    out["api"] = {"forecasts_per_call": n_fc, "seconds_per_call": spread(times),
                  "forecasts_per_s": spread([n_fc / t for t in times])}
    svq = Path(sys.executable).with_name("svqcast")
    cmd_base = [str(svq) if svq.exists() else "svqcast", "predict", str(sample)]
    cli_times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            target = Path(tmp) / f"fc{i}.nc"
            t0 = time.perf_counter()
            proc = subprocess.run(cmd_base + ["-o", str(target)], capture_output=True, text=True,
                                  env=_thread_env(threads))
            cli_times.append(time.perf_counter() - t0)
            if proc.returncode != 0:
                out["cli"] = {"error": proc.stderr[-1500:], "returncode": proc.returncode}
                return out
            n_cli = _n_forecasts(xr.open_dataset(target))
    out["cli"] = {"command": " ".join(["svqcast", "predict", "<bundled sample>", "-o", "<tmp>.nc"]),
                  "forecasts_per_call": n_cli, "seconds_per_call": spread(cli_times),
                  "forecasts_per_s": spread([n_cli / t for t in cli_times])}
    return out


def _n_forecasts(fc) -> int:
    """Number of forecasts (initialisation times) in a forecast dataset."""
    return int(fc.sizes.get("time", 1))


def _bundled_sample() -> Path:
    from svqcast import api

    fn = getattr(api, "bundled_sample_path", None) or getattr(api, "sample_path", None)
    if fn is not None:
        return Path(fn())
    from svqcast.data import samples  # type: ignore[attr-defined]

    return Path(samples.sample_path("era5-uk-t2m"))


def _default_model_name() -> str:
    from svqcast import api

    return getattr(api, "DEFAULT_MODEL", None) or "era5-uk-t2m_gsta_svq"


def _accepts_none() -> bool:
    return False


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count(), "python": platform.python_version()}
    with contextlib.suppress(Exception):
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                info["cpu"] = line.split(":", 1)[1].strip()
    with contextlib.suppress(Exception):
        import torch

        info["torch"] = torch.__version__
    with contextlib.suppress(Exception):
        info["load_average"] = os.getloadavg()
    with contextlib.suppress(Exception):
        info["mem_total_gb"] = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    return info


def save(data: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_memory"]:
        return _memory_child(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="Example: .venv/bin/python benchmarks/throughput.py --rounds 3 --steps 2")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--parts", nargs="+", default=["timing", "memory", "predict"],
                   choices=["timing", "memory", "predict"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed training steps per config per round")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--memory-steps", type=int, default=1)
    p.add_argument("--predict-repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)

    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if data.get("schema") != SCHEMA:
        data = {"schema": SCHEMA}
    data["targets"] = TARGETS
    data["configs"] = {k: {"preset": v[0], "fused": v[1]} for k, v in CONFIGS.items() if k in args.configs}
    data["machine"] = machine_info()
    t0 = time.perf_counter()
    if "timing" in args.parts:
        data["timing"] = run_timing(args.configs, args.rounds, args.steps, args.warmup, args.threads)
        data["timing"]["measured"] = _now()
        data["timing"]["load_average_after"] = os.getloadavg()
        r = data["timing"]["ratios"]
        data["targets_met"] = {
            "fused_vs_simvp": (r["svq-fused/simvp"]["median"] >= TARGETS["fused_vs_simvp_min"])
            if "svq-fused/simvp" in r else None,
            "fused_vs_materialised": (r["svq-fused/svq-materialised"]["median"] >= TARGETS["fused_vs_materialised_min"])
            if "svq-fused/svq-materialised" in r else None,
        }
        save(data, args.out)
    if "memory" in args.parts:
        data["memory"] = run_memory(args.configs, args.memory_steps, args.threads)
        data["memory_measured"] = _now()
        save(data, args.out)
    if "predict" in args.parts:
        data["predict"] = run_predict(args.predict_repeats, args.threads)
        data["predict"]["measured"] = _now()
        save(data, args.out)
    data["wall_seconds_last_invocation"] = time.perf_counter() - t0
    save(data, args.out)
    print(json.dumps({k: data.get(k) for k in ("targets_met",)}, indent=1))
    return 0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


if __name__ == "__main__":
    sys.exit(main())
