#!/usr/bin/env python
"""End-to-end throughput: training samples/s and peak memory of the full WeatherBench-S gSTA
model (SimVP, SimVP+SVQ fused, SimVP+SVQ materialised) on CPU, and `svqcast predict` forecasts/s.

Why it is measured this way (see docs/reference/official-behaviour.md §9 for the reasoning):

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
    out = model.forward_with_aux(x)
    loss = loss_fn(out.pred, y) + out.aux_loss
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
            argv = [sys.executable, str(Path(__file__).resolve()), "_memory", name, str(steps), str(out)]
            proc = subprocess.run(argv, env=_thread_env(threads), capture_output=True, text=True)
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
            print(f"round {r + 1}/{rounds} {name}: {sps[name]:.3f} samples/s ({elapsed / steps:.2f} s/step)",
                  flush=True)
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


def run_predict(repeats: int, threads: int, n_init: int) -> dict[str, Any]:
    """Forecasts per second of the bundled default model on the bundled ERA5 sample.

    * `api_single`: `svqcast.load_model().predict(ds)` -- one forecast (the last input time),
      model loaded once; what a service calling the library sees.
    * `api_batch`: one `predict` call with `n_init` hourly initialisation times.
    * `cli_single` / `cli_batch`: `svqcast predict SAMPLE -o OUT.nc [--init-time ...]` as a user
      runs it: one process per call, so interpreter start-up, model loading (with its sha256
      check), input validation and the netCDF write all count.
    """
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    import xarray as xr

    import svqcast

    sample = _bundled_sample()
    forecaster = svqcast.load_model()
    ds = xr.open_dataset(sample)
    times = ds["time"].values
    t_in = int(forecaster.spec.t_in)
    inits = [np.datetime_as_string(t, unit="s") for t in times[-n_init:]] if n_init <= len(times) - t_in + 1 else []
    out: dict[str, Any] = {"threads": threads, "input": str(sample.relative_to(REPO)), "model": forecaster.ref,
                           "steps": int(forecaster.t_out), "n_init_batch": len(inits)}

    def timed(fn, n_expected=None) -> dict[str, Any]:
        fn()  # warm-up
        secs, n = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            n = fn()
            secs.append(time.perf_counter() - t0)
        return {"forecasts_per_call": n, "seconds_per_call": spread(secs),
                "forecasts_per_s": spread([n / t for t in secs])}

    out["api_single"] = timed(lambda: _n_forecasts(forecaster.predict(ds)))
    out["api_batch"] = timed(lambda: _n_forecasts(forecaster.predict(ds, init_time=inits)))
    svq = Path(sys.executable).with_name("svqcast")
    exe = str(svq) if svq.exists() else "svqcast"
    with tempfile.TemporaryDirectory() as tmp:
        def cli(extra: list[str]) -> int:
            target = Path(tmp) / "fc.nc"
            proc = subprocess.run([exe, "predict", str(sample), "-o", str(target), "--overwrite", *extra],
                                  capture_output=True, text=True, env=_thread_env(threads))
            if proc.returncode != 0:
                raise RuntimeError(f"svqcast predict failed ({proc.returncode}): {proc.stderr[-800:]}")
            with xr.open_dataset(target) as fc:
                return _n_forecasts(fc)

        out["cli_single"] = timed(lambda: cli([]))
        out["cli_batch"] = timed(lambda: cli([a for t in inits for a in ("--init-time", t)]))
        out["cli_command"] = f"svqcast predict {out['input']} -o OUT.nc [--init-time T ...]"
    return out


def _n_forecasts(fc) -> int:
    """Number of forecasts (initialisation times) in a forecast dataset."""
    return int(fc.sizes.get("time", 1))


def _bundled_sample() -> Path:
    import svqcast.data.samples as samples

    return Path(samples.__file__).resolve().parent / "era5_uk_t2m_2019-03.nc"


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


SECTION = "## End-to-end throughput"
DEFAULT_DOC = REPO / "docs" / "benchmarks.md"


def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}"


def _spread_text(sp: Mapping[str, Any], digits: int = 3, suffix: str = "") -> str:
    return f"{_f(sp['median'], digits)}{suffix} [{_f(sp['min'], digits)}–{_f(sp['max'], digits)}]"


def render_section(data: Mapping[str, Any]) -> str:
    """The "End-to-end throughput" section of docs/benchmarks.md, from results/throughput.json."""
    m = data.get("machine", {})
    L = [SECTION, "",
         "<!-- Generated by `benchmarks/throughput.py --report` from `results/throughput.json`; "
         "do not edit by hand. -->", "",
         "Training throughput of the **full-size** WeatherBench-S gSTA model (`weatherbench-s-t2m_gsta`, "
         "12.76 M parameters, and `weatherbench-s-t2m_gsta_svq` with N = 10000) at batch 16, fp32, on CPU, "
         "and `svqcast predict` throughput of the bundled model. Command: "
         "`.venv/bin/python benchmarks/throughput.py` (then `--report` to rewrite this section).", "",
         f"**Machine**: `nproc` = {m.get('nproc')}, CPU `{m.get('cpu')}` (lscpu model name), "
         f"{_f(m.get('mem_total_gb', 0), 3)} GB RAM, torch {m.get('torch')}, Python {m.get('python')}; "
         f"load average at the start {', '.join(_f(v, 2) for v in m.get('load_average', []))}.", ""]
    t = data.get("timing")
    if t:
        L += _timing_lines(data, t) + _timing_history_lines(data, t)
    mem = data.get("memory")
    if mem:
        L += _memory_lines(data, mem)
    pr = data.get("predict")
    if pr:
        L += _predict_lines(pr)
    return "\n".join(L)


def _timing_lines(data: Mapping[str, Any], t: Mapping[str, Any]) -> list[str]:
    """The training-throughput method, the samples/s per variant and the ratios against their targets."""
    L = ["**Method.** One process builds the three variants (the two SVQ variants share one set of "
         "weights; `svq-materialised` is the same model with `model.quantizer.fused = False`, the "
         f"official formulation that builds the tokens x N weights). After {t['warmup_steps']} untimed "
         f"step(s) each, {t['rounds']} round(s) of {t['steps_per_round']} timed training step(s) per variant "
         "run interleaved (A B C, then C B A, ...); a step is forward, L1/MSE loss + quantizer loss, "
         f"backward and an Adam step on a fixed random batch, {t['threads']} thread(s). Quoted: the "
         "median over rounds [min–max]; ratios are medians of the per-round ratios [min–max].", "",
         "| variant | preset | samples/s | s/step |", "|---|---|---|---|"]
    for name, sp in t["samples_per_s"].items():
        bs = t["batch_size"]
        secs = {"median": bs / sp["median"], "min": bs / sp["max"], "max": bs / sp["min"]}
        L.append(f"| {name} | `{data['configs'][name]['preset']}` | {_spread_text(sp)} | {_spread_text(secs)} |")
    L += ["", "| ratio of samples/s | median [min–max] over rounds | target | met |", "|---|---|---|---|"]
    targets = {"svq-fused/simvp": (TARGETS["fused_vs_simvp_min"], "fused_vs_simvp"),
               "svq-fused/svq-materialised": (TARGETS["fused_vs_materialised_min"], "fused_vs_materialised")}
    for key, sp in t["ratios"].items():
        tgt = targets.get(key)
        met = (data.get("targets_met") or {}).get(tgt[1]) if tgt else None
        L.append(f"| {key} | {_spread_text(sp)} | {'>= ' + _f(tgt[0]) if tgt else '–'} | "
                 f"{'yes' if met else 'no' if met is False else '–'} |")
    L += ["", f"Measured {t.get('measured', '?')}; load average after the timing "
              f"{', '.join(_f(v, 2) for v in t.get('load_average_after', []))}.", ""]
    return L


def _timing_history_lines(data: Mapping[str, Any], t: Mapping[str, Any]) -> list[str]:
    """One row per timing run kept in the JSON, the current one (`t`) last; nothing without history."""
    hist = data.get("timing_history") or []
    if not hist:
        return []
    L = ["Every timing run in `results/throughput.json` (the table above is the last one):", "",
         "| run | variants | rounds x steps | svq-fused/simvp | svq-fused/svq-materialised |",
         "|---|---|---|---|---|"]
    for i, h in enumerate([*hist, {"timing": t, "targets_met": data.get("targets_met")}], 1):
        ht = h["timing"]
        cells = [_spread_text(ht["ratios"][k]) if k in ht["ratios"] else "–"
                 for k in ("svq-fused/simvp", "svq-fused/svq-materialised")]
        L.append(f"| {i} ({ht.get('measured', '?')}) | {', '.join(ht['samples_per_s'])} | "
                 f"{ht['rounds']} x {ht['steps_per_round']} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _memory_lines(data: Mapping[str, Any], mem: Mapping[str, Any]) -> list[str]:
    """The peak memory of a training step per variant."""
    L = ["**Peak memory** of a training step, each variant in a fresh child process: VmHWM is reset "
         "(`5` written to `/proc/self/clear_refs`) after the model, optimizer and batch are built, "
         "and the table gives VmHWM minus the RSS at that moment (Adam's state is allocated "
         "in the measured step).", "",
         "| variant | RSS after construction | peak RSS | increase during the step(s) |", "|---|---|---|---|"]
    for name, r in mem.items():
        if "error" in r:
            L.append(f"| {name} | – | – | failed (exit {r.get('returncode')}) |")
        else:
            L.append(f"| {name} | {r['rss_after_construction_mb']:.0f} MB | {r['peak_rss_mb']:.0f} MB | "
                     f"**{r['peak_increase_mb']:.0f} MB** ({r['steps']} step(s)) |")
    L += ["", f"Measured {data.get('memory_measured', '?')} (load average "
              f"{', '.join(_f(v, 2) for v in data.get('memory_load_average', []))}; memory does not "
              "depend on the load).", ""]
    return L


def _predict_lines(pr: Mapping[str, Any]) -> list[str]:
    """`svqcast predict` throughput of the bundled model, through the API and the CLI."""
    L = [f"**`svqcast predict`** with the bundled model `{pr['model']}` on `{pr['input']}` "
         f"({pr['steps']} hourly steps per forecast, {pr['threads']} thread(s)); median [min–max] over "
         "repeats after one warm-up call. CLI rows are whole processes (start-up, model load with "
         "sha256 check, input validation, netCDF write).", "",
         "| how | forecasts per call | seconds per call | forecasts/s |", "|---|---|---|---|"]
    names = {"api_single": "Python API, `load_model().predict(ds)`",
             "api_batch": f"Python API, {pr['n_init_batch']} init times in one call",
             "cli_single": "`svqcast predict IN -o OUT.nc`",
             "cli_batch": f"`svqcast predict` with {pr['n_init_batch']} `--init-time`"}
    for key, label in names.items():
        r = pr.get(key)
        if r:
            L.append(f"| {label} | {r['forecasts_per_call']} | {_spread_text(r['seconds_per_call'])} | "
                     f"{_spread_text(r['forecasts_per_s'])} |")
    L.append("")
    return L


def write_section(data: Mapping[str, Any], doc: Path) -> None:
    """Replace (or append) only this section of the shared benchmarks page."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    section = render_section(data).rstrip() + "\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1:] if nxt >= 0 else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip() + "\n\n" + section
    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, doc)


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
    p.add_argument("--predict-inits", type=int, default=24, help="initialisation times in the batch call")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--report", action="store_true", help="only rewrite the docs section from --out")
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    args = p.parse_args(argv)
    if args.report:
        write_section(json.loads(args.out.read_text()), args.doc)
        print(f"wrote the '{SECTION}' section of {args.doc}")
        return 0

    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    if data.get("schema") != SCHEMA:
        data = {"schema": SCHEMA}
    data["targets"] = TARGETS
    data["configs"] = {k: {"preset": v[0], "fused": v[1]} for k, v in CONFIGS.items() if k in args.configs}
    if "timing" in args.parts or "machine" not in data:
        data["machine"] = machine_info()  # the load average quoted is the one before the timing
    t0 = time.perf_counter()
    if "timing" in args.parts:
        if data.get("timing"):  # keep every earlier timing run: all of them are reported
            data.setdefault("timing_history", []).append(
                {"timing": data["timing"], "targets_met": data.get("targets_met")})
        load_before = os.getloadavg()
        data["timing"] = run_timing(args.configs, args.rounds, args.steps, args.warmup, args.threads)
        data["timing"]["measured"] = _now()
        data["timing"]["load_average_before"] = load_before
        data["timing"]["load_average_after"] = os.getloadavg()
        r = data["timing"]["ratios"]
        prev = data.get("targets_met") or {}
        data["targets_met"] = {
            "fused_vs_simvp": (r["svq-fused/simvp"]["median"] >= TARGETS["fused_vs_simvp_min"])
            if "svq-fused/simvp" in r else None,
            "fused_vs_materialised": (r["svq-fused/svq-materialised"]["median"] >= TARGETS["fused_vs_materialised_min"])
            if "svq-fused/svq-materialised" in r else prev.get("fused_vs_materialised"),
        }
        save(data, args.out)
    if "memory" in args.parts:
        data["memory"] = run_memory(args.configs, args.memory_steps, args.threads)
        data["memory_measured"] = _now()
        data["memory_load_average"] = os.getloadavg()
        save(data, args.out)
    if "predict" in args.parts:
        data["predict"] = run_predict(args.predict_repeats, args.threads, args.predict_inits)
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
