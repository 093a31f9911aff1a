"""One run of the study, in a child process: train through svqcast.api.train, score through
svqcast.api.evaluate, and return its JSON record."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from study_design import REPO, RunSpec
from study_records import json_default, utc_now

#: the entry point the children run (`study.py _run ...`)
STUDY_SCRIPT = Path(__file__).resolve().with_name("study.py")


def _find_number(d: Any, names: Sequence[str]) -> float | None:
    """First finite number stored under one of `names` (searching nested dicts breadth-first)."""
    queue = [d]
    while queue:
        cur = queue.pop(0)
        if not isinstance(cur, Mapping):
            continue
        for name in names:
            v = cur.get(name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
        queue.extend(v for v in cur.values() if isinstance(v, Mapping))
    return None


def read_history(run_dir: Path, max_epochs: int) -> dict[str, Any]:
    """The run's validation curve (one value per epoch), best epoch, optimizer steps and why it
    stopped, from its metrics.jsonl. The trainer stops early exactly when it finishes before
    `train.epochs`, so fewer epochs than the cap means early stopping."""
    rows = []
    path = run_dir / "metrics.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    vals = [_find_number(r, ("val_loss", "val/loss")) for r in rows]
    curve = [v for v in vals if v is not None]
    best = min(range(len(curve)), key=curve.__getitem__) if curve else None
    return {"epochs_run": len(rows), "max_epochs": max_epochs, "val_loss": curve,
            "best_val": curve[best] if best is not None else None,
            "best_epoch": None if best is None else best + 1,
            "optimizer_steps": int(rows[-1].get("step", 0)) if rows else 0,
            "stop_reason": "early_stopping" if len(rows) < max_epochs else "max_epochs"}


def execute_run(spec: RunSpec, work_dir: Path, threads: int) -> dict[str, Any]:
    """Train and evaluate one run; return its JSON record."""
    import torch

    torch.set_num_threads(max(1, threads))
    from svqcast import api

    run_dir = work_dir / spec.dataset / spec.model / f"seed{spec.seed}"
    if run_dir.exists():  # an interrupted earlier attempt: start it again from scratch
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    overrides = dict(spec.overrides)
    overrides["train.seed"] = spec.seed
    t0 = time.perf_counter()
    out_dir = api.train(spec.preset, overrides=overrides, run_dir=run_dir)
    train_s = time.perf_counter() - t0
    out_dir = Path(out_dir)
    t1 = time.perf_counter()
    scores = api.evaluate(out_dir, dataset=spec.dataset, split="test")
    eval_s = time.perf_counter() - t1
    cfg = json.loads((out_dir / "config.json").read_text()) if (out_dir / "config.json").exists() else {}
    cfg = cfg.get("config", cfg)
    all_scores = extract_all(scores, cfg)
    hist = read_history(out_dir, int(overrides["train.epochs"]))
    return {
        "run_id": spec.run_id, "status": "ok", "dataset": spec.dataset, "model": spec.model,
        "group": spec.group, "seed": spec.seed, "preset": spec.preset, "overrides": overrides,
        "config": cfg, "units": (scores.get("units") or [None])[0], **hist,
        "test": all_scores.get("model", {}),
        "references": {k: v for k, v in all_scores.items() if k != "model"},
        "evaluation": {"scores": scores.get("scores"), "units": scores.get("units"),
                       "samples": scores.get("samples"), "quantizer": scores.get("quantizer"),
                       "climatology": scores.get("climatology"), "weights": scores.get("weights")},
        "train_seconds": train_s, "eval_seconds": eval_s, "threads": threads, "finished": utc_now(),
    }


def plain_scores(scores: Mapping[str, Any], kind: str, cells: int) -> dict[str, float | None]:
    """MAE and RMSE as plain means over every value, in physical units, from one forecast's
    `svqcast.api.evaluate` scores; plus the latitude-weighted RMSE for weather data.

    For weather data svqcast's OpenSTL-compatible `mae` / `rmse` are already plain means
    (RMSE = sqrt of the global MSE). For the other kinds OpenSTL sums the error over the
    C x H x W values of a frame, so dividing by `cells` = C*H*W gives the plain mean back.
    `lat_rmse` is the WeatherBench2-style cell-area-weighted RMSE, averaged over lead times
    and channels (only defined when the grid has latitudes).
    """
    mae, mse = scores.get("mae"), scores.get("mse")
    if kind != "weather" and cells > 0:
        mae = mae / cells if mae is not None else None
        mse = mse / cells if mse is not None else None
    rmse = scores.get("rmse") if kind == "weather" else None
    if rmse is None and mse is not None:
        rmse = math.sqrt(mse)
    lat_rmse = None
    wb2_rmse = (scores.get("wb2") or {}).get("rmse") or {}
    vals = [v for v in wb2_rmse.values() if v is not None]
    if kind == "weather" and vals:
        lat_rmse = math.fsum(vals) / len(vals)
    return {"mae": mae, "rmse": rmse, "mse": mse, "lat_rmse": lat_rmse}


def extract_all(ev: Mapping[str, Any], cfg: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """forecast name ("model", "persistence", "climatology") -> plain scores."""
    shape = (cfg.get("model") or {}).get("in_shape") or [0, 0, 0, 0]
    cells = int(shape[1]) * int(shape[2]) * int(shape[3])
    kind = str(ev.get("kind", "weather"))
    if kind == "weather" and not (ev.get("weights") or "").startswith("latitude"):
        kind = "weather-no-lat"  # a weather grid without latitudes: no lat-weighted RMSE
    out = {}
    for name, sc in (ev.get("scores") or {}).items():
        res = plain_scores(sc, "weather" if kind.startswith("weather") else kind, cells)
        if kind == "weather-no-lat":
            res["lat_rmse"] = None
        out[name] = res
    return out


def child_main(argv: Sequence[str]) -> int:
    """`study.py _run SPEC.json RESULT.json WORK_DIR THREADS`: one run in a fresh process."""
    spec_path, result_path, work_dir, threads = argv
    spec = RunSpec(**json.loads(Path(spec_path).read_text()))
    record = execute_run(spec, Path(work_dir), int(threads))
    Path(result_path).write_text(json.dumps(record, default=json_default))
    return 0


def run_in_child(spec: RunSpec, work_dir: Path, threads: int, log_dir: Path) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = spec.run_id.replace("/", "__")
    spec_path, result_path = log_dir / f"{stem}.spec.json", log_dir / f"{stem}.result.json"
    spec_path.write_text(json.dumps(asdict(spec)))
    result_path.unlink(missing_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    with (log_dir / f"{stem}.log").open("w") as log:
        proc = subprocess.run(
            [sys.executable, str(STUDY_SCRIPT), "_run", str(spec_path), str(result_path),
             str(work_dir), str(threads)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )
    if proc.returncode == 0 and result_path.exists():
        return json.loads(result_path.read_text())
    tail = (log_dir / f"{stem}.log").read_text()[-2000:]
    return {"run_id": spec.run_id, "status": "failed", "dataset": spec.dataset, "model": spec.model,
            "group": spec.group, "seed": spec.seed, "returncode": proc.returncode,
            "seconds": time.perf_counter() - t0, "log_tail": tail, "finished": utc_now()}
