"""`svqcast train` and `svqcast evaluate` (logic: svqcast.train.loop, svqcast.evaluate)."""

from __future__ import annotations

import csv
import io
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from svqcast.cli.options import FormatOpt, SetOpt
from svqcast.cli.output import OutputFormat, emit, out_console
from svqcast.errors import UsageError


class Precision(str, Enum):
    fp32 = "32"
    bf16 = "bf16"


class ProgressKind(str, Enum):
    auto = "auto"
    rich = "rich"
    plain = "plain"
    none = "none"


class EvalFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"


class Compat(str, Enum):
    openstl = "openstl"


def train_cmd(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name (svqcast models presets).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="A TOML config file instead of a preset.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Train on this catalog dataset (sets data.dataset).")] = None,
    set_: SetOpt = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", "-o", help="Run directory (default runs/<preset>).")] = None,
    max_epochs: Annotated[Optional[int], typer.Option("--max-epochs", min=1, help="Stop after this many epochs in total; the schedule still spans train.epochs, so --resume continues it.")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="'auto': continue the run in --run-dir if it has a trainer state; or a run directory to continue.")] = None,
    precision: Annotated[Optional[Precision], typer.Option("--precision", help="32 or bf16 (autocast).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed for random, numpy and torch (train.seed).")] = None,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Deterministic kernels: bit-identical reruns.")] = False,
    progress: Annotated[ProgressKind, typer.Option("--progress", help="Progress on stderr: auto (Rich on a terminal), rich, plain, none.")] = ProgressKind.auto,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Train a model: Adam, cosine-with-warmup or OneCycle, early stopping on the validation split.

    Writes RUN/best/ and RUN/last/ (checkpoints in the zoo format), RUN/trainer_state.pt
    (resumable; Ctrl-C saves it and exits 130), RUN/metrics.csv and RUN/metrics.jsonl.
    Under `torchrun --nproc_per_node N svqcast train ...` it trains data-parallel.

    Example: svqcast train --preset era5-uk-t2m_gsta_svq --max-epochs 2 --set train.batch_size=8
    """
    from svqcast.train.loop import train
    from svqcast.train.runlog import read_metrics

    if preset and config:
        raise UsageError("give --preset or --config, not both")
    ref: Any = preset or (str(config) if config else None)
    try:
        run = train(
            ref,
            set_ or None,
            run_dir=run_dir,
            dataset=dataset,
            max_epochs=max_epochs,
            resume=resume,
            precision=precision.value if precision else None,
            seed=seed,
            deterministic=True if deterministic else None,
            progress=progress.value,
        )
    except KeyboardInterrupt:
        # Typer turns KeyboardInterrupt into a *returned* 130 in non-standalone mode, which
        # the entry point would lose; exit here (the loop already saved the state).
        sys.exit(130)
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


def _render_eval(result: dict[str, Any]) -> None:
    from rich.table import Table

    out_console.print(
        f"[bold]{result.get('preset') or result['checkpoint']}[/] on {result['dataset']}/{result['split']}: "
        f"{result['samples']} samples, kind {result['kind']}"
    )
    scores = result.get("scores", {})
    openstl_keys: list[str] = []
    for sc in scores.values():
        openstl_keys += [k for k in sc if k != "wb2" and k not in openstl_keys]
    table = Table(title="OpenSTL-compatible scores (paper convention)")
    table.add_column("forecast")
    for k in openstl_keys:
        table.add_column(k, justify="right")
    for f, sc in scores.items():
        table.add_row(f, *[f"{sc[k]:.6g}" if isinstance(sc.get(k), float) else str(sc.get(k, "")) for k in openstl_keys])
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
        out_console.print(f"climatology: {result.get('climatology')}")
    per = result.get("per_lead_time")
    if per:
        for metric in ("rmse", "acc"):
            lt = Table(title=f"{metric.upper()} per lead time (steps of the data)")
            lt.add_column("lead", justify="right")
            cols = [(f, ch) for f in per for ch in per[f][metric]]
            for f, ch in cols:
                lt.add_column(f"{f} {ch}" if len(result["channels"]) > 1 else f, justify="right")
            for j, lead in enumerate(result["lead_times"]):
                vals = [per[f][metric][ch][j] for f, ch in cols]
                lt.add_row(f"+{lead}", *["-" if v is None else f"{v:.4g}" for v in vals])
            out_console.print(lt)
    q = result.get("quantizer")
    if q:
        usage = q.get("code_usage") or {}
        if usage:
            out_console.print(
                "SVQ code usage: " + ", ".join(f"{k} {v:.4g}" for k, v in usage.items() if k in
                                               ("perplexity_2", "perplexity_3", "active_fraction_2", "active_fraction_3", "kurtosis"))
            )
    for note in result.get("notes", []):
        out_console.print(f"note: {note}")


def evaluate_cmd(
    ref: Annotated[str, typer.Argument(help="Run directory, checkpoint directory or zoo name.")],
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Dataset (default: the one the model was trained on).")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    fmt: Annotated[EvalFormat, typer.Option("--format", "-f", help="text, json or csv (long format).")] = EvalFormat.text,
    per_lead_time: Annotated[bool, typer.Option("--per-lead-time", help="Also report scores per lead time.")] = False,
    compat: Annotated[Optional[Compat], typer.Option("--compat", help="openstl: only the official metric() scores of the model.")] = None,
    root: Annotated[Optional[Path], typer.Option("--root", help="Dataset root directory.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Evaluation batch size.")] = None,
    max_batches: Annotated[Optional[int], typer.Option("--max-batches", min=1, help="Score only the first batches (quick check).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Score a model: OpenSTL-compatible and WeatherBench2-style metrics, with persistence
    and climatology as reference forecasts, and SVQ code-usage diagnostics.

    Example: svqcast evaluate runs/era5-uk-t2m_gsta_svq --dataset era5-uk-t2m --per-lead-time
    """
    from svqcast.evaluate import evaluate, result_rows

    if split not in {"train", "val", "test"}:
        raise UsageError(f"--split: '{split}' is not one of train, val, test")
    result = evaluate(
        ref,
        dataset,
        split,
        per_lead_time,
        compat.value if compat else None,
        root=root,
        batch_size=batch_size,
        max_batches=max_batches,
        device=device,
    )
    if fmt == EvalFormat.csv:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["forecast", "metric", "channel", "lead_time", "value"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(result_rows(result))
        sys.stdout.write(buf.getvalue())
        return
    emit(result, fmt.value, _render_eval)


def register(app: typer.Typer) -> None:
    """Add `train` and `evaluate` to the root app."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
