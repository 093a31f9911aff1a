#!/usr/bin/env python
"""Markdown tables for docs/benchmarks.md from results/train_speed.json and
results/predict_speed.json (the "Training speed and predict throughput" section).

Usage: .venv/bin/python benchmarks/speed_report.py   (prints the tables to stdout)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _s(sp: dict[str, Any], digits: int = 3) -> str:
    if len(sp.get("values", [])) == 1:
        return f"{sp['median']:.{digits}g} (1 round)"
    return f"{sp['median']:.{digits}g} [{sp['min']:.{digits}g}–{sp['max']:.{digits}g}]"


def main_tables(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, res in data.get("main", {}).items():
        lines += [f"**{key.replace('_', ' ')}**", "",
                  "| variant | samples/s | s/step | vs official (per-round ratio) |", "|---|---|---|---|"]
        batch = res["variants"][0]["batch"]
        for name, sp in res["samples_per_s"].items():
            vs = res["vs_official"].get(name)
            lines.append(f"| {name} | {_s(sp)} | {batch / sp['median']:.2f} | {_s(vs) + 'x' if vs else '1'} |")
        lines.append("")
    return lines


def family_table(data: dict[str, Any]) -> list[str]:
    fam = data.get("families")
    if not fam:
        return []
    lines = ["| family | fp32 | fp32+cl | bf16 | bf16+cl | bf16 / fp32 | cl wins fp32 / bf16 |",
             "|---|---|---|---|---|---|---|"]
    for name, res in fam.items():
        if name in ("size", "batch"):
            continue
        sp = res["samples_per_s"]
        win = res["channels_last_wins"]
        lines.append(f"| {name} | {sp['fp32']['median']:.2f} | {sp['fp32+cl']['median']:.2f} "
                     f"| {sp['bf16']['median']:.2f} | {sp['bf16+cl']['median']:.2f} "
                     f"| {res['bf16_vs_fp32']['median']:.2f}x | "
                     f"{'yes' if win['32'] else 'no'} / {'yes' if win['bf16'] else 'no'} |")
    return [*lines, ""]


def predict_table(pred: dict[str, Any]) -> list[str]:
    lines = ["| how | forecasts/s | first call (s) |", "|---|---|---|"]
    for name, sp in pred["forecasts_per_s"].items():
        lines.append(f"| {name} | {_s(sp)} | {pred['first_call_seconds'][name]:.2f} |")
    lines += ["", "| ratio | median [min–max] |", "|---|---|"]
    lines += [f"| {k} | {_s(v)}x |" for k, v in pred["ratios"].items()]
    return [*lines, ""]


def main() -> int:
    train = REPO / "results" / "train_speed.json"
    pred = REPO / "results" / "predict_speed.json"
    out: list[str] = []
    if train.exists():
        data = json.loads(train.read_text())
        out += main_tables(data) + family_table(data)
        if "loss" in data:
            runs = data["loss"]["runs"]
            out += [f"short run val loss: fp32 {runs['32']['val_loss']:.5f}, bf16 {runs['bf16']['val_loss']:.5f}, "
                    f"gap {100 * data['loss']['relative_gap']:.3f} %", ""]
        for part, run in data.get("runs", {}).items():
            out.append(f"{part}: started {run['started']}, load {run['machine'].get('load_average')}, "
                       f"end {run['load_average_end']}")
    if pred.exists():
        p = json.loads(pred.read_text())
        out += ["", *predict_table(p), f"predict: started {p['started']}, load {p['machine'].get('load_average')}"]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
