"""The study's report, docs/results.md, generated from the JSON only (the plots: study_plots.py)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from study_design import (
    ABLATION_DATASET,
    ABLATION_MODELS,
    ABLATION_SEEDS,
    ABLATION_SIZES,
    ALL_MODELS,
    BUDGET_HOURS,
    DATASETS,
    DEFAULT_DOC,
    MAIN_MODELS,
    Budget,
    plan_runs,
)
from study_plots import make_plots
from study_stats import ALPHA, summarize, verdict
from study_summary import (
    METRICS,
    REFERENCES,
    ablation_key,
    ablation_table,
    against_seed_range,
    aggregate,
    comparisons,
    converged,
    display_unit,
    fmt,
    fmt_pm,
    metric_values,
    rerun_agreement,
    run_cost_hours,
    run_seconds,
)

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
    ref = {k: metric_values(data, ABLATION_DATASET, ablation_key(k, 10000), "rmse") for k in ("learnable", "frozen")}
    for n in ABLATION_SIZES:
        vals = {k: metric_values(data, ABLATION_DATASET, ablation_key(k, n), "rmse") for k in ("learnable", "frozen")}
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
