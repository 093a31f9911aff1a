"""The study machinery (benchmarks/study.py and its study_*.py modules): statistics, the JSON
schema, the generated report.

The statistics are checked against closed forms worked out by hand (Student's t with 1 and 2
degrees of freedom has an elementary CDF), the report against a synthetic results file whose
numbers it must reproduce, and the whole pipeline by one real, tiny run through svqcast's API.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"


def _load_study():
    """benchmarks/study.py by path, as module `svqcast_study`. Its code lives in sibling modules
    (study_design.py, study_report.py, ...) that it imports by name, as a script run from
    benchmarks/ would: benchmarks/ goes on sys.path first."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("svqcast_study", BENCHMARKS / "study.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["svqcast_study"] = module
    spec.loader.exec_module(module)
    return module


study = _load_study()
report = importlib.import_module("study_report")  # the report's section builders (_rerun_lines, ...)


# ------------------------------------------------------------------------------- statistics


def test_summarize_hand_example():
    s = study.summarize([1.0, 2.0, 3.0, 4.0])
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(2.5, abs=1e-15)
    # sample variance: (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
    assert s["std"] == pytest.approx(math.sqrt(5.0 / 3.0), rel=1e-14)
    assert (s["min"], s["max"]) == (1.0, 4.0)
    one = study.summarize([7.0])
    assert one["mean"] == 7.0 and one["std"] is None
    assert study.summarize([])["mean"] is None


def test_t_distribution_closed_forms():
    # df = 1 is the Cauchy distribution: P(|T| >= t) = 1 - 2/pi * atan(t)
    for t in (0.3, 1.0, 6.5):
        assert study.t_two_sided_p(t, 1.0) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-12)
    # df = 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2)
    for t in (0.5, 2.0, 9.0):
        assert study.t_two_sided_p(t, 2.0) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-12)
    # large df tends to the normal: P(|Z| >= 1.959964) = 0.05
    assert study.t_two_sided_p(1.959963985, 1e7) == pytest.approx(0.05, rel=1e-5)
    assert study.t_two_sided_p(0.0, 5.0) == pytest.approx(1.0, abs=1e-14)


def test_welch_hand_example_with_two_degrees_of_freedom():
    # a = [1, 2, 3]: mean 2, variance 1; b = [5, 5, 5]: mean 5, variance 0.
    # se^2 = 1/3, t = -3 / sqrt(1/3) = -3 sqrt(3); Welch df = (1/3)^2 / ((1/3)^2 / 2) = 2.
    w = study.welch([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    t = -3.0 * math.sqrt(3.0)
    assert w["diff"] == pytest.approx(-3.0)
    assert w["t"] == pytest.approx(t, rel=1e-14)
    assert w["df"] == pytest.approx(2.0, rel=1e-14)
    assert w["p"] == pytest.approx(1 - 3 * math.sqrt(3) / math.sqrt(2 + 27), rel=1e-12)  # 0.0351
    assert w["combined_std"] == pytest.approx(1.0)


def test_welch_matches_scipy_on_unequal_groups():
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = [0.91, 1.07, 0.88, 1.21], [1.32, 0.97, 1.55]
    w = study.welch(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert w["t"] == pytest.approx(ref.statistic, rel=1e-12)
    assert w["p"] == pytest.approx(ref.pvalue, rel=1e-10)


def test_verdicts_do_not_overclaim():
    assert study.verdict([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])["verdict"] == "better"
    assert study.verdict([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])["verdict"] == "worse"
    # means differ by 0.1, spread ~0.15: no claim
    assert study.verdict([1.0, 1.2, 0.9], [1.1, 1.0, 1.3])["verdict"] == "within noise"
    # a single seed per side cannot be tested
    assert study.verdict([1.0], [2.0])["verdict"] == "not enough seeds"
    # p < 0.05 alone is not enough: tiny spreads, but |diff| below the combined std is impossible
    # here, so build a case where p is small only because n is large and diff < combined std
    a = [1.0 + 0.5 * ((-1) ** i) for i in range(400)]
    b = [1.1 + 0.5 * ((-1) ** i) for i in range(400)]
    v = study.verdict(a, b)
    assert v["p"] < 0.05 and abs(v["diff"]) < v["combined_std"]
    assert v["verdict"] == "within noise"


# ------------------------------------------------------------------------------- the report


def _record(ds: str, model: str, seed: int, rmse: float, mae: float) -> dict:
    return {"run_id": f"{ds}/{model}/seed{seed}", "status": "ok", "dataset": ds, "model": model,
            "group": "main", "seed": seed, "preset": f"{ds}_gsta", "overrides": {}, "config": {},
            "epochs_run": 3 + seed, "best_val": 0.5 - 0.01 * seed, "val_loss": [0.6, 0.5 - 0.01 * seed],
            "best_epoch": 2, "max_epochs": 40, "optimizer_steps": 300, "stop_reason": "early_stopping",
            "test": {"mae": mae, "rmse": rmse, "mse": rmse ** 2, "lat_rmse": None},
            "references": {}, "train_seconds": 10.0 + seed, "eval_seconds": 1.0, "threads": 1}


def _synthetic_results() -> dict:
    data = study.empty_results()
    data["settings"] = {"budget": {"epochs": 40, "patience": 5, "batch_size": 16, "steps_per_epoch": {}},
                        "recipes": {"era5-uk-t2m": study.RECIPES["era5-uk-t2m"]}, "datasets": ["era5-uk-t2m"],
                        "seeds": 3, "jobs": 2, "threads_per_job": 1, "planned_runs": 9,
                        "model_labels": {k: m.label for k, m in study.ALL_MODELS.items()},
                        "dataset_descriptions": study.DATASETS}
    ds = "era5-uk-t2m"
    rmse = {"simvp-mae": [2.0, 2.2, 2.1], "svq-learnable": [1.5, 1.6, 1.55], "svq-frozen": [2.05, 2.3, 1.9]}
    for model, vals in rmse.items():
        for seed, v in enumerate(vals):
            data["runs"].append(_record(ds, model, seed, v, v * 0.8))
    data["references"] = {ds: {"persistence": {"mae": 3.1, "rmse": 3.9, "mse": None, "lat_rmse": None},
                               "climatology": {"mae": 2.7, "rmse": 3.4, "mse": None, "lat_rmse": None}}}
    data["units"] = {ds: "K"}
    data["sessions"] = [{"start": "x", "end": "y", "wall_seconds": 1234.0, "runs_done": 9}]
    data["wall_seconds"] = 1234.0
    return data


def test_report_is_generated_from_the_json(tmp_path):
    data = _synthetic_results()
    out = tmp_path / "study.json"
    study.save_results(data, out)
    doc, img = tmp_path / "docs" / "results.md", tmp_path / "docs" / "img"
    assert study.main(["--report-only", "--out", str(out), "--doc", str(doc), "--img-dir", str(img)]) == 0
    text = doc.read_text()

    # the table row of each model carries exactly the mean ± std computed from the JSON values
    for model, vals in {"simvp-mae": [2.0, 2.2, 2.1], "svq-learnable": [1.5, 1.6, 1.55]}.items():
        label = study.ALL_MODELS[model].label
        row = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        s = study.summarize(vals)
        assert study.fmt_pm(s) in row
        assert f"{s['mean']:.4g} ± {s['std']:.2g}" in row
    assert "| *persistence* | – | 3.1 | 3.9 |" in text
    assert "| *climatology* | – | 2.7 | 3.4 |" in text
    assert "**3 of 9 planned**" not in text and "**9 of 9 planned**" in text
    assert "20.6 min" in text and "0.34 h** of the 5 h budget" in text  # 1234 s
    # every run ended by early stopping at its best epoch + patience; the columns say so per seed
    assert "| 2, 2, 2 | 3 of 3 |" in text and "| yes |" in text

    # verdicts: learnable is clearly better than SimVP (diff -0.55, tiny spread); frozen is noise
    learn = study.verdict([1.5, 1.6, 1.55], [2.0, 2.2, 2.1])
    frozen = study.verdict([2.05, 2.3, 1.9], [2.0, 2.2, 2.1])
    assert learn["verdict"] == "better" and frozen["verdict"] == "within noise"
    assert "**era5-uk-t2m**: **SVQ helped in part**" in text
    rows = {line.split(" | ")[0] + " | " + line.split(" | ")[1]: line for line in text.splitlines()
            if " − " in line and line.startswith("| ")}
    learn_row = rows["| SimVP+SVQ learnable − SimVP (MAE) | RMSE"]
    assert f"| {learn['p']:.3f} |" in learn_row and f"| {learn['t']:.2f} |" in learn_row
    assert learn_row.endswith("| **a better** |")
    assert f"{100 * learn['diff'] / 2.1:+.1f} %" in learn_row  # relative to SimVP's mean 2.1
    assert rows["| SimVP+SVQ frozen − SimVP (MAE) | RMSE"].endswith("| within noise |")

    # the plots exist and are linked, the validation curves among them
    for name in ("study_main", "study_curves"):
        assert (img / f"{name}.png").stat().st_size > 1000
        assert f"![{name}](img/{name}.png)" in text

    # changing the JSON changes the report: nothing is typed by hand
    data["runs"][0]["test"]["rmse"] = 9.0
    study.save_results(data, out)
    study.main(["--report-only", "--out", str(out), "--doc", str(doc), "--img-dir", str(img)])
    row = next(line for line in doc.read_text().splitlines() if line.startswith("| SimVP (MAE) |"))
    assert study.fmt_pm(study.summarize([9.0, 2.2, 2.1])) in row


def test_incomplete_study_says_so(tmp_path):
    data = _synthetic_results()
    data["settings"]["planned_runs"] = 48
    text = study.render_report(data)
    assert "**9 of 48 planned**" in text and "the study is incomplete" in text


def test_plan_is_main_first_seed_major_and_family_is_consistent():
    budget = study.Budget()
    specs = study.plan_runs(budget, range(3))
    # main: 5 models on 3 datasets, 3 seeds; ablation: N = 10, 1000, 100000 x frozen/learnable
    # on nyc-bike, ABLATION_SEEDS seeds (N = 10000 is the main family's)
    assert len(specs) == 3 * 5 * 3 + study.ABLATION_SEEDS * 6 and study.ABLATION_SEEDS >= 1
    main = [s for s in specs if s.group == "main"]
    assert specs[: len(main)] == main  # the whole main family comes before the ablation
    for group in ("main", "ablation"):
        seeds = [s.seed for s in specs if s.group == group]
        assert seeds == sorted(seeds)
    assert len({s.run_id for s in specs}) == len(specs)
    assert {s.dataset for s in specs if s.group == "ablation"} == {"nyc-bike"}
    assert {s.overrides["model.codebook_size"] for s in specs if s.group == "ablation"} == {10, 1000, 100000}
    for s in specs:  # the zoo recipe of the dataset, full epochs, early stopping with patience 5
        for key, value in study.RECIPES[s.dataset].items():
            assert s.overrides[key] == value
        assert s.overrides["train.max_steps_per_epoch"] == 0 and s.overrides["train.patience"] >= 5
    assert study.RECIPES["nyc-taxi"]["model.residual"] == "climatology"


def test_a_model_that_does_not_beat_climatology_is_flagged_not_compared():
    data = _synthetic_results()
    # climatology RMSE 3.4 / MAE 2.7: svq-frozen at RMSE ~5 has not converged
    for r in data["runs"]:
        if r["model"] == "svq-frozen":
            r["test"]["rmse"], r["test"]["mae"] = 5.0 + 0.1 * r["seed"], 4.0
    assert study.converged(data, "era5-uk-t2m", "svq-frozen") is False
    assert study.converged(data, "era5-uk-t2m", "svq-learnable") is True
    comps = study.comparisons(data)
    assert comps and not any("svq-frozen" in (c["a"], c["b"]) for c in comps)
    text = study.render_report(data)
    row = next(line for line in text.splitlines() if line.startswith("| SimVP+SVQ frozen |"))
    assert row.endswith("| **no: not converged** |")
    assert "not converged: SimVP+SVQ frozen" in text
    assert "**era5-uk-t2m**: no verdict: SimVP+SVQ frozen did not beat the climatology" in text


def test_family_check_rejects_a_hidden_difference():
    specs = study.plan_runs(study.Budget(), [0], datasets=["nyc-taxi"], models=["simvp-mae", "svq-learnable"],
                            ablation=False)

    def resolve(preset, overrides):
        cfg = {"model": {"hid_S": 8, "quantizer": overrides["model.quantizer"]},
               "train": {"lr": 5e-3 if preset.endswith("_gsta") else 1e-3, "loss": "mae"}}
        return cfg

    with pytest.raises(SystemExit, match="train.lr"):
        study.check_family(specs, resolve)


def test_two_invocations_sharing_the_json_lose_nothing(tmp_path):
    """Two invocations load the file, each finishes other runs and saves: the file ends with
    both sets of runs and both sessions, and a failed run is replaced by a finished one."""
    out = tmp_path / "study.json"
    first, second = study.empty_results(), study.empty_results()
    first["sessions"] = [{"start": "2026-01-01T00:00:00+00:00", "pid": 1, "wall_seconds": 600.0}]
    second["sessions"] = [{"start": "2026-01-01T00:05:00+00:00", "pid": 2, "wall_seconds": 600.0}]
    first["runs"] = [_record("nyc-bike", "vq", 0, 4.9, 2.1)]
    failed = dict(_record("nyc-bike", "vq", 1, 4.9, 2.1), status="failed")
    second["runs"] = [_record("era5-uk-t2m", "vq", 0, 1.4, 0.9), failed]
    study.save_results(first, out)
    first["runs"].append(_record("nyc-bike", "vq", 1, 4.8, 2.0))
    study.save_results(second, out)  # knows nothing of the first's runs
    study.save_results(first, out)
    disk = json.loads(out.read_text())
    runs = {r["run_id"]: r["status"] for r in disk["runs"]}
    assert runs == {"nyc-bike/vq/seed0": "ok", "nyc-bike/vq/seed1": "ok", "era5-uk-t2m/vq/seed0": "ok"}
    assert [s["pid"] for s in disk["sessions"]] == [1, 2]
    # 00:00-00:10 and 00:05-00:15 overlap by 5 minutes: 15 minutes of machine time, not 20
    assert disk["wall_seconds"] == pytest.approx(900.0)
    assert study.done_on_disk(out) == set(runs)
    assert study.done_on_disk(tmp_path / "missing.json") == set()


def test_a_rerun_replaces_its_run_and_keeps_the_old_one_as_superseded(tmp_path):
    """`--rerun REASON`: the new record replaces the old in the comparisons, the old one moves
    whole to `superseded`, a later save (or another invocation holding the old record) never
    brings it back, and the rerun resumes by skipping only the runs already redone."""
    out = tmp_path / "study.json"
    data = study.empty_results()
    old = dict(_record("era5-uk-t2m", "vq", 0, 1.3, 0.9), finished="2026-11-30T21:38:38+00:00")
    other = dict(_record("era5-uk-t2m", "vq", 1, 1.4, 1.0), finished="2026-11-30T22:00:00+00:00")
    data["runs"] = [old, other]
    study.save_results(data, out)
    stale = json.loads(out.read_text())  # an invocation that loaded the file before the rerun
    assert study.done_ids(data, "fast codebook") == set()
    new = dict(_record("era5-uk-t2m", "vq", 0, 1.25, 0.85), finished="2026-12-01T04:00:00+00:00")
    study.supersede(data, new, "fast codebook")
    study.save_results(data, out)
    study.save_results(stale, out)  # merges the disk (with the supersession) into the stale copy
    disk = json.loads(out.read_text())
    runs = {r["run_id"]: r for r in disk["runs"]}
    assert runs["era5-uk-t2m/vq/seed0"]["test"]["rmse"] == 1.25
    assert runs["era5-uk-t2m/vq/seed0"]["rerun_reason"] == "fast codebook"
    assert len(disk["runs"]) == 2
    assert [(r["run_id"], r["test"]["rmse"], r["superseded_reason"]) for r in disk["superseded"]] == [
        ("era5-uk-t2m/vq/seed0", 1.3, "fast codebook")]
    assert study.done_on_disk(out, "fast codebook") == {"era5-uk-t2m/vq/seed0"}
    assert study.done_on_disk(out) == {"era5-uk-t2m/vq/seed0", "era5-uk-t2m/vq/seed1"}
    # the report: the redone run differs from the old one, and the cost counts current runs only
    assert study.rerun_agreement(disk) == (0, 1)
    assert study.run_cost_hours(disk["runs"], jobs=2) == pytest.approx((11.0 + 12.0) / 3600 / 2)
    lines = " ".join(report._rerun_lines(disk, 5.0))
    assert "1 run(s) were redone" in lines and "0 of 1 redone" in lines and "fast codebook" in lines
    same = dict(new, finished="2026-12-02T00:00:00+00:00")  # a rerun that reproduces the run exactly
    study.supersede(disk, same, "again")
    assert study.rerun_agreement({"runs": disk["runs"], "superseded": disk["superseded"][-1:]}) == (1, 1)


def test_a_stale_copy_of_another_sessions_record_never_shrinks_it(tmp_path):
    """Two invocations at once: each holds the other's session record from its last merge. The
    saved file keeps each session's latest (longest) record, and a live session dict is updated
    in place, so the machine time is never undercounted."""
    out = tmp_path / "study.json"
    a, b = study.empty_results(), study.empty_results()
    sa = {"start": "2026-01-01T00:00:00+00:00", "pid": 1, "wall_seconds": 0.0, "runs_done": 0, "end": None}
    sb = {"start": "2026-01-01T00:10:00+00:00", "pid": 2, "wall_seconds": 0.0, "runs_done": 0, "end": None}
    a["sessions"], b["sessions"] = [sa], [sb]
    study.save_results(a, out)
    study.save_results(b, out)  # b now holds a's record with 0 s
    study.save_results(a, out)  # a now holds b's record with 0 s
    sa.update(wall_seconds=1800.0, runs_done=3, end="2026-01-01T00:30:00+00:00")
    study.save_results(a, out)
    sb.update(wall_seconds=2400.0, runs_done=4, end="2026-01-01T00:50:00+00:00")
    study.save_results(b, out)  # holds the stale 0 s copy of a's session
    study.save_results(a, out)  # holds the stale 0 s copy of b's session
    disk = json.loads(out.read_text())
    assert [(s["pid"], s["wall_seconds"], s["runs_done"]) for s in disk["sessions"]] == [(1, 1800.0, 3), (2, 2400.0, 4)]
    assert disk["wall_seconds"] == pytest.approx(3000.0)  # 00:00-00:50
    assert a["sessions"][0] is sa and b["sessions"][1] is sb  # live records stay the same objects


def test_numbers_in_the_report_never_use_exponents_for_whole_seconds():
    assert [study.fmt(1007, 3), study.fmt(12345), study.fmt(999.4, 3), study.fmt(999.6, 3)] == \
        ["1007", "12345", "999", "1000"]
    assert [study.fmt(0.123456), study.fmt(2.5), study.fmt(None), study.fmt(float("nan"))] == \
        ["0.1235", "2.5", "–", "–"]


def test_recorded_command_names_no_local_paths():
    argv = ["--jobs", "2", "--work-dir", "/scratch/x", "--out=/tmp/s.json", "--time-budget-min", "5"]
    assert study.portable_command(argv) == "benchmarks/study.py --jobs 2 --time-budget-min 5"


def test_machine_time_is_the_union_of_sessions():
    sessions = [{"start": "2026-01-01T00:00:00+00:00", "wall_seconds": 100.0},
                {"start": "2026-01-01T00:00:50+00:00", "wall_seconds": 20.0},  # inside the first
                {"start": "2026-01-01T01:00:00+00:00", "wall_seconds": 30.0},
                {"start": "not a time", "wall_seconds": 7.0}]
    assert study.machine_seconds(sessions) == pytest.approx(137.0)


# ------------------------------------------------------------------------------- end to end


def test_smoke_one_tiny_run_through_the_api(tmp_path, monkeypatch):
    """One model, one seed, a handful of steps: real training, real evaluation, real JSON."""
    pytest.importorskip("svqcast.data")
    from svqcast.config import list_presets

    if "nyc-taxi_gsta" not in list_presets():
        pytest.skip("nyc-taxi_gsta preset not available")
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    out, doc, img = tmp_path / "study.json", tmp_path / "results.md", tmp_path / "img"
    args = ["--out", str(out), "--doc", str(doc), "--img-dir", str(img), "--work-dir", str(tmp_path / "work"),
            "--datasets", "nyc-taxi", "--models", "simvp-mae", "--seeds", "1", "--epochs", "1",
            "--steps-per-epoch", "nyc-taxi=3", "--max-val-steps", "2",
            "--jobs", "1"]
    assert study.main(args) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == study.SCHEMA
    for key in ("machine", "settings", "sessions", "runs", "references", "wall_seconds"):
        assert key in data
    (run,) = data["runs"]
    assert run["status"] == "ok", run.get("log_tail")
    assert run["run_id"] == "nyc-taxi/simvp-mae/seed0"
    assert run["epochs_run"] == 1
    assert math.isfinite(run["best_val"])
    assert run["train_seconds"] > 0
    assert run["config"]["model"]["hid_S"] == study.RECIPES["nyc-taxi"]["model.hid_S"]
    assert run["config"]["model"]["residual"] == "climatology"
    assert len(run["val_loss"]) == 1 and run["best_epoch"] == 1 and run["optimizer_steps"] == 3
    assert run["stop_reason"] == "max_epochs"  # one epoch of a one-epoch cap
    assert run["config"]["train"]["max_steps_per_epoch"] == 3
    for metric in ("mae", "rmse"):
        assert run["test"][metric] is not None and run["test"][metric] > 0
    assert run["test"]["rmse"] >= run["test"]["mae"]  # RMSE >= MAE for any error field
    text = doc.read_text()
    assert "| SimVP (MAE) | 1 |" in text
    assert study.fmt(run["test"]["rmse"]) in text

    # resume: a second invocation finds the run done and trains nothing
    before = out.read_text()
    assert study.main(args + ["--no-report"]) == 0
    after = json.loads(out.read_text())
    assert len(after["runs"]) == 1 and after["runs"][0] == json.loads(before)["runs"][0]
    assert len(after["sessions"]) == 2


def _load_throughput():
    spec = importlib.util.spec_from_file_location("svqcast_throughput", REPO / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_section_replaces_only_its_own_section(tmp_path):
    tp = _load_throughput()
    data = {
        "schema": tp.SCHEMA, "targets": tp.TARGETS,
        "configs": {k: {"preset": v[0], "fused": v[1]} for k, v in tp.CONFIGS.items()},
        "machine": {"nproc": 2, "cpu": "Test CPU", "torch": "x", "python": "3", "mem_total_gb": 8.0,
                    "load_average": [0.1, 0.2, 0.3]},
        "timing": {"rounds": 2, "steps_per_round": 1, "warmup_steps": 1, "threads": 2, "batch_size": 16,
                   "samples_per_s": {"simvp": tp.spread([1.6, 1.4]), "svq-fused": tp.spread([1.5, 1.45]),
                                     "svq-materialised": tp.spread([0.5, 0.6])},
                   "ratios": {"svq-fused/simvp": tp.spread([1.5 / 1.6, 1.45 / 1.4]),
                              "svq-fused/svq-materialised": tp.spread([3.0, 1.45 / 0.6])},
                   "measured": "now", "load_average_after": [0.1, 0.1, 0.1]},
        "targets_met": {"fused_vs_simvp": True, "fused_vs_materialised": True},
    }
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## SVQ and quantizers\n\nkeep me\n\n## End-to-end throughput\n\nold\n")
    tp.write_section(data, doc)
    text = doc.read_text()
    assert "keep me" in text and "old" not in text
    assert text.count("## End-to-end throughput") == 1
    # medians of the per-round values, [min-max]
    assert "| simvp | `weatherbench-s-t2m_gsta` | 1.5 [1.4–1.6] |" in text
    assert "| svq-fused/simvp | 0.987 [0.938–1.04] | >= 0.9 | yes |" in text
    # a second write is idempotent and a following section survives
    doc.write_text(text + "\n## Later section\n\nstays\n")
    tp.write_section(data, doc)
    again = doc.read_text()
    assert "stays" in again and again.count("## End-to-end throughput") == 1


def test_ablation_reads_single_seeds_against_the_reference_seed_range():
    data = _synthetic_results()
    ds = study.ABLATION_DATASET
    runs = {"svq-learnable": [1.0, 1.1, 1.2], "svq-frozen": [1.0, 1.1, 1.2], "simvp-mae": [1.05, 1.1, 1.15],
            "svq-learnable-n10": [1.5], "svq-frozen-n10": [1.12], "svq-learnable-n1000": [1.05],
            "svq-frozen-n100000": [0.9]}
    for model, vals in runs.items():
        for seed, v in enumerate(vals):
            data["runs"].append(_record(ds, model, seed, v, v * 0.8))
    text = "\n".join(report._ablation_lines(data))
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ")}
    # 1.5 lies 0.3 above the learnable N = 10000 range [1.0, 1.2]; 1.12 is inside the frozen one
    assert rows["| 10"].endswith("| above its seed range (+0.3) | inside its seed range |")
    assert "-0.38 (not enough seeds)" in rows["| 10"]  # frozen - learnable = 1.12 - 1.5
    assert rows["| 1000"].endswith("| inside its seed range | – |")
    assert rows["| 100000"].endswith("| – | below its seed range (-0.1) |")
    assert rows["| 10000"].endswith("| – | – |")
    # with seeds on both sides the verdict rule is used instead of the range
    assert study.against_seed_range([1.0, 1.1, 1.2], [1.0, 1.1, 1.2]) == "within noise"
    assert study.against_seed_range([], [1.0]) == "–"
