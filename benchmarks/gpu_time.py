#!/usr/bin/env python
"""Estimated GPU time of every paper row in docs/reproduce.md, from FLOPs and the training budget.

The estimate, per preset (plus `--set` overrides):

    FLOP = 2 * F * [epochs * (3 * N_train + N_val) + N_test]

* F: multiply-accumulates of one forecast, fvcore convention, from `svqcast models describe`
  (`flops_fused_per_forecast`: svqcast's fused SVQ, autoregressive calls included; the official
  materialised SVQ is `flops * model_calls`, also reported);
* 2 FLOP per MAC; a training sample costs about 3x its forward pass (forward + backward);
* `epochs` is the preset's full budget (early stopping can only shorten it: an upper bound);
* N_train / N_val / N_test: the sample counts of `DATASET_COUNTS` (svqcast's splits where known);
* hours = FLOP / RATE, RATE = 5e12 FLOP/s sustained fp32 (about a third of a V100's peak).

It ignores data loading, logging and checkpointing, so real runs are usually slower. Rescale
for your GPU by its sustained rate. Usage: .venv/bin/python benchmarks/gpu_time.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

RATE_FLOPS = 5e12

# (train, val, test) samples and where the numbers come from. None: not verifiable offline.
DATASET_COUNTS: dict[str, tuple[int | None, int | None, int | None, str]] = {
    "weatherbench-s": (52_561, 8_761, 17_497, "svqcast rule on 2010-2015 / 2016 / 2017-2018 hourly (docs/data.md)"),
    "weatherbench-m": (54_020, 1_428, 2_884, "svqcast rule, 6-hourly 1979-2015 / 2016 / 2017-2018 (docs/data.md)"),
    "taxibj": (19_954, 500, 500, "paper Table 1: 20,461 / 500; svqcast holds out the last 500 (+7) training windows"),
    "human36m": (73_404, None, 8_582, "meta files: 73,404 train lines (svqcast's train+val) / 8,582 test lines"),
    "kth": (None, None, None, "not published in the spec; per 1,000 training windows"),
    "kitticaltech": (None, None, None, "not published in the spec; per 1,000 training windows"),
}


def counts_for(dataset: str) -> tuple[int | None, int | None, int | None, str]:
    key = "weatherbench-s" if dataset.startswith("weatherbench-s") else dataset
    return DATASET_COUNTS[key]


def estimate(preset: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    from svqcast.config import load_config
    from svqcast.models.summary import describe_config

    cfg = load_config(preset, overrides)
    d = describe_config(cfg)
    epochs = int(cfg["train"]["epochs"])
    n_train, n_val, n_test, source = counts_for(cfg["data"]["dataset"])
    fused = float(d["flops_fused_per_forecast"])
    official = float(d["flops"]) * int(d["model_calls"])
    out: dict[str, Any] = {"preset": preset, "overrides": dict(overrides or {}), "epochs": epochs,
                           "flops_fused_per_forecast": fused, "flops_official_per_forecast": official,
                           "n_train": n_train, "n_val": n_val, "n_test": n_test, "counts_source": source}
    if n_train is None:
        per_k = 2 * fused * epochs * 3 * 1000 / RATE_FLOPS / 3600
        out["gpu_hours_per_1000_train_windows"] = per_k
        out["gpu_hours_official_per_1000_train_windows"] = per_k * official / fused
        return out
    samples = epochs * (3 * n_train + (n_val if n_val is not None else n_test)) + n_test
    out["gpu_hours"] = 2 * fused * samples / RATE_FLOPS / 3600
    out["gpu_hours_official"] = 2 * official * samples / RATE_FLOPS / 3600
    return out


TABLE_PRESETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "table2": [(f"weatherbench-s-t2m_{t}{q}", {}) for t in (
        "gsta", "incepu", "swin", "vit", "poolformer", "uniformer", "mlpmixer", "convmixer",
        "convnext", "van", "hornet", "moganet", "tau") for q in ("", "_svq")],
    "table3": [(f"{d}{q}", {}) for d in ("weatherbench-s-r_swin", "weatherbench-s-uv10_swin",
                                         "weatherbench-s-tcc_gsta", "weatherbench-m_moganet")
               for q in ("", "_svq", "_svq-frozen")],
    "table5": [(f"{d}{q}", {}) for d in ("taxibj_convnext", "taxibj_gsta", "kth_incepu",
                                         "kitticaltech_gsta", "human36m_gsta")
               for q in ("", "_svq", "_svq-frozen")],
    "table7": [("weatherbench-s-t2m_gsta_svq", {"model.codebook_size": n}) for n in (10, 1000)]
    + [("weatherbench-s-t2m_gsta_svq", {"model.nonlinear": False}),
       ("weatherbench-s-t2m_gsta_svq", {"model.middim": 1280, "model.codebook_size": 1280}),
       ("weatherbench-s-t2m_gsta_svq", {"model.out_relu": True}),
       ("weatherbench-s-t2m_gsta_svq", {"model.post_vq": True, "model.codebook_size": 1024,
                                        "model.codebook_init": "kaiming"})],
}


def _toml(value: Any) -> str:
    """A --set value as typed on the command line (strings quoted, booleans lower-case)."""
    if isinstance(value, str):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| preset | overrides | epochs | fwd GMAC / forecast (fused / official) | est. GPU h (fused) "
             "| est. GPU h (official SVQ) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ovr = " ".join(f"`--set {k}={_toml(v)}`" for k, v in r["overrides"].items()) or "–"
        if "gpu_hours" in r:
            h, ho = f"{r['gpu_hours']:.1f}", f"{r['gpu_hours_official']:.1f}"
        else:
            h = f"{r['gpu_hours_per_1000_train_windows']:.2f} per 1k windows"
            ho = f"{r['gpu_hours_official_per_1000_train_windows']:.2f} per 1k windows"
        lines.append(f"| `{r['preset']}` | {ovr} | {r['epochs']} | {r['flops_fused_per_forecast'] / 1e9:.2f} / "
                     f"{r['flops_official_per_forecast'] / 1e9:.2f} | {h} | {ho} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="JSON instead of markdown tables")
    p.add_argument("--tables", nargs="+", default=list(TABLE_PRESETS), choices=list(TABLE_PRESETS))
    args = p.parse_args(argv)
    result = {t: [estimate(pr, ovr) for pr, ovr in TABLE_PRESETS[t]] for t in args.tables}
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for t, rows in result.items():
            print(f"### {t}\n\n{markdown(rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
