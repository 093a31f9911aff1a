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

The code, by concern (sibling modules of this entry point, which puts benchmarks/ on sys.path):
study_design.py (datasets, recipes, model family, budget, plan), study_stats.py (Welch test,
verdicts), study_records.py (the JSON: merge, lock, atomic save), study_run.py (one run in a
child process), study_driver.py (the session), study_summary.py (numbers read from the JSON),
study_report.py and study_plots.py (docs/results.md, docs/img/study_*.png).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_design import (  # noqa: E402
    ABLATION_DATASET,
    ABLATION_MODELS,
    ABLATION_SEEDS,
    ABLATION_SIZES,
    ALL_MODELS,
    BUDGET_HOURS,
    DATASETS,
    DEFAULT_DOC,
    DEFAULT_IMG,
    DEFAULT_JSON,
    MAIN_MODELS,
    RECIPES,
    REPO,
    Budget,
    ModelDef,
    RunSpec,
    check_family,
    plan_runs,
)
from study_driver import portable_command, run_study  # noqa: E402
from study_records import (  # noqa: E402
    SCHEMA,
    done_ids,
    done_on_disk,
    empty_results,
    load_results,
    machine_seconds,
    merge_from_disk,
    put_run,
    save_results,
    supersede,
)
from study_report import render_report, write_report  # noqa: E402
from study_run import child_main, execute_run, run_in_child  # noqa: E402
from study_stats import ALPHA, summarize, t_two_sided_p, verdict, welch  # noqa: E402
from study_summary import (  # noqa: E402
    against_seed_range,
    aggregate,
    comparisons,
    converged,
    fmt,
    fmt_pm,
    rerun_agreement,
    run_cost_hours,
)

# the study's API, as tests/test_study.py and earlier callers of this module use it
__all__ = [
    "ABLATION_DATASET", "ABLATION_MODELS", "ABLATION_SEEDS", "ABLATION_SIZES", "ALL_MODELS", "ALPHA", "BUDGET_HOURS",
    "DATASETS", "MAIN_MODELS", "RECIPES", "SCHEMA", "Budget", "ModelDef", "RunSpec", "against_seed_range",
    "aggregate", "build_parser", "check_family", "comparisons", "converged", "done_ids", "done_on_disk",
    "empty_results", "execute_run", "fmt", "fmt_pm", "load_results", "machine_seconds", "main",
    "merge_from_disk", "plan_runs", "portable_command", "put_run", "render_report", "rerun_agreement",
    "run_cost_hours", "run_in_child", "run_study", "save_results", "summarize", "supersede", "t_two_sided_p",
    "verdict", "welch", "write_report",
]


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
        return child_main(argv[1:])
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
