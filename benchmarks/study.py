#!/usr/bin/env python
"""Does SVQ help? A reproducible study, trained to convergence, on the real data svqcast ships.

The SVQ paper (arXiv:2312.03406) reports that SVQ improves SimVP on every benchmark and that a
large frozen random codebook is almost as good as a learned one. The full-size models cannot be
trained on a 2-core CPU, so this script tests the claim at the size of svqcast's bundled zoo
models, on three embedded real samples (`era5-uk-t2m`, `nyc-taxi`, `nyc-bike`), with one gSTA
family per dataset:

* SimVP with the MSE loss (the paper's SimVP baseline) and with the MAE loss,
* SimVP + SVQ with a learnable and with a frozen codebook (N = 10000, MAE, as the SVQ configs),
* SimVP + VQ (MSE, as the official VQ-baseline configs),
* on nyc-bike: the codebook-size ablation N = 10, 1000, 10000, 100000, frozen and learnable,

each with at least three seeds, every run on full epochs until early stopping on the validation
split (patience 5; the epoch cap is high enough that early stopping ends most runs) and scored
on the test split against the simple references `svqcast evaluate` reports. A model whose
seed-mean test error does not beat the climatology is flagged as not converged and left out of
the comparisons. Every run goes through svqcast's public API (`svqcast.api.train`,
`svqcast.api.evaluate`), so the study also exercises the product end to end.

Outputs: `results/study.json` (one record per run: resolved config, seed, the validation curve
`val_loss` (one value per epoch), `stop_reason`, test scores in physical units, train seconds;
the reference forecasts; the wall time per session) and `docs/results.md` + `docs/img/study_*.png`,
generated *from the JSON* (`--report-only` regenerates them without training). The study is
resumable across sessions: runs already in the JSON are skipped, `--time-budget-min` stops
starting new runs after a while, and every session's wall time is recorded. Two invocations may
share the JSON (saves merge under a lock, and a run another one finished is not started again);
machine time is the union of the sessions' wall-clock intervals.

Why child processes: each run gets a fresh interpreter with a fixed thread count, so runs can go
two at a time on two cores without OpenMP oversubscription, and a crash costs one run, not the
study.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA = "svqcast-study/2"
DEFAULT_JSON = REPO / "results" / "study.json"
DEFAULT_DOC = REPO / "docs" / "results.md"
DEFAULT_IMG = REPO / "docs" / "img"
ALPHA = 0.05  # significance level of the Welch test used in the verdicts
#: the machine budget of the whole study (all sessions together), in hours
BUDGET_HOURS = 5.0

# ----------------------------------------------------------------------------------------------
# The study design (data, not code): datasets, their recipes, the model family, the ablation.
# ----------------------------------------------------------------------------------------------

DATASETS: dict[str, str] = {
    "era5-uk-t2m": "ERA5 2 m temperature, UK, March 2019, 32x48 grid, hourly, last 24 h -> 12 h, "
                   "residual from the same hour yesterday + persisting anomaly",
    "nyc-taxi": "NYC taxi in/out flows 2016, 16x12 grid, 4 -> 4 half-hourly, departures from the "
                "half-hour-of-week average",
    "nyc-bike": "NYC bike in/out flows 2016, 14x8 grid, 4 -> 4 half-hourly, departures from the "
                "half-hour-of-week average",
}

_FLOW_RECIPE: dict[str, Any] = {
    "model.hid_S": 16, "model.hid_T": 64, "model.N_T": 4, "model.drop_path": 0.1,
    "model.residual": "climatology", "model.residual_period": 336,
    "train.lr": 1e-3, "train.scheduler": "cosine", "train.warmup_epochs": 0,
}
# The bundled zoo models' recipes (their presets: era5-uk-t2m_gsta_svq_24h, nyc-*_gsta_svq_week),
# applied to every member of a dataset's family, so that the family differs only in quantizer
# and loss and SVQ is tested on the models svqcast actually ships.
RECIPES: dict[str, dict[str, Any]] = {
    "era5-uk-t2m": {
        "model.in_shape": [25, 1, 32, 48], "model.out_frames": 12,
        "model.hid_S": 8, "model.hid_T": 32, "model.N_T": 2, "model.drop_path": 0.1,
        "model.residual": "anomaly", "model.residual_period": 24,
        "train.lr": 1e-3, "train.scheduler": "cosine", "train.warmup_epochs": 0,
    },
    "nyc-taxi": dict(_FLOW_RECIPE),
    "nyc-bike": dict(_FLOW_RECIPE),
}


@dataclass(frozen=True)
class ModelDef:
    """One member of the model family: which preset it starts from and what it changes."""

    key: str
    label: str
    preset: str  # "{ds}" is replaced by the dataset name
    overrides: Mapping[str, Any]
    group: str = "main"  # "main" or "ablation"
    datasets: tuple[str, ...] = tuple(DATASETS)


# The loss follows the official configs: SVQ with MAE, the VQ baseline with MSE, plain SimVP
# with MSE (OpenSTL's SimVP always uses MSE). SimVP with MAE isolates the effect of SVQ from
# that of the loss.
MAIN_MODELS: tuple[ModelDef, ...] = (
    ModelDef("simvp-mse", "SimVP (MSE)", "{ds}_gsta", {"model.quantizer": "none", "train.loss": "mse"}),
    ModelDef("simvp-mae", "SimVP (MAE)", "{ds}_gsta", {"model.quantizer": "none", "train.loss": "mae"}),
    ModelDef("svq-learnable", "SimVP+SVQ learnable", "{ds}_gsta_svq",
             {"model.quantizer": "svq", "model.codebook_size": 10000, "train.loss": "mae"}),
    ModelDef("svq-frozen", "SimVP+SVQ frozen", "{ds}_gsta_svq",
             {"model.quantizer": "svq-frozen", "model.codebook_size": 10000, "train.loss": "mae"}),
    ModelDef("vq", "SimVP+VQ", "{ds}_gsta", {"model.quantizer": "vq", "train.loss": "mse"}),
)

ABLATION_DATASET = "nyc-bike"  # the cheapest of the three
ABLATION_SIZES = (10, 1000, 10000, 100000)
#: seeds of the ablation's new runs (N = 10000 reuses the main family's three). Two: enough for
#: a spread per size inside BUDGET_HOURS (the three seeds at N = 10000 give the reference spread);
#: a third would take the whole study past the budget
ABLATION_SEEDS = 2


def _ablation_models() -> tuple[ModelDef, ...]:
    out: list[ModelDef] = []
    for n in ABLATION_SIZES:
        if n == 10000:
            continue  # N = 10000 is the main family's svq-learnable / svq-frozen: reused, not rerun
        for kind, quantizer in (("learnable", "svq"), ("frozen", "svq-frozen")):
            out.append(ModelDef(
                f"svq-{kind}-n{n}", f"SimVP+SVQ {kind} N={n}", "{ds}_gsta_svq",
                {"model.quantizer": quantizer, "model.codebook_size": n, "train.loss": "mae"},
                group="ablation", datasets=(ABLATION_DATASET,),
            ))
    return tuple(out)


ABLATION_MODELS = _ablation_models()
ALL_MODELS: dict[str, ModelDef] = {m.key: m for m in MAIN_MODELS + ABLATION_MODELS}

# The keys that may differ between members of the family (all in the model definitions above);
# `check_family` refuses any other difference.
VARYING_KEYS = ("model.quantizer", "model.codebook_size", "model.codebook_init", "train.loss")


@dataclass(frozen=True)
class Budget:
    """How much training each run gets: full epochs until early stopping (patience 5) or the
    epoch cap. `steps_per_epoch` (0 = the full split) and `max_val_steps` exist for smoke tests."""

    epochs: int = 40
    patience: int = 5
    batch_size: int = 16
    steps_per_epoch: Mapping[str, int] = field(default_factory=dict)
    max_val_steps: int = 0  # 0 = the whole validation split; >0 caps its batches (smoke tests)

    def overrides(self, dataset: str) -> dict[str, Any]:
        """Dotted overrides applied on top of every preset of the family for `dataset`."""
        return {
            **RECIPES[dataset],
            "train.epochs": self.epochs,
            "train.patience": self.patience,
            "train.batch_size": self.batch_size,
            "train.val_batch_size": self.batch_size,
            "train.max_steps_per_epoch": int(self.steps_per_epoch.get(dataset, 0)),
            "train.max_val_steps": self.max_val_steps,
        }


@dataclass(frozen=True)
class RunSpec:
    dataset: str
    model: str
    seed: int
    preset: str
    overrides: dict[str, Any]
    group: str = "main"

    @property
    def run_id(self) -> str:
        return f"{self.dataset}/{self.model}/seed{self.seed}"


def plan_runs(
    budget: Budget,
    seeds: Sequence[int],
    datasets: Sequence[str] = tuple(DATASETS),
    models: Sequence[str] | None = None,
    ablation: bool = True,
    ablation_seeds: int = ABLATION_SEEDS,
) -> list[RunSpec]:
    """Every run of the study: the main family seed-major, then the ablation seed-major (its
    first `ablation_seeds` seeds). If the
    study is cut short, every main model has the same number of seeds (rather than some models
    all seeds and others none), and the main comparison is complete before the ablation."""
    keys = list(models) if models else [m.key for m in MAIN_MODELS] + (
        [m.key for m in ABLATION_MODELS] if ablation else [])
    unknown = [k for k in keys if k not in ALL_MODELS]
    if unknown:
        raise SystemExit(f"unknown study model(s) {unknown}; choose from {sorted(ALL_MODELS)}")
    specs: list[RunSpec] = []
    for group in ("main", "ablation"):
        for seed in seeds if group == "main" else list(seeds)[:ablation_seeds]:
            for ds in datasets:
                for key in keys:
                    mdef = ALL_MODELS[key]
                    if mdef.group != group or ds not in mdef.datasets:
                        continue
                    ovr = {**budget.overrides(ds), **dict(mdef.overrides)}
                    specs.append(RunSpec(ds, key, int(seed), mdef.preset.format(ds=ds), ovr, mdef.group))
    return specs


def check_family(specs: Sequence[RunSpec], resolve: Callable[[str, Mapping[str, Any]], dict]) -> None:
    """Fail before training if two runs of one dataset differ in anything but the varying keys.

    The SVQ presets may carry their own training settings (lr, init ...); the comparison is only
    fair if the backbone and the budget are identical, so any such difference is an error here
    (fix it by adding the key to the budget overrides).
    """
    by_ds: dict[str, list[tuple[RunSpec, dict]]] = {}
    for spec in specs:
        by_ds.setdefault(spec.dataset, []).append((spec, flatten(resolve(spec.preset, spec.overrides))))
    for ds, rows in by_ds.items():
        ref_spec, ref = rows[0]
        for spec, flat in rows[1:]:
            for key in sorted(set(ref) | set(flat)):
                if key.startswith(("model.", "train.", "data.")) is False:
                    continue
                if key in VARYING_KEYS or key == "train.seed":
                    continue
                if ref.get(key) != flat.get(key):
                    raise SystemExit(
                        f"study family mismatch on {ds}: {key} = {ref.get(key)!r} in "
                        f"{ref_spec.run_id} but {flat.get(key)!r} in {spec.run_id}; pin it in "
                        "Budget.overrides() so every member shares it")


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


# ----------------------------------------------------------------------------------------------
# Statistics: mean, sample std, Welch's t-test (Student-t tail from scipy.stats).
# ----------------------------------------------------------------------------------------------


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """n, mean, sample standard deviation (ddof = 1; None for a single value), min, max."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(xs), "max": max(xs)}


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` (possibly fractional) degrees of freedom."""
    from scipy import stats

    if math.isnan(t) or df <= 0:
        return float("nan")
    return float(2.0 * stats.t.sf(abs(t), df))


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Welch's unequal-variance t-test of mean(a) - mean(b).

    Returns diff, t, df (Welch-Satterthwaite), two-sided p and the combined standard deviation
    sqrt(s_a^2 + s_b^2) used in the "within noise" rule. With fewer than two values on a side
    no test is possible and p is None.
    """
    sa, sb = summarize(a), summarize(b)
    out: dict[str, Any] = {"n_a": sa["n"], "n_b": sb["n"], "diff": None, "t": None, "df": None,
                           "p": None, "combined_std": None}
    if sa["n"] == 0 or sb["n"] == 0:
        return out
    out["diff"] = sa["mean"] - sb["mean"]
    if sa["n"] < 2 or sb["n"] < 2:
        return out
    va, vb = sa["std"] ** 2 / sa["n"], sb["std"] ** 2 / sb["n"]
    out["combined_std"] = math.sqrt(sa["std"] ** 2 + sb["std"] ** 2)
    se2 = va + vb
    if se2 == 0.0:
        out["t"] = 0.0 if out["diff"] == 0 else math.copysign(math.inf, out["diff"])
        out["df"] = float(sa["n"] + sb["n"] - 2)
        out["p"] = 1.0 if out["diff"] == 0 else 0.0
        return out
    out["t"] = out["diff"] / math.sqrt(se2)
    out["df"] = se2 ** 2 / ((va ** 2 / (sa["n"] - 1) if va else 0.0) + (vb ** 2 / (sb["n"] - 1) if vb else 0.0))
    out["p"] = t_two_sided_p(out["t"], out["df"])
    return out


def verdict(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> dict[str, Any]:
    """Is `a` (lower is better) better than `b`, worse, or not distinguishable from it?

    "better"/"worse" needs BOTH a Welch p < alpha AND |diff| larger than the combined std of the
    two groups; anything else is "within noise" (or "not enough seeds" with < 2 per side). Two
    criteria rather than one because with 3 seeds a t-test alone is easily fooled by a lucky
    small spread.
    """
    w = welch(a, b)
    if w["p"] is None:
        w["verdict"] = "not enough seeds"
    elif w["p"] < alpha and abs(w["diff"]) > w["combined_std"]:
        w["verdict"] = "better" if w["diff"] < 0 else "worse"
    else:
        w["verdict"] = "within noise"
    return w


# ----------------------------------------------------------------------------------------------
# The JSON file: load, merge, atomic save.
# ----------------------------------------------------------------------------------------------


def empty_results() -> dict[str, Any]:
    return {"schema": SCHEMA, "created": _now(), "updated": _now(), "machine": machine_info(),
            "settings": {}, "sessions": [], "runs": [], "references": {}, "units": {}}


def load_results(path: Path) -> dict[str, Any]:
    if not path.exists():
        return empty_results()
    data = json.loads(path.read_text())
    if data.get("schema") != SCHEMA:
        raise SystemExit(f"{path}: schema {data.get('schema')!r}, expected {SCHEMA!r}; move it away to start over")
    return data


def save_results(data: Mapping[str, Any], path: Path) -> None:
    """Atomic, and safe to share: two invocations (two sessions, or one per dataset) may write
    the same file. Under an exclusive lock, the runs, sessions and references already on disk
    that this invocation does not hold are merged in first (runs are only ever added), then the
    file is replaced in one rename, so a study interrupted mid-write keeps the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if isinstance(data, dict):
            merge_from_disk(data, path)
        payload = {**data, "updated": _now()}
        if isinstance(data, dict):
            data["updated"] = payload["updated"]
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(payload, fh, indent=1, sort_keys=False, default=_json_default)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An advisory lock on a sidecar file (never on the JSON itself, which is replaced)."""
    import fcntl

    with open(path.with_name(f".{path.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _session_key(session: Mapping[str, Any]) -> tuple[Any, Any]:
    return session.get("start"), session.get("pid")


def merge_from_disk(data: dict[str, Any], path: Path) -> None:
    """Add to `data` what another invocation saved in `path` meanwhile: runs this one does not
    hold (a finished run wins over a failed one), other sessions, references and units."""
    if not path.exists():
        return
    try:
        disk = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # unreadable: the atomic replace below restores a complete file
    if disk.get("schema") != SCHEMA:
        return
    superseded = {_record_key(r): r for r in [*disk.get("superseded", []), *data.get("superseded", [])]}
    if superseded:
        data["superseded"] = sorted(superseded.values(), key=lambda r: (r["run_id"], r.get("finished") or ""))
    # a record replaced by a rerun (here or in another invocation) never comes back
    ours = {r["run_id"]: r for r in data.setdefault("runs", []) if _record_key(r) not in superseded}
    for run in disk.get("runs", []):
        if _record_key(run) in superseded:
            continue
        mine = ours.get(run["run_id"])
        if mine is None or (mine.get("status") != "ok" and run.get("status") == "ok"):
            ours[run["run_id"]] = run
    data["runs"] = list(ours.values())
    # sessions only grow: keep the longest record of each (another invocation's copy of a running
    # session is stale once that session saves again), updated in place so a live one stays live
    mine_by_key = {_session_key(s): s for s in data.setdefault("sessions", [])}
    for s in disk.get("sessions", []):
        held = mine_by_key.get(_session_key(s))
        if held is None:
            data["sessions"].append(s)
        elif float(s.get("wall_seconds") or 0.0) > float(held.get("wall_seconds") or 0.0):
            held.update(s)
    data["sessions"].sort(key=lambda s: s.get("start") or "")
    data["wall_seconds"] = machine_seconds(data["sessions"])
    for ds, refs in (disk.get("references") or {}).items():
        for name, scores in refs.items():
            data.setdefault("references", {}).setdefault(ds, {}).setdefault(name, scores)
    for ds, units in (disk.get("units") or {}).items():
        data.setdefault("units", {}).setdefault(ds, units)


def _record_key(record: Mapping[str, Any]) -> tuple[str, str]:
    """One run record: a rerun keeps the run_id, so its finish time tells the two apart."""
    return record["run_id"], str(record.get("finished"))


def supersede(data: dict[str, Any], record: dict[str, Any], reason: str) -> None:
    """Put a rerun's `record` in place of the run it redoes; the old record moves, whole, to
    `data["superseded"]` (its curve, scores and cost stay on file, out of the comparisons)."""
    record["rerun_reason"] = reason
    for old in data["runs"]:
        if old["run_id"] == record["run_id"] and old.get("status") == "ok" and old is not record:
            data.setdefault("superseded", []).append({**old, "superseded_reason": reason,
                                                      "superseded_by_finished": record.get("finished")})
    put_run(data, record)


def put_run(data: dict[str, Any], record: dict[str, Any]) -> None:
    """`record` becomes the one record of its run_id in `data["runs"]`."""
    data["runs"] = [r for r in data["runs"] if r["run_id"] != record["run_id"]] + [record]


def machine_seconds(sessions: Iterable[Mapping[str, Any]]) -> float:
    """Machine time of the study: the length of the union of the sessions' wall-clock
    intervals, so that two invocations running side by side are not counted twice. A session
    without a parsable start counts its whole wall time."""
    spans: list[tuple[float, float]] = []
    loose = 0.0
    for s in sessions:
        wall = float(s.get("wall_seconds") or 0.0)
        try:
            start = dt.datetime.fromisoformat(str(s.get("start"))).timestamp()
        except ValueError:
            loose += wall
            continue
        spans.append((start, start + wall))
    total, end = 0.0, -math.inf
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return loose + total


def done_on_disk(path: Path, rerun: str | None = None) -> set[str]:
    """The finished runs in `path` now (another invocation may have added some)."""
    with contextlib.suppress(OSError, ValueError):
        disk = json.loads(path.read_text())
        if disk.get("schema") == SCHEMA:
            return done_ids(disk, rerun)
    return set()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def done_ids(data: Mapping[str, Any], rerun: str | None = None) -> set[str]:
    """Finished runs; with `rerun`, only those already redone for that reason (see `--rerun`)."""
    return {r["run_id"] for r in data.get("runs", [])
            if r.get("status") == "ok" and (rerun is None or r.get("rerun_reason") == rerun)}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
                            "platform": platform.platform()}
    with contextlib.suppress(Exception):
        import torch

        info["torch"] = torch.__version__
    with contextlib.suppress(Exception):
        import svqcast

        info["svqcast"] = svqcast.__version__
    with contextlib.suppress(Exception):
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    return info


# ----------------------------------------------------------------------------------------------
# One run (in a child process): train through svqcast.api.train, score through svqcast.api.evaluate.
# ----------------------------------------------------------------------------------------------


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
        "train_seconds": train_s, "eval_seconds": eval_s, "threads": threads, "finished": _now(),
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


def _child_main(argv: Sequence[str]) -> int:
    """`study.py _run SPEC.json RESULT.json WORK_DIR THREADS`: one run in a fresh process."""
    spec_path, result_path, work_dir, threads = argv
    spec = RunSpec(**json.loads(Path(spec_path).read_text()))
    record = execute_run(spec, Path(work_dir), int(threads))
    Path(result_path).write_text(json.dumps(record, default=_json_default))
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
            [sys.executable, str(Path(__file__).resolve()), "_run", str(spec_path), str(result_path),
             str(work_dir), str(threads)],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
        )
    if proc.returncode == 0 and result_path.exists():
        return json.loads(result_path.read_text())
    tail = (log_dir / f"{stem}.log").read_text()[-2000:]
    return {"run_id": spec.run_id, "status": "failed", "dataset": spec.dataset, "model": spec.model,
            "group": spec.group, "seed": spec.seed, "returncode": proc.returncode,
            "seconds": time.perf_counter() - t0, "log_tail": tail, "finished": _now()}


# ----------------------------------------------------------------------------------------------
# The driver.
# ----------------------------------------------------------------------------------------------


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
    print(f"[{_now()}] done  {record['run_id']}: {msg}", flush=True)


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
    session = {"start": _now(), "pid": os.getpid(), "end": None, "wall_seconds": 0.0, "runs_done": 0,
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
                    print(f"[{_now()}] skip  {spec.run_id}: already in {args.out}", flush=True)
                    continue
                print(f"[{_now()}] start {spec.run_id}", flush=True)
                running[pool.submit(run_in_child, spec, work_dir, args.threads, log_dir)] = spec
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                running.pop(fut)
                _finish_run(data, fut.result(), session, t0, args.out, log_dir, rerun)
    session.update(stopped_early=bool(pending), end=_now(), wall_seconds=time.perf_counter() - t0)
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


# ----------------------------------------------------------------------------------------------
# The report: docs/results.md and docs/img/study_*.png, from the JSON only.
# ----------------------------------------------------------------------------------------------

METRICS = (("mae", "MAE"), ("rmse", "RMSE"), ("lat_rmse", "lat-weighted RMSE"))
#: reference forecasts in the order the report lists them (the seasonal one where defined)
REFERENCES = ("persistence", "same_hour_yesterday", "same_time_last_week", "climatology")


def fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    # `g` would write 1007 as 1.01e+03 at 3 digits: whole numbers that need more digits stay whole
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits - 0.5 else f"{x:.0f}"


def fmt_pm(s: Mapping[str, Any], digits: int = 4) -> str:
    if not s or s.get("mean") is None:
        return "–"
    if s.get("std") is None:
        return f"{fmt(s['mean'], digits)} (n=1)"
    return f"{fmt(s['mean'], digits)} ± {fmt(s['std'], 2)}"


def ok_runs(data: Mapping[str, Any], dataset: str, model: str) -> list[Mapping[str, Any]]:
    return [r for r in data.get("runs", []) if r.get("status") == "ok"
            and r["dataset"] == dataset and r["model"] == model]


def metric_values(data: Mapping[str, Any], dataset: str, model: str, metric: str) -> list[float]:
    return [r["test"][metric] for r in ok_runs(data, dataset, model) if r["test"].get(metric) is not None]


def converged(data: Mapping[str, Any], dataset: str, model: str) -> bool | None:
    """Did the model learn its task? Its seed-mean test MAE and RMSE must both be below the
    training climatology's (None when either is unknown). A model that does not beat
    climatology is flagged as not converged and left out of the comparisons."""
    clim = (data.get("references", {}).get(dataset) or {}).get("climatology") or {}
    out = []
    for metric in ("mae", "rmse"):
        mean = summarize(metric_values(data, dataset, model, metric))["mean"]
        if mean is None or clim.get(metric) is None:
            return None
        out.append(mean < clim[metric])
    return all(out)


def aggregate(data: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> model -> {metric: summary, epochs, best_val, stops, converged, n, seeds}."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    models = {r["model"] for r in data.get("runs", [])}
    for ds in sorted({r["dataset"] for r in data.get("runs", [])}):
        for model in sorted(models):
            runs = ok_runs(data, ds, model)
            if not runs:
                continue
            row = {m: summarize(metric_values(data, ds, model, m)) for m, _ in METRICS}
            row["epochs_run"] = summarize(r["epochs_run"] for r in runs)
            row["best_val"] = summarize(r["best_val"] for r in runs)
            row["train_seconds"] = summarize(r["train_seconds"] for r in runs)
            row["early_stops"] = sum(r.get("stop_reason") == "early_stopping" for r in runs)
            row["converged"] = converged(data, ds, model)
            row["n"] = len(runs)
            row["seeds"] = sorted(r["seed"] for r in runs)
            row["best_epochs"] = [r.get("best_epoch") for r in sorted(runs, key=lambda r: r["seed"])]
            out.setdefault(ds, {})[model] = row
    return out


PAIRS = (
    ("svq-learnable", "simvp-mae", "SVQ (learnable) vs SimVP, both with the MAE loss"),
    ("svq-frozen", "simvp-mae", "SVQ (frozen) vs SimVP, both with the MAE loss"),
    ("svq-learnable", "simvp-mse", "SVQ (learnable, MAE) vs the paper's SimVP baseline (MSE)"),
    ("svq-frozen", "svq-learnable", "frozen vs learnable codebook"),
    ("vq", "simvp-mse", "VQ vs SimVP, both with the MSE loss"),
    ("svq-learnable", "vq", "SVQ (learnable) vs VQ"),
)


def comparisons(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The questions the study asks, each answered with a verdict per dataset and metric;
    a pair with a model that did not converge is not compared."""
    out = []
    for ds in sorted({r["dataset"] for r in data.get("runs", [])}):
        for a, b, question in PAIRS:
            if converged(data, ds, a) is False or converged(data, ds, b) is False:
                continue
            for metric in ("rmse", "mae"):
                va, vb = metric_values(data, ds, a, metric), metric_values(data, ds, b, metric)
                if not va or not vb:
                    continue
                res = verdict(va, vb)
                mb = summarize(vb)["mean"]
                res.update({"dataset": ds, "a": a, "b": b, "question": question, "metric": metric,
                            "rel_diff": res["diff"] / mb if mb else None})
                out.append(res)
    return out


def display_unit(unit: str | None) -> str:
    """Units as a reader expects them: the flow datasets' dimensionless "1" means counts."""
    return "" if unit in (None, "", "1") else unit


UNIT_WORDS = {"nyc-taxi": "taxi flow counts per grid cell and 30 minutes",
              "nyc-bike": "bike flow counts per grid cell and 30 minutes"}


def _pct(c: Mapping[str, Any]) -> str:
    return f"{100 * c['rel_diff']:+.1f} %" if c.get("rel_diff") is not None else "–"


def comparison_table(comps: Sequence[Mapping[str, Any]], labels: Mapping[str, str], unit: str) -> list[str]:
    """Markdown rows: one per (question, metric), with every statistic behind the verdict."""
    L = ["| comparison (a − b) | metric | a − b | relative | combined std | Welch t | df | p | verdict |",
         "|---|---|---|---|---|---|---|---|---|"]
    for c in comps:
        la, lb = labels.get(c["a"], c["a"]), labels.get(c["b"], c["b"])
        stats = ([f"{c['t']:.2f}", f"{c['df']:.1f}", f"{c['p']:.3f}"] if c.get("p") is not None
                 else ["–", "–", "–"])
        verdict = {"better": "**a better**", "worse": "**a worse**"}.get(c["verdict"], c["verdict"])
        L.append(f"| {la} − {lb} | {c['metric'].upper()} | {c['diff']:+.4g} {unit} | {_pct(c)} | "
                 f"{fmt(c.get('combined_std'), 2)} | " + " | ".join(stats) + f" | {verdict} |")
    return L


def _svq_verdicts(data: Mapping[str, Any], ds: str, ref: str = "simvp-mae") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for c in comparisons(data):
        if c["dataset"] == ds and c["b"] == ref and c["a"] in ("svq-learnable", "svq-frozen"):
            out.setdefault(c["a"], {})[c["metric"]] = c
    return out


def _verdict_words(verdicts: Sequence[str]) -> str:
    if all(v == "not enough seeds" for v in verdicts):
        return "there are not enough seeds yet to say whether SVQ helped"
    if all(v == "better" for v in verdicts):
        return "**SVQ helped**: both codebooks lowered test RMSE and MAE beyond the seed spread"
    if any(v == "better" for v in verdicts) and not any(v == "worse" for v in verdicts):
        return "**SVQ helped in part**: some differences are beyond the seed spread, the others within it"
    if any(v == "worse" for v in verdicts) and not any(v == "better" for v in verdicts):
        return "**SVQ did not help**: it was worse than SimVP beyond the seed spread on at least one metric"
    if any(v == "worse" for v in verdicts):
        return "**the result is mixed**: better on some metric, worse on another"
    return ("**no measurable effect**: the differences to SimVP are within the seed-to-seed noise, "
            "so this study cannot say that SVQ helped (or hurt)")


def headline(data: Mapping[str, Any], ds: str) -> str:
    """One plain statement per dataset: did SVQ help against SimVP with the same (MAE) loss?"""
    labels = data.get("settings", {}).get("model_labels", {})
    flagged = [labels.get(k, k) for k in ("simvp-mae", "svq-learnable", "svq-frozen")
               if converged(data, ds, k) is False]
    if flagged:
        return (f"**{ds}**: no verdict: {', '.join(flagged)} did not beat the climatology (not converged), "
                "so SVQ is not compared there.")
    per = _svq_verdicts(data, ds)
    if not per:
        return f"**{ds}**: not enough finished runs to compare SVQ with SimVP."
    parts = []
    for key in ("svq-learnable", "svq-frozen"):
        if key in per:
            bits = [f"{metric.upper()} {_pct(c)} ({c['verdict']})"
                    for metric, c in sorted(per[key].items(), reverse=True)]
            parts.append(f"{labels.get(key, key)}: " + ", ".join(bits))
    words = _verdict_words([c["verdict"] for m in per.values() for c in m.values()])
    return f"**{ds}**: {words}. Against SimVP (MAE), " + "; ".join(parts) + "."


def frozen_headline(data: Mapping[str, Any], ds: str) -> str | None:
    """The paper's second claim: a frozen random codebook is almost as good as a learned one."""
    comps = [c for c in comparisons(data) if c["dataset"] == ds and c["a"] == "svq-frozen"
             and c["b"] == "svq-learnable"]
    if not comps:
        return None
    bits = ", ".join(f"{c['metric'].upper()} {_pct(c)} ({c['verdict']})"
                     for c in sorted(comps, key=lambda c: c["metric"], reverse=True))
    return f"**{ds}**, frozen − learnable codebook: {bits}."


def _ok_datasets(data: Mapping[str, Any]) -> list[str]:
    return [d for d in DATASETS if any(r.get("status") == "ok" and r["dataset"] == d for r in data.get("runs", []))]


def _plot_main(plt: Any, data: Mapping[str, Any], datasets: Sequence[str], path: Path) -> None:
    """Test RMSE per seed (grey) and mean ± std (blue) per model; references as lines."""
    labels, units = data.get("settings", {}).get("model_labels", {}), data.get("units", {})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        keys = [m.key for m in MAIN_MODELS if ok_runs(data, ds, m.key)]
        for i, key in enumerate(keys):
            vals = metric_values(data, ds, key, "rmse")
            s = summarize(vals)
            ax.scatter([i] * len(vals), vals, s=14, color="0.5", zorder=3)
            ax.errorbar([i], [s["mean"]], yerr=[s["std"] or 0.0], fmt="o", color="C0", capsize=5, zorder=4)
        for j, name in enumerate(REFERENCES):
            ref = (data.get("references", {}).get(ds, {}).get(name) or {}).get("rmse")
            if ref is not None:
                ax.axhline(ref, linestyle=("--", ":", "-.", ":")[j], color=f"C{j + 1}", label=name)
        ax.set_xticks(range(len(keys)), [labels.get(k, k) for k in keys], rotation=30, ha="right")
        ax.set_ylabel(f"test RMSE ({display_unit(units.get(ds)) or 'counts'})")
        ax.set_title(ds)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_curves(plt: Any, data: Mapping[str, Any], datasets: Sequence[str], path: Path) -> None:
    """Every main run's validation loss per epoch, one colour per model; x marks the best epoch."""
    labels = data.get("settings", {}).get("model_labels", {})
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        for j, m in enumerate(MAIN_MODELS):
            for k, r in enumerate(ok_runs(data, ds, m.key)):
                curve = r.get("val_loss") or []
                epochs = list(range(1, len(curve) + 1))
                ax.plot(epochs, curve, color=f"C{j}", alpha=0.7, label=labels.get(m.key, m.key) if k == 0 else None)
                if r.get("best_epoch"):
                    ax.plot([r["best_epoch"]], [curve[r["best_epoch"] - 1]], "x", color=f"C{j}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation loss (normalised units)")
        ax.set_yscale("log")
        ax.set_title(ds)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_ablation(plt: Any, data: Mapping[str, Any], abl: Mapping[int, Mapping[str, Any]], path: Path) -> None:
    units = data.get("units", {})
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for j, kind in enumerate(("learnable", "frozen")):
        ns = [n for n in ABLATION_SIZES if abl[n].get(kind) and abl[n][kind]["mean"] is not None]
        if ns:
            shift = 0.92 if kind == "learnable" else 1.08  # side by side, not on top of each other
            ax.errorbar([n * shift for n in ns], [abl[n][kind]["mean"] for n in ns],
                        yerr=[abl[n][kind]["std"] or 0.0 for n in ns], marker="o", capsize=4, label=kind,
                        color=f"C{j}")
    base = summarize(metric_values(data, ABLATION_DATASET, "simvp-mae", "rmse"))
    if base["mean"] is not None:
        ax.axhline(base["mean"], linestyle="--", color="0.4", label="SimVP (MAE)")
    ax.set_xscale("log")
    ax.set_xlabel("codebook size N")
    ax.set_ylabel(f"test RMSE ({display_unit(units.get(ABLATION_DATASET)) or 'counts'})")
    ax.set_title(f"SVQ codebook size, {ABLATION_DATASET}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_plots(data: Mapping[str, Any], img_dir: Path) -> list[Path]:
    """The main scores, the validation curves and the ablation, as PNGs in `img_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    datasets = _ok_datasets(data)
    if datasets:
        for name, plot in (("study_main.png", _plot_main), ("study_curves.png", _plot_curves)):
            plot(plt, data, datasets, img_dir / name)
            written.append(img_dir / name)
    abl = ablation_table(data)
    if any(v for row in abl.values() for v in row.values()):
        _plot_ablation(plt, data, abl, img_dir / "study_ablation.png")
        written.append(img_dir / "study_ablation.png")
    return written


def _ablation_key(kind: str, n: int) -> str:
    return f"svq-{kind}" if n == 10000 else f"svq-{kind}-n{n}"


def ablation_table(data: Mapping[str, Any], metric: str = "rmse") -> dict[int, dict[str, dict[str, Any]]]:
    table: dict[int, dict[str, dict[str, Any]]] = {}
    for n in ABLATION_SIZES:
        row = {}
        for kind in ("learnable", "frozen"):
            vals = metric_values(data, ABLATION_DATASET, _ablation_key(kind, n), metric)
            row[kind] = summarize(vals) if vals else {}
        table[n] = row
    return table


def _status_lines(data: Mapping[str, Any]) -> list[str]:
    settings, runs = data.get("settings", {}), data.get("runs", [])
    n_ok = sum(r.get("status") == "ok" for r in runs)
    n_failed = sum(r.get("status") == "failed" for r in runs)
    planned = settings.get("planned_runs", n_ok)
    wall = data.get("wall_seconds") or sum(s.get("wall_seconds") or 0.0 for s in data.get("sessions", []))
    machine = data.get("machine", {})
    complete = n_ok >= planned and n_failed == 0
    L = ["## Status", ""]
    L.append(f"* Runs finished: **{n_ok} of {planned} planned**"
             + (f", {n_failed} failed" if n_failed else "")
             + (" — the study is complete." if complete else
                " — **the study is incomplete**: the tables below cover only the finished runs; "
                "run `make study` again to resume."))
    design = plan_runs(Budget(**settings["budget"]), range(int(settings["seeds"]))) if settings.get("budget") else []
    per_ds = {ds: (sum(1 for r in runs if r.get("status") == "ok" and r["dataset"] == ds),
                   sum(1 for s in design if s.dataset == ds)) for ds in settings.get("datasets", [])}
    if per_ds:
        L.append("* Finished runs per dataset: " + ", ".join(f"{d} {n} of {m}" for d, (n, m) in per_ds.items()) + ".")
        L += _remaining_lines(data, per_ds)
    hours = settings.get("budget_hours", BUDGET_HOURS)
    L.append(f"* Machine time so far: **{wall / 3600:.2f} h** of the {hours:g} h budget, over "
             f"{len(data.get('sessions', []))} invocation(s) of the script, {settings.get('jobs', '?')} run(s) "
             f"at a time with {settings.get('threads_per_job', '?')} thread(s) each ({wall / 60:.1f} min).")
    L += _rerun_lines(data, hours)
    L.append(f"* Machine: {machine.get('nproc', '?')} CPU cores ({machine.get('cpu', '?')}), "
             f"torch {machine.get('torch', '?')}, svqcast {machine.get('svqcast', '?')}"
             + (f", commit `{machine['git_commit'][:10]}`" if machine.get("git_commit") else "") + ".")
    L.append(f"* Last updated {data.get('updated', '?')}.")
    return L + [""]


def run_cost_hours(runs: Iterable[Mapping[str, Any]], jobs: int) -> float:
    """Machine hours of a set of runs: their wall time (train + evaluation, each measured while
    another run shared the machine) divided by the runs at a time. For the finished study this
    is what `make study` from scratch costs on this machine."""
    secs = math.fsum(run_seconds(r) for r in runs if r.get("status") == "ok")
    return secs / 3600 / max(1, jobs)


def run_seconds(record: Mapping[str, Any]) -> float:
    """Wall time of one run: training plus evaluation."""
    return record.get("train_seconds", 0.0) + record.get("eval_seconds", 0.0)


def rerun_agreement(data: Mapping[str, Any]) -> tuple[int, int]:
    """(redone runs whose validation curve and test scores equal the superseded run's exactly,
    redone runs with a superseded record)."""
    current = {r["run_id"]: r for r in data.get("runs", [])}
    same = total = 0
    for old in data.get("superseded", []):
        new = current.get(old["run_id"])
        if new is None:
            continue
        total += 1
        same += new.get("val_loss") == old.get("val_loss") and new.get("test") == old.get("test")
    return same, total


def _rerun_lines(data: Mapping[str, Any], hours: float) -> list[str]:
    superseded = data.get("superseded", [])
    jobs = max(1, int(data.get("settings", {}).get("jobs") or 1))
    runs = data.get("runs", [])
    L = []
    if superseded:
        reasons = sorted({r.get("superseded_reason", "?") for r in superseded})
        same, total = rerun_agreement(data)
        L.append(f"* {len(superseded)} run(s) were redone (`--rerun`): {'; '.join(reasons)}. "
                 f"{same} of {total} redone run(s) reproduced the superseded run's validation curve and test "
                 f"scores exactly. The superseded records stay in the JSON under `superseded`, out of the "
                 f"comparisons; they cost {run_cost_hours(superseded, jobs):.2f} h of the machine time above.")
    L.append(f"* Cost of the study as it stands (the sum of its runs' wall time / {jobs} runs at a time): "
             f"**{run_cost_hours(runs, jobs):.2f} h** of the {hours:g} h budget: about what `make study` "
             f"from scratch costs on this machine.")
    return L


def _remaining_lines(data: Mapping[str, Any], per_ds: Mapping[str, tuple[int, int]]) -> list[str]:
    """What the runs still to do would cost, from the mean wall time of the finished runs of
    the same dataset (train + evaluation, per run, while another run shared the machine)."""
    parts, total = [], 0.0
    for ds, (done, planned) in per_ds.items():
        secs = [run_seconds(r) for r in data.get("runs", [])
                if r.get("status") == "ok" and r["dataset"] == ds]
        if done < planned and secs:
            per_run = math.fsum(secs) / len(secs)
            total += (planned - done) * per_run
            parts.append(f"{ds} {planned - done} runs x {per_run / 60:.1f} min")
        elif done < planned:
            parts.append(f"{ds} {planned - done} runs (no run finished yet to time them)")
    if not parts:
        return []
    jobs = max(1, int(data.get("settings", {}).get("jobs") or 1))
    return [f"* Still to run: {'; '.join(parts)}: about {total / 3600 / jobs:.1f} h of machine time at "
            f"{jobs} run(s) at a time, for the datasets already timed."]


def _setup_lines(data: Mapping[str, Any]) -> list[str]:
    settings = data.get("settings", {})
    budget, recipes = settings.get("budget", {}), settings.get("recipes", {})
    L = ["## Setup", "",
         "Every model is the gSTA SimVP of the presets `<dataset>_gsta` / `<dataset>_gsta_svq` with the "
         "recipe of that dataset's bundled zoo model (size, input, residual, optimiser), the same for every "
         "member of the family, so that the only differences are the quantizer and the loss:", ""]
    for ds, rec in recipes.items():
        L.append(f"* {ds}: " + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in rec.items()) + ".")
    if budget:
        L.append(f"* Budget: full epochs (every training window once per epoch), early stopping on the "
                 f"validation loss with patience {budget.get('patience')}, at most {budget.get('epochs')} "
                 f"epochs, batch {budget.get('batch_size')}; the best-validation checkpoint is scored on the "
                 "test split.")
    L.append("* `make study` runs the whole design (resuming: finished runs are kept)"
             + (f"; the last invocation was `{settings['command']}`." if settings.get("command") else "."))
    L.append(f"* Seeds per model: {settings.get('seeds', '?')} (the ablation's new runs: "
             f"{settings.get('ablation_seeds', ABLATION_SEEDS)}). Scores are mean ± sample standard "
             "deviation (ddof = 1) over seeds, in physical units.")
    L.append("* Losses follow the official configs: SVQ with MAE, VQ with MSE, the paper's SimVP baseline "
             "with MSE. SimVP with MAE is the like-for-like reference for SVQ, SimVP with MSE the one for VQ "
             "(codebook 1024, [quantizers.md](quantizers.md)). SVQ uses N = 10000.")
    L.append("* Converged: a model whose seed-mean test MAE and RMSE both beat the training climatology. A "
             "model that does not is flagged *not converged* and left out of the comparisons.")
    L.append(f"* Verdict rule: a difference counts as real only if Welch's t-test gives p < {ALPHA} "
             "**and** the difference of the means is larger than the combined standard deviation "
             "√(s₁² + s₂²); otherwise it is reported as within noise. With 3 seeds this is a "
             "deliberately conservative rule.")
    return L + [""]


def _model_row(ds: str, key: str, row: Mapping[str, Any], labels: Mapping[str, str],
               metric_cols: Sequence[tuple[str, str]]) -> str:
    flag = {True: "yes", False: "**no: not converged**", None: "–"}[row["converged"]]
    cells = [labels.get(key, key), str(row["n"])] + [fmt_pm(row[m]) for m, _ in metric_cols] + [
        fmt_pm(row["epochs_run"], 3), ", ".join(str(e) for e in row["best_epochs"]),
        f"{row['early_stops']} of {row['n']}", fmt_pm(row["best_val"]),
        fmt_pm(row["train_seconds"], 3), flag]
    return "| " + " | ".join(cells) + " |"


def _dataset_section(data: Mapping[str, Any], ds: str, agg: Mapping[str, Any]) -> list[str]:
    settings, units = data.get("settings", {}), data.get("units", {})
    labels = settings.get("model_labels", {k: m.label for k, m in ALL_MODELS.items()})
    desc = settings.get("dataset_descriptions", DATASETS).get(ds, "")
    unit = display_unit(units.get(ds))
    L = [f"## {ds}", "", f"{desc}. Test split; scores in {unit or UNIT_WORDS.get(ds, 'the units of the data')}.", ""]
    metric_cols = [(m, name) for m, name in METRICS if any(agg[ds][k][m]["n"] for k in agg[ds])]
    head = ["model", "seeds"] + [f"test {name}" for _, name in metric_cols] + [
        "epochs run", "best epoch (per seed)", "ended by early stopping", "best val loss", "train s / run",
        "beats climatology"]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    L += [_model_row(ds, m.key, agg[ds][m.key], labels, metric_cols)
          for m in MAIN_MODELS + ABLATION_MODELS if m.key in agg[ds]]
    for name in REFERENCES:
        ref = data.get("references", {}).get(ds, {}).get(name)
        if ref:
            L.append("| " + " | ".join([f"*{name}*", "–"] + [fmt(ref.get(m)) for m, _ in metric_cols]
                                      + ["–"] * 6) + " |")
    L.append("")
    ds_comps = [c for c in comparisons(data) if c["dataset"] == ds]
    if ds_comps:
        L += [f"Pairwise comparisons on {ds} (test scores, lower is better; a − b < 0 means a is better):", ""]
        L += comparison_table(ds_comps, labels, unit) + [""]
    return L


def against_seed_range(values: Sequence[float], ref: Sequence[float]) -> str:
    """How an ablation size compares with the three N = 10000 seeds of the same codebook kind.

    With two or more seeds per side the verdict rule applies. With one seed there is no test;
    the conservative reading is whether the value lies outside the whole range of the reference
    seeds (a difference smaller than the seed-to-seed spread is not read as an effect of N).
    """
    if not values or not ref:
        return "–"
    if len(values) >= 2 and len(ref) >= 2:
        return verdict(values, ref)["verdict"]
    x, lo, hi = float(values[0]), min(ref), max(ref)
    if lo <= x <= hi:
        return "inside its seed range"
    return f"{'below' if x < lo else 'above'} its seed range ({(x - hi if x > hi else x - lo):+.3g})"


def _ablation_lines(data: Mapping[str, Any]) -> list[str]:
    abl = ablation_table(data)
    if not any(v for row in abl.values() for v in row.values()):
        return []
    L = [f"## Codebook-size ablation ({ABLATION_DATASET})", "",
         "Test RMSE (mean ± std over seeds) of SimVP+SVQ as the codebook grows. N = 10000 is the main "
         "family's run; with N < 128 the projection's hidden layer shrinks to N, as in the official code. "
         "The last two columns read each size against the N = 10000 runs of the same kind: the verdict "
         "rule where both sides have two or more seeds, otherwise whether the single run lies outside "
         "the range of the N = 10000 seeds (no test is possible with one seed).", "",
         "| codebook N | learnable | frozen | frozen − learnable | learnable against N = 10000 "
         "| frozen against N = 10000 |", "|---|---|---|---|---|---|"]
    ref = {k: metric_values(data, ABLATION_DATASET, _ablation_key(k, 10000), "rmse") for k in ("learnable", "frozen")}
    for n in ABLATION_SIZES:
        vals = {k: metric_values(data, ABLATION_DATASET, _ablation_key(k, n), "rmse") for k in ("learnable", "frozen")}
        v = verdict(vals["frozen"], vals["learnable"]) if vals["learnable"] and vals["frozen"] else None
        cell = f"{v['diff']:+.4g} ({v['verdict']})" if v else "–"
        reads = ["–" if n == 10000 else against_seed_range(vals[k], ref[k]) for k in ("learnable", "frozen")]
        L.append(f"| {n} | {fmt_pm(abl[n]['learnable'])} | {fmt_pm(abl[n]['frozen'])} | {cell} | "
                 f"{reads[0]} | {reads[1]} |")
    base = summarize(metric_values(data, ABLATION_DATASET, "simvp-mae", "rmse"))
    if base["mean"] is not None:
        L.append(f"| *SimVP (MAE), no quantizer* | {fmt_pm(base)} | | | | |")
    unit = display_unit(data.get("units", {}).get(ABLATION_DATASET)) or UNIT_WORDS.get(ABLATION_DATASET, "")
    return L + ["", f"Units: {unit}. The frozen − learnable column applies the verdict rule above.", ""]


def _reference_lines(data: Mapping[str, Any], agg: Mapping[str, Any]) -> list[str]:
    labels = data.get("settings", {}).get("model_labels", {})
    lines = []
    for ds in agg:
        refs = data.get("references", {}).get(ds, {})
        means = {k: row["rmse"]["mean"] for k, row in agg[ds].items() if row["rmse"]["mean"] is not None}
        if not means or not refs:
            continue
        best = min(means, key=lambda k: means[k])
        cmp = [f"{'below' if means[best] < refs[n]['rmse'] else 'above'} {n} ({fmt(refs[n]['rmse'])})"
               for n in REFERENCES if (refs.get(n) or {}).get("rmse") is not None]
        flagged = [labels.get(k, k) for k, row in agg[ds].items() if row["converged"] is False]
        lines.append(f"* {ds}: the best mean test RMSE, {labels.get(best, best)}'s {fmt(means[best])}, is "
                     + ", ".join(cmp) + "; " + (f"not converged: {', '.join(flagged)}." if flagged else
                                               f"all {len(means)} models beat climatology."))
    if not lines:
        return []
    return ["## How good are these models?", "",
            "Against the reference forecasts of the same test split (persistence: the last input frame "
            "repeated; same hour yesterday / same time last week; climatology: the training split's mean "
            "by time of day or of the week, see [evaluation.md](evaluation.md)):", "", *lines, ""]


def _step_bounds(data: Mapping[str, Any]) -> list[tuple[str, int, float]]:
    """(dataset, most optimizer steps of a learnable-SVQ run, its learning rate)."""
    out: dict[str, tuple[str, int, float]] = {}
    for r in data.get("runs", []):
        cfg = (r.get("config") or {}).get("train") or {}
        if r.get("status") == "ok" and r["model"] == "svq-learnable" and cfg:
            steps = int(r.get("optimizer_steps") or 0)
            if steps > out.get(r["dataset"], ("", -1, 0.0))[1]:
                out[r["dataset"]] = (r["dataset"], steps, float(cfg.get("lr", 0.0)))
    return [out[k] for k in sorted(out)]


def _caveat_lines(data: Mapping[str, Any]) -> list[str]:
    bounds = _step_bounds(data)
    L = ["## Caveats", "",
         "* Small models on weeks of data, on a CPU: this tests whether SVQ's benefit shows up at the size of "
         "svqcast's zoo models, not the paper's full-size numbers (see [reproduce.md](reproduce.md)).",
         "* Every family starts from a simple forecast (the residual recipes): the network learns a correction, "
         "so the differences between quantizers are differences in that correction."]
    if bounds:
        L.append("* Adam moves a parameter by at most about its learning rate per step: a learnable codebook "
                 "moved at most " + ", ".join(f"{n} x {lr:g} = {n * lr:.2g} on {d}" for d, n, lr in bounds)
                 + " from its initialisation (entries of order 1 for the normal init, 0.4 for kaiming).")
    L.append("* Three seeds give a rough spread only; a 'within noise' verdict means this study cannot tell the "
             "models apart, not that they are equal.")
    return L + [""]


def render_report(data: Mapping[str, Any], img_paths: Sequence[Path] = (), doc_dir: Path = DEFAULT_DOC.parent) -> str:
    agg = aggregate(data)
    L = ["# Does SVQ help? The svqcast study", "",
         "<!-- Generated by `benchmarks/study.py` from `results/study.json`. Do not edit by hand: "
         "run `.venv/bin/python benchmarks/study.py --report-only` to regenerate. -->", "",
         "This page is generated from `results/study.json` by `benchmarks/study.py`; every number "
         "below is read from that file. `make study` reruns the study (resuming where it stopped).", ""]
    L += _status_lines(data) + _setup_lines(data)
    L += ["## Did SVQ help?", "",
          "SVQ against SimVP trained with the same (MAE) loss; relative differences of the seed means, "
          "verdicts by the rule above.", ""]
    L += [f"* {headline(data, ds)}" for ds in agg] + [""]
    frozen = [f for f in (frozen_headline(data, ds) for ds in agg) if f]
    if frozen:
        L += ["Is a frozen random codebook as good as a learned one (the paper's second claim)?", ""]
        L += [f"* {f}" for f in frozen] + [""]
    for ds in agg:
        L += _dataset_section(data, ds, agg)
    L += _ablation_lines(data)
    if img_paths:
        L += ["## Plots", ""]
        for p in img_paths:
            L += [f"![{p.stem}]({os.path.relpath(p, doc_dir)})", ""]
        L += ["`study_main`: grey dots are single seeds, blue markers and bars the mean ± std, horizontal lines "
              "the reference forecasts. `study_curves`: every run's validation loss per epoch (x: the best "
              "epoch, whose checkpoint was scored).", ""]
    failed = [r for r in data.get("runs", []) if r.get("status") == "failed"]
    if failed:
        L += ["## Failed runs", ""] + [f"* `{r['run_id']}` (exit code {r.get('returncode')})" for r in failed] + [""]
    L += _reference_lines(data, agg) + _caveat_lines(data)
    return "\n".join(L)


def write_report(data: Mapping[str, Any], doc: Path, img_dir: Path) -> Path:
    imgs = make_plots(data, img_dir)
    text = render_report(data, imgs, doc.parent)
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, doc)
    return doc


# ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Train and evaluate the SVQ study through svqcast's API; write results/study.json "
                    "and docs/results.md. Example: .venv/bin/python benchmarks/study.py --jobs 2")
    p.add_argument("--out", type=Path, default=DEFAULT_JSON, help="results JSON (resumed if it exists)")
    p.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="generated markdown report")
    p.add_argument("--img-dir", type=Path, default=DEFAULT_IMG, help="where the plots go")
    p.add_argument("--work-dir", type=Path, default=REPO / "build" / "study", help="run directories and logs")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report from --out")
    p.add_argument("--no-report", action="store_true", help="do not write the report after training")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--models", nargs="+", default=None, help=f"subset of {sorted(ALL_MODELS)}")
    p.add_argument("--no-ablation", action="store_true")
    p.add_argument("--epochs", type=int, default=Budget.epochs, help="the epoch cap")
    p.add_argument("--patience", type=int, default=Budget.patience)
    p.add_argument("--batch-size", type=int, default=Budget.batch_size)
    p.add_argument("--steps-per-epoch", nargs="+", metavar="DATASET=N",
                   help="cap optimizer steps per epoch (smoke tests; default: the full split)")
    p.add_argument("--max-val-steps", type=int, default=0, help="cap on validation batches (0 = none)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (child processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--rerun", metavar="REASON", default="",
                   help="train the selected runs again even if finished; each new run replaces the old "
                        "one, which moves to 'superseded' with REASON (rerun with the same REASON to resume)")
    p.add_argument("--time-budget-min", type=float, default=0.0,
                   help="start no new run after this many minutes (0 = no limit); rerun to resume")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_run"]:
        return _child_main(argv[1:])
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.report_only:
        data = load_results(args.out)
        if not data["runs"]:
            raise SystemExit(f"{args.out}: no runs yet; run the study first")
    else:
        data = run_study(args)
    if not args.no_report:
        doc = write_report(data, args.doc, args.img_dir)
        print(f"report: {doc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
