"""`svqcast train` and `svqcast evaluate` (logic: svqcast.training.loop, svqcast.verify.evaluation)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from svqcast.cli.options import (
    BatchSizeOpt,
    BootstrapOpt,
    BootstrapSeedOpt,
    CompatOpt,
    ConfigOpt,
    DeterministicOpt,
    Device,
    DeviceOpt,
    EvalDatasetOpt,
    EvalMembersOpt,
    EvalRefArg,
    EvalSplitOpt,
    FormatOpt,
    FreezeOpt,
    FssScalesOpt,
    InitFromOpt,
    KeepStatsOpt,
    MaxBatchesOpt,
    MaxEpochsOpt,
    PerLeadOpt,
    PrecisionOpt,
    PresetOpt,
    ProgressKind,
    ProgressOpt,
    RegionOpt,
    ResultsOutputOpt,
    ResumeOpt,
    RootOpt,
    RunDirOpt,
    ScoreFormat,
    ScoreFormatOpt,
    SeedOpt,
    SetOpt,
    StrictInitOpt,
    ThresholdsOpt,
    TrainCompileOpt,
    TrainDatasetOpt,
)
from svqcast.cli.output import OutputFormat, emit, out_console, plural, print_event_scores
from svqcast.cli.progress import make_reporter, reporter
from svqcast.constants import launch_rank
from svqcast.errors import UsageError


def train_cmd(
    preset: PresetOpt = None,
    config: ConfigOpt = None,
    dataset: TrainDatasetOpt = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    max_epochs: MaxEpochsOpt = None,
    resume: ResumeOpt = None,
    precision: PrecisionOpt = None,
    compile_: TrainCompileOpt = False,
    seed: SeedOpt = None,
    deterministic: DeterministicOpt = False,
    progress: ProgressOpt = ProgressKind.auto,
    init_from: InitFromOpt = None,
    freeze: FreezeOpt = None,
    keep_stats: KeepStatsOpt = False,
    strict: StrictInitOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Train a model: Adam, cosine-with-warmup or OneCycle, early stopping on the validation split.

    Writes RUN/best/ and RUN/last/ (checkpoints in the zoo format), RUN/trainer_state.pt
    (resumable; Ctrl-C saves it and exits 130), RUN/metrics.csv and RUN/metrics.jsonl.
    Under `torchrun --nproc_per_node N svqcast train ...` it trains data-parallel, on one
    node or several (docs/training.md); only global rank 0 prints and writes.

    Example: svqcast train --preset era5-uk-t2m_gsta_svq --max-epochs 2 --set train.batch_size=8
    Example: svqcast train --dataset mine --preset era5-uk-t2m_gsta_svq_24h --init-from era5-uk-t2m_gsta_svq
             --freeze encoder
    """
    from svqcast.training.loop import train
    from svqcast.training.runlog import read_metrics

    if preset and config:
        raise UsageError("give --preset or --config, not both")
    # under torchrun every process runs this command: only global rank 0 says anything on
    # stdout or draws progress (the others' errors still reach stderr)
    main = launch_rank() == 0
    extra = ["train.compile=true"] if compile_ else []
    preset, overrides = _fit_to_dataset(preset, config, dataset, resume, [*(set_ or []), *extra], quiet=not main)
    ref: Any = preset or (str(config) if config else None)
    try:
        run = train(
            ref, overrides or None, run_dir=run_dir, dataset=dataset, max_epochs=max_epochs, resume=resume,
            precision=precision.value if precision else None, seed=seed,
            deterministic=True if deterministic else None,
            progress=make_reporter(progress.value if main else "none", transient=False),
            init_from=init_from, freeze=freeze, keep_stats=True if keep_stats else None,
            strict=True if strict else None,
        )
    except KeyboardInterrupt:
        # Typer turns KeyboardInterrupt into a *returned* 130 in non-standalone mode, which
        # the entry point would lose; exit here (the loop already saved the state).
        sys.exit(130)
    if not main:
        return
    rows = read_metrics(run)
    best = min((r for r in rows if r.get("val_loss") is not None), key=lambda r: r["val_loss"], default=None)
    report = {
        "run_dir": str(run),
        "epochs_done": len(rows),
        "best_epoch": (best["epoch"] + 1) if best else None,
        "best_val_loss": best["val_loss"] if best else None,
        "best_checkpoint": str(run / "best"),
        "last_checkpoint": str(run / "last"),
    }

    def text(d: dict[str, Any]) -> None:
        out_console.print(f"run: {d['run_dir']}  epochs: {d['epochs_done']}  "
                          f"best val_loss: {d['best_val_loss']} (epoch {d['best_epoch']})")
        out_console.print(f"evaluate with: svqcast evaluate {d['run_dir']}")

    emit(report, fmt, text)


DEFAULT_PRESET = "era5-uk-t2m_gsta_svq"  # small gSTA + SVQ; its dataset is the embedded ERA5 sample


def _fit_to_dataset(preset: str | None, config: Path | None, dataset: str | None, resume: str | None,
                    overrides: list[str], quiet: bool = False) -> tuple[str | None, list[str]]:
    """No --preset: the default preset. --dataset: the architecture's in_shape and
    out_frames come from the dataset (any preset trains on any prepared dataset); explicit
    --set values still win. `quiet` (ranks > 0 under torchrun): say nothing."""
    from svqcast.cli.output import log

    if resume is not None and resume != "auto":
        return preset, overrides
    if preset is None and config is None:
        preset = DEFAULT_PRESET
        on = dataset or "its embedded dataset era5-uk-t2m"
        if not quiet:
            log(f"no --preset given: training the default preset {preset} (small gSTA + SVQ) on {on}")
    if dataset is None:
        return preset, overrides
    from svqcast.data.loading import model_shape

    fitted = [f"{k}={json.dumps(v)}" for k, v in model_shape(dataset).items()]
    return preset, fitted + list(overrides)


def _lead_table(result: dict[str, Any], per: dict[str, Any], metric: str, cols: list[tuple[str, str]]) -> None:
    lt = Table(title=f"{metric.upper()} per lead time (steps of the data)")
    lt.add_column("lead", justify="right", no_wrap=True)
    for f, ch in cols:  # long names wrap in the header, numbers are never cut
        lt.add_column(f"{f} {ch}" if len(result["channels"]) > 1 else f, justify="right", overflow="fold")
    labels = result.get("lead_labels") or [str(v) for v in result["lead_times"]]  # "3 months" for calendar steps
    for j, lead in enumerate(labels):
        vals = [per[f][metric][ch][j] for f, ch in cols]
        lt.add_row(f"+{lead}", *["-" if v is None else f"{v:.4g}" for v in vals])
    out_console.print(lt)


def _render_eval(result: dict[str, Any]) -> None:
    out_console.print(Text.assemble(
        (str(result.get("ref") or result["checkpoint"]), "bold"),
        f" (preset {result.get('preset')})" if result.get("preset") else "",
        f" on {result['dataset']}/{result['split']}: {plural(result['samples'], 'sample')}, kind {result['kind']}",
    ))
    scores = result.get("scores", {})
    openstl_keys: list[str] = []
    for sc in scores.values():
        openstl_keys += [k for k in sc if k not in ("wb2", "wb2_ci") and k not in openstl_keys]
    table = Table(title="OpenSTL-compatible scores (paper convention)")
    table.add_column("forecast")
    for k in openstl_keys:
        table.add_column(k, justify="right")
    for f, sc in scores.items():
        table.add_row(
            f, *[f"{sc[k]:.6g}" if isinstance(sc.get(k), float) else str(sc.get(k, "")) for k in openstl_keys]
        )
    out_console.print(table)
    if any("wb2" in sc for sc in scores.values()):
        wt = Table(title=f"WeatherBench2-style ({result.get('weights')}), mean over lead times")
        wt.add_column("forecast")
        wt.add_column("channel")
        for m in ("rmse", "mae", "bias", "acc"):
            wt.add_column(m, justify="right")
        for f, sc in scores.items():
            for ch in result["channels"]:
                vals = [sc["wb2"][m].get(ch) for m in ("rmse", "mae", "bias", "acc")]
                wt.add_row(f, ch, *["-" if v is None else f"{v:.5g}" for v in vals])
        out_console.print(wt)
        _interval_table(result)
        _region_table(result)
        out_console.print(f"climatology: {result.get('climatology')}")
    per = result.get("per_lead_time")
    if per:
        for metric in ("rmse", "mae", "acc"):
            cols = [(f, ch) for f in per for ch in per[f][metric]]
            per_table = max(1, (out_console.width - 8) // 11)  # as many columns as fit: nothing is cut
            for start in range(0, len(cols), per_table):
                _lead_table(result, per, metric, cols[start:start + per_table])
    ens = result.get("ensemble")
    if ens:
        out_console.print(f"noise ensemble of {ens['members']} members on {ens['split']} ({ens['samples']} samples), "
                          "per lead: " + "; ".join(f"{k} " + "/".join(f"{v:.3g}" for v in vals)
                                                   for k, vals in ens.items() if isinstance(vals, list)))
    for ch in next(iter((result.get("events") or {}).values()), {}):
        print_event_scores(ch, {f: per_channel[ch] for f, per_channel in result["events"].items()})
    q = result.get("quantizer")
    if q:
        usage = q.get("code_usage") or {}
        if usage:
            shown = ("perplexity_2", "perplexity_3", "active_fraction_2", "active_fraction_3", "kurtosis")
            out_console.print("SVQ code usage: " + ", ".join(f"{k} {v:.4g}" for k, v in usage.items() if k in shown))
    for note in result.get("notes", []):
        out_console.print(f"note: {note}")


def _interval_table(result: dict[str, Any]) -> None:
    scores = result.get("scores", {})
    if not any(sc.get("wb2_ci") for sc in scores.values()):
        return
    table = Table(title="RMSE with its 95% bootstrap interval (over samples)")
    for name in ("forecast", "channel", "rmse", "lower", "upper"):
        table.add_column(name, justify="left" if name in ("forecast", "channel") else "right")
    for f, sc in scores.items():
        for ch in result["channels"]:
            ci = ((sc.get("wb2_ci") or {}).get("rmse") or {}).get(ch) or [None, None]
            vals = [sc["wb2"]["rmse"].get(ch), *ci]
            table.add_row(f, ch, *["-" if v is None else f"{v:.5g}" for v in vals])
    out_console.print(table)


def _region_table(result: dict[str, Any]) -> None:
    regions = result.get("regions") or {}
    if not regions:
        return
    table = Table(title="WeatherBench2 regions: rmse, mean over lead times")
    table.add_column("region")
    table.add_column("channel")
    forecasts = list(next(iter(regions.values())))
    for f in forecasts:
        table.add_column(f, justify="right")
    for r, per_f in regions.items():
        for ch in result["channels"]:
            vals = [per_f[f]["rmse"][ch] for f in forecasts]
            table.add_row(r, ch, *["-" if not isinstance(v, float) else f"{v:.5g}" for v in vals])
    out_console.print(table)


def evaluate_cmd(
    ref: EvalRefArg,
    dataset: EvalDatasetOpt = None,
    split: EvalSplitOpt = "test",
    fmt: ScoreFormatOpt = ScoreFormat.text,
    output: ResultsOutputOpt = None,
    per_lead_time: PerLeadOpt = False,
    compat: CompatOpt = None,
    root: RootOpt = None,
    batch_size: BatchSizeOpt = None,
    max_batches: MaxBatchesOpt = None,
    device: DeviceOpt = Device.auto,
    thresholds: ThresholdsOpt = None,
    fss_scales: FssScalesOpt = None,
    region: RegionOpt = None,
    bootstrap: BootstrapOpt = 1000,
    seed: BootstrapSeedOpt = 0,
    members: EvalMembersOpt = None,
) -> None:
    """Score a model: OpenSTL-compatible and WeatherBench2-style metrics, with persistence,
    climatology and (sub-daily data) same hour yesterday as reference forecasts, and SVQ
    code-usage diagnostics. Precipitation data (radar) add POD, FAR, CSI, ETS, frequency bias
    and FSS (default 0.1, 1 and 5 mm/h; 1, 5 and 15 cells) and the optical-flow extrapolation
    reference (the nowcast extra).

    Example: svqcast evaluate runs/era5-uk-t2m_gsta_svq --dataset era5-uk-t2m --per-lead-time
    Example: svqcast evaluate runs/knmi-radar_gsta --thresholds 1mm/h,5mm/h --fss-scales 1,9
    Example: svqcast evaluate runs/wb-s --region europe,tropics --bootstrap 2000
    Example: svqcast evaluate runs/wb-s --region all --format netcdf -o results.nc
    Example: svqcast evaluate era5-uk-t2m_gsta_svq --members 8   (its noise ensemble: CRPS, spread/skill)
    """
    from svqcast.verify.evaluation import evaluate, result_rows

    if split not in {"train", "val", "test"}:
        raise UsageError(f"--split: '{split}' is not one of train, val, test")
    if (fmt == ScoreFormat.netcdf) != (output is not None):
        raise UsageError("--format netcdf writes its results file to --output (and --output needs --format netcdf)")
    if output is not None:
        from svqcast.fsutil import check_output

        check_output(output, overwrite=False)
        per_lead_time = True  # a results file is per lead time
    with reporter("json" if fmt in (ScoreFormat.json, ScoreFormat.csv) else "text") as progress:
        result = evaluate(
            ref,
            dataset,
            split,
            per_lead_time,
            compat.value if compat else None,
            root=root,
            batch_size=batch_size,
            max_batches=max_batches,
            device=device.value,
            progress=progress,
            thresholds=thresholds,
            fss_scales=fss_scales,
            regions=region,
            bootstrap=bootstrap,
            seed=seed,
            members=members,
        )
    if output is not None:
        from svqcast.verify.eval_results import evaluation_as_scores
        from svqcast.verify.results_file import write_results

        write_results(evaluation_as_scores(result), output)
        _render_eval(result)
        out_console.print(f"wrote {output}")
        return
    if fmt == ScoreFormat.csv:
        buf = io.StringIO()
        fields = ["forecast", "metric", "channel", "lead_time", "value"]
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(result_rows(result))
        sys.stdout.write(buf.getvalue())
        return
    emit(result, fmt.value, _render_eval)


def register(app: typer.Typer) -> None:
    """Add `train` and `evaluate` to the root app."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
