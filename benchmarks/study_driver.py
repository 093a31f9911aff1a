"""The study's driver: plan the runs, skip the finished ones, run the rest in child processes
a few at a time, and merge each finished run into the JSON as it ends."""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from study_design import (
    ABLATION_DATASET,
    ABLATION_SEEDS,
    ABLATION_SIZES,
    ALL_MODELS,
    BUDGET_HOURS,
    DATASETS,
    RECIPES,
    Budget,
    RunSpec,
    check_family,
    plan_runs,
)
from study_records import (
    done_ids,
    done_on_disk,
    load_results,
    machine_info,
    machine_seconds,
    put_run,
    save_results,
    supersede,
    utc_now,
)
from study_run import run_in_child
from study_stats import ALPHA
from study_summary import fmt


def _budget_from_args(args: argparse.Namespace) -> Budget:
    steps: dict[str, int] = {}
    for item in args.steps_per_epoch or []:
        name, _, value = item.partition("=")
        if name not in DATASETS or not value.isdigit():
            raise SystemExit(f"--steps-per-epoch expects DATASET=N with DATASET in {list(DATASETS)}, got {item!r}")
        steps[name] = int(value)
    return Budget(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size,
                  steps_per_epoch=steps, max_val_steps=args.max_val_steps)


def _settings(args: argparse.Namespace, budget: Budget, specs: Sequence[RunSpec]) -> dict[str, Any]:
    return {"budget": asdict(budget), "recipes": dict(RECIPES), "seeds": args.seeds, "datasets": list(DATASETS),
            "models": sorted({s.model for s in specs}), "jobs": args.jobs, "threads_per_job": args.threads,
            # the whole design, whatever subset this invocation runs: the report says "complete"
            # only when every run of the study is in the JSON
            "planned_runs": len(plan_runs(budget, range(args.seeds))), "invocation_runs": len(specs),
            "alpha": ALPHA, "budget_hours": BUDGET_HOURS,
            "model_labels": {k: m.label for k, m in ALL_MODELS.items()}, "dataset_descriptions": DATASETS,
            "ablation_dataset": ABLATION_DATASET, "ablation_sizes": list(ABLATION_SIZES),
            "ablation_seeds": ABLATION_SEEDS,
            "command": portable_command(getattr(args, "argv", []))}


#: options whose values are paths on the machine that ran the study (not in the repository)
LOCAL_PATH_OPTIONS = ("--work-dir", "--out", "--doc", "--img-dir")


def portable_command(argv: Sequence[str]) -> str:
    """The invocation as the report shows it: without options that name local paths, so the
    committed JSON and report never point outside the repository."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in LOCAL_PATH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in LOCAL_PATH_OPTIONS)):
            kept.append(arg)
    return " ".join(["benchmarks/study.py", *kept])


def _finish_run(data: dict[str, Any], record: dict[str, Any], session: dict[str, Any], t0: float,
                out: Path, log_dir: Path, rerun: str | None = None) -> None:
    """Merge one finished run into the results and save them (atomic). A failed rerun leaves
    the run it was meant to replace in place."""
    if rerun and record["status"] == "ok":
        supersede(data, record, rerun)
    elif not (rerun and record["run_id"] in done_ids(data)):
        put_run(data, record)
    session["runs_done"] += record["status"] == "ok"
    session["wall_seconds"] = time.perf_counter() - t0
    data["wall_seconds"] = machine_seconds(data["sessions"])
    _update_references(data, record)
    save_results(data, out)
    msg = (f"test {fmt(record['test'].get('rmse'))} RMSE, {record['epochs_run']} epochs "
           f"({record['stop_reason']}), {record['train_seconds']:.0f} s" if record["status"] == "ok"
           else f"FAILED (rc {record.get('returncode')}), see {log_dir}")
    print(f"[{utc_now()}] done  {record['run_id']}: {msg}", flush=True)


def run_study(args: argparse.Namespace) -> dict[str, Any]:
    from svqcast.config import load_config

    budget = _budget_from_args(args)
    specs = plan_runs(budget, range(args.seeds), args.datasets, args.models, ablation=not args.no_ablation)
    check_family(specs, lambda preset, ovr: load_config(preset, ovr))
    data = load_results(args.out)
    settings = _settings(args, budget, specs)
    if data["settings"] and data["settings"].get("budget") != settings["budget"]:
        raise SystemExit(f"{args.out} was made with budget {data['settings']['budget']}; "
                         f"this invocation asks for {settings['budget']}. Use another --out.")
    data["settings"], data["machine"] = settings, machine_info()
    rerun = args.rerun or None
    todo = [s for s in specs if s.run_id not in done_ids(data, rerun)]
    if todo:  # prepare the embedded samples once, here, rather than racing in two children
        from svqcast.data import get_split_dataset

        for ds in sorted({s.dataset for s in todo}):
            get_split_dataset(ds, "train")
    print(f"study: {len(specs)} runs planned, {len(specs) - len(todo)} already done, "
          f"{len(todo)} to go ({args.jobs} at a time, {args.threads} thread(s) each)", flush=True)
    session = {"start": utc_now(), "pid": os.getpid(), "end": None, "wall_seconds": 0.0, "runs_done": 0,
               "stopped_early": False, **({"rerun_reason": rerun} if rerun else {})}
    data["sessions"].append(session)
    save_results(data, args.out)
    t0 = time.perf_counter()
    deadline = t0 + args.time_budget_min * 60 if args.time_budget_min else math.inf
    work_dir, log_dir = args.work_dir, args.work_dir / "logs"
    pending = list(todo)
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        running: dict[cf.Future, RunSpec] = {}
        while pending or running:
            while pending and len(running) < args.jobs and time.perf_counter() < deadline:
                spec = pending.pop(0)
                if spec.run_id in done_on_disk(args.out, rerun):  # finished by another invocation
                    print(f"[{utc_now()}] skip  {spec.run_id}: already in {args.out}", flush=True)
                    continue
                print(f"[{utc_now()}] start {spec.run_id}", flush=True)
                running[pool.submit(run_in_child, spec, work_dir, args.threads, log_dir)] = spec
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                running.pop(fut)
                _finish_run(data, fut.result(), session, t0, args.out, log_dir, rerun)
    session.update(stopped_early=bool(pending), end=utc_now(), wall_seconds=time.perf_counter() - t0)
    data["wall_seconds"] = machine_seconds(data["sessions"])
    save_results(data, args.out)
    if pending:
        print(f"study: time budget reached with {len(pending)} runs not started; run again to resume", flush=True)
    return data


def _update_references(data: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Persistence / climatology depend only on the dataset: keep the first ones reported."""
    if record.get("status") != "ok":
        return
    refs = data.setdefault("references", {}).setdefault(record["dataset"], {})
    for name, scores in (record.get("references") or {}).items():
        refs.setdefault(name, scores)
    units = data.setdefault("units", {})
    if record["dataset"] not in units and record.get("units"):
        units[record["dataset"]] = record["units"]
