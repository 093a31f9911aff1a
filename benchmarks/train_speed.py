#!/usr/bin/env python
"""Training speed of svqcast against the official formulation (issue: speed fast path).

Parts (`--parts`, default all; each part's result is merged into the JSON, so parts can be
run one at a time):

* `main`: samples/s of the full `weatherbench-s-t2m_gsta_svq` preset at batch 4 and 16:
  `official` (SVQ `fused=False`, explicit attention, fp32: the official formulation),
  `fp32` (svqcast's default), `fp32+cl` (channels_last), `bf16` (autocast),
  `bf16+cl`, and with `--compile` also `fp32+compile` / `bf16+cl+compile`. Interleaved rounds
  in one process; medians, [min, max], per-round ratios against `official`.
  On a CPU without native bf16 (no avx512_bf16/AMX) bf16 is emulated and many times slower;
  the bf16 variants then run at batch 4 only unless `--bf16-everywhere`.
* `families`: every translator family, fp32 vs bf16, each with and without channels_last,
  at a reduced size (hid_S 16, hid_T 64, N_T 4, batch 2, 12x1x32x64); what wins feeds
  `svqcast.models.fastpath.CHANNELS_LAST_WINS`.
* `loss`: a short fixed training run (same seed, same batches) of the bundled model's preset
  on the bundled ERA5 sample, fp32 vs bf16: final validation losses and their gap.
* `profile`: a torch.profiler table (top operators by self CPU time) of one training step of
  the main preset (`--profile-batch`, default 4), fp32, bf16 and official: where the time goes.

Usage: .venv/bin/python benchmarks/train_speed.py [--quick] [--parts main families loss profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_common import (  # noqa: E402
    REPO,
    Variant,
    build_step,
    interleaved,
    machine_info,
    ratio,
    save_json,
    short_run,
    variant_dict,
)

DEFAULT_OUT = REPO / "results" / "train_speed.json"
PRESET = "weatherbench-s-t2m_gsta_svq"
TARGETS = {"fp32_vs_official_min": 2.5, "bf16_fast_vs_official_min": 6.0, "bf16_val_loss_gap_max": 0.01}


def main_variants(batch: int, with_bf16: bool, with_compile: bool, native: bool) -> list[Variant]:
    vs = [Variant("official", PRESET, batch, fused_svq=False, fused_attn=False),
          Variant("fp32", PRESET, batch), Variant("fp32+cl", PRESET, batch, channels_last=True)]
    if with_bf16:
        vs.append(Variant("bf16", PRESET, batch, "bf16"))
    if with_bf16 and native:  # emulated bf16: channels_last is measured in `families` only
        vs.append(Variant("bf16+cl", PRESET, batch, "bf16", True))
    if with_compile:
        vs.append(Variant("fp32+compile", PRESET, batch, compile=True))
        if with_bf16:
            vs.append(Variant("bf16+cl+compile", PRESET, batch, "bf16", True, True))
    return vs


def run_main(args: argparse.Namespace, native: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for batch in args.batches:
        bf16 = native or args.bf16_everywhere or batch == min(args.batches)
        variants = main_variants(batch, bf16, args.compile, native)
        steps, models = {}, []
        for v in variants:
            fn, model = build_step(v)
            steps[v.name] = fn
            models.append(model)
        slow = {} if native else {v.name: args.bf16_rounds for v in variants if v.precision == "bf16"}
        res = interleaved(steps, {v.name: v.batch for v in variants}, args.rounds, 1,
                          log=lambda s, b=batch: print(f"[main b{b}] {s}", flush=True), max_rounds=slow)
        res["variants"] = [variant_dict(v) for v in variants]
        res["vs_official"] = {v.name: ratio(res, v.name, "official") for v in variants if v.name != "official"}
        res["load_average_after"] = list(os.getloadavg())
        out[f"batch_{batch}"] = res
        del steps, models
    return out


def run_families(args: argparse.Namespace) -> dict[str, Any]:
    from svqcast.models.translators import TRANSLATOR_NAMES

    small = (("in_shape", [12, 1, 32, 64]), ("hid_S", 16), ("hid_T", 64), ("N_T", 4),
             ("quantizer", "none"), ("codebook_size", 64))
    out: dict[str, Any] = {"size": dict(small), "batch": 2}
    for fam in TRANSLATOR_NAMES:
        ov = (*small, ("translator", fam))
        variants = [Variant(f"{p}{'+cl' if cl else ''}", "_defaults", 2, "bf16" if p == "bf16" else "32", cl,
                            overrides=ov) for p in ("fp32", "bf16") for cl in (False, True)]
        steps = {v.name: build_step(v)[0] for v in variants}
        res = interleaved(steps, {v.name: 2 for v in variants}, args.family_rounds, 1,
                          log=lambda s, f=fam: print(f"[families {f}] {s}", flush=True))
        med = {k: v["median"] for k, v in res["samples_per_s"].items()}
        res["bf16_vs_fp32"] = ratio(res, "bf16", "fp32")
        res["channels_last_wins"] = {"32": med["fp32+cl"] > med["fp32"], "bf16": med["bf16+cl"] > med["bf16"]}
        out[fam] = res
    return out


def run_loss(args: argparse.Namespace) -> dict[str, Any]:
    runs = {p: short_run(p, args.loss_steps) for p in ("32", "bf16")}
    for p, r in runs.items():
        print(f"[loss] {p}: val {r['val_loss']:.5f} (train {r['train_loss_first']:.4f} -> "
              f"{r['train_loss_last']:.4f}, {r['seconds']:.1f} s)", flush=True)
    gap = abs(runs["bf16"]["val_loss"] - runs["32"]["val_loss"]) / runs["32"]["val_loss"]
    return {"runs": runs, "relative_gap": gap, "within_target": gap <= TARGETS["bf16_val_loss_gap_max"]}


def run_profile(args: argparse.Namespace) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    out: dict[str, Any] = {}
    b = args.profile_batch
    for v in (Variant("fp32", PRESET, b), Variant("bf16", PRESET, b, "bf16"),
              Variant("official", PRESET, b, fused_svq=False, fused_attn=False)):
        step, _ = build_step(v)
        step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows)
        out[v.name] = {"table": table, "top": [
            {"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1000, "calls": e.count}
            for e in sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[: args.profile_rows]]}
        print(f"[profile {v.name}]\n{table}", flush=True)
    return out


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """Targets of the issue against what was measured."""
    s: dict[str, Any] = {}
    for key, res in (data.get("main") or {}).items():
        r = res["vs_official"]
        fast = max((n for n in r if n.startswith("bf16")), key=lambda n: r[n]["median"], default=None)
        s[key] = {"fp32_vs_official": r["fp32"]["median"],
                  "fp32_met": r["fp32"]["median"] >= TARGETS["fp32_vs_official_min"],
                  "best_bf16": fast, "best_bf16_vs_official": r[fast]["median"] if fast else None,
                  "bf16_met": bool(fast) and r[fast]["median"] >= TARGETS["bf16_fast_vs_official_min"]}
    if "loss" in data:
        s["bf16_val_loss_gap"] = data["loss"]["relative_gap"]
    return s


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["main", "families", "loss", "profile"],
                   choices=["main", "families", "loss", "profile"])
    p.add_argument("--batches", nargs="+", type=int, default=[4, 16])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--family-rounds", type=int, default=3)
    p.add_argument("--bf16-rounds", type=int, default=2, help="rounds of emulated (non-native) bf16 variants")
    p.add_argument("--loss-steps", type=int, default=60)
    p.add_argument("--profile-rows", type=int, default=25)
    p.add_argument("--profile-batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile", action="store_true", help="also time torch.compile variants (slow first call)")
    p.add_argument("--bf16-everywhere", action="store_true", help="bf16 variants at every batch even when emulated")
    p.add_argument("--quick", action="store_true", help="fewer rounds and steps (~10-15 min on 2 cores)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = p.parse_args(argv)
    if a.quick:
        a.rounds, a.family_rounds, a.loss_steps = min(a.rounds, 3), min(a.family_rounds, 1), min(a.loss_steps, 30)
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    from svqcast.models.fastpath import native_bf16

    native = native_bf16("cpu")
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    data.update(schema="svqcast-train-speed/1", targets=TARGETS)
    runners = {"main": lambda: run_main(args, native), "families": lambda: run_families(args),
               "loss": lambda: run_loss(args), "profile": lambda: run_profile(args)}
    for part in args.parts:
        info = machine_info()
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        data[part] = runners[part]()
        data.setdefault("runs", {})[part] = {"started": started, "machine": info, "argv": sys.argv[1:],
                                             "load_average_end": list(os.getloadavg())}
        data["summary"] = summarise(data)
        save_json(data, args.out)
        print(f"wrote {part} to {args.out}", flush=True)
    print(json.dumps(data["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
