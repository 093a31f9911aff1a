"""The Python API the CLI calls. Importable from `svqcast` (lazily)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from svqcast.config import load_config


def build_model(
    preset_or_config: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
):
    """Build the `torch.nn.Module` of a preset, TOML file or config dict.

    The module maps normalised `(B, T_in, C, H, W)` to `(B, T_out, C, H, W)`; `overrides`
    takes the dotted keys of `--set`, e.g. `{"model.codebook_size": 4096}`.
    """
    from svqcast.models.factory import build_model_from_config

    return build_model_from_config(load_config(preset_or_config, overrides))


def load_model(ref: str | Path | None = None, *, device: str = "cpu"):
    """A `Forecaster` for a zoo name, `hf://org/repo@rev` or a checkpoint/run directory
    (None: the zoo's default model); `.predict(xarray obj, steps=...)` -> CF xarray.Dataset."""
    from svqcast.forecast.forecaster import load_model as _load_model

    return _load_model(ref, device=device)


def train(
    preset_or_config: str | Path | Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    run_dir: str | Path | None = None,
    max_epochs: int | None = None,
    **kwargs: Any,
) -> Path:
    """Train a preset / TOML file / config dict; returns the run directory
    (`best/`, `last/`, `trainer_state.pt`, `metrics.csv`). Keyword options (`resume`,
    `dataset`, `precision`, `seed`, `deterministic`, `progress`) are those of
    `svqcast.training.loop.train`; see docs/training.md."""
    from svqcast.training.loop import train as _train

    return _train(preset_or_config, overrides, run_dir=run_dir, max_epochs=max_epochs, **kwargs)


def evaluate(
    ref: str | Path,
    dataset: str | None = None,
    split: str = "test",
    per_lead_time: bool = False,
    compat: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score a run dir / checkpoint dir / zoo model on a dataset split: OpenSTL-compatible
    and WeatherBench2-style scores of the model, persistence and climatology (a JSON-ready
    dict; see docs/evaluation.md)."""
    from svqcast.verify.evaluation import evaluate as _evaluate

    return _evaluate(ref, dataset, split, per_lead_time, compat, **kwargs)


def predict(
    ref: str | Path | None,
    data: Any,
    steps: int | None = None,
    lead_time: Any = None,
    init_time: Any = None,
    *,
    device: str = "cpu",
    **kwargs: Any,
):
    """`svqcast predict` in one call: `load_model(ref).predict(data, ...)`, a CF-1.8
    `xarray.Dataset` (keep the `Forecaster` of `load_model` to forecast many times)."""
    return load_model(ref, device=device).predict(data, steps, lead_time, init_time, **kwargs)


def predict_many(input: str | Path, output: str | Path, init_times: str | Iterable[str], *,
                 score_against: str | Path | None = None, climatology: str | Path | None = None,
                 progress: Any = None, **kwargs: Any) -> dict:
    """`svqcast predict --init-times`: forecasts of many initialisations streamed into the zarr
    store `output` batch by batch (flat memory, resumable, sharded under torchrun), scored against
    `score_against` while forecasting. `init_times`: "START:END:STEP", a comma list or a list;
    `kwargs`: the fields of `svqcast.forecast.run.PredictRequest` (model, steps, layout, batch_size...).
    Returns the report (inits, computed, skipped, forecasts_per_second, and `scores` on rank 0)."""
    from svqcast.forecast.run import PredictRequest
    from svqcast.forecast.stream import StreamHooks, parse_init_times, predict_stream

    inits = parse_init_times(init_times) if isinstance(init_times, str) else [str(t) for t in init_times]
    req = PredictRequest(input, output, init_time=inits, **kwargs)
    hooks = StreamHooks()
    if score_against is not None and not req.check:
        from svqcast.verify.streamscore import StreamScorer

        scorer = StreamScorer(score_against, output, climatology=climatology)
        hooks = StreamHooks(scorer.on_batch, scorer.on_finish)
    return predict_stream(req, hooks, progress=progress)


def get_split_dataset(name: str, split: str, **kwargs: Any):
    """Normalised (input, target) windows of a dataset split (a torch Dataset with `.spec`
    and `.times(i)`); embedded samples are prepared on first use. See docs/data.md."""
    from svqcast.data import get_split_dataset as _get

    return _get(name, split, **kwargs)


def prepare_dataset(name: str, root: str | Path | None = None, **kwargs: Any) -> Path:
    """`svqcast prepare`: raw files -> standard store + stats.json + manifest.json."""
    from svqcast.data.prepare import prepare as _prepare

    return _prepare(name, root, **kwargs)


def convert_openstl(checkpoint: str | Path, preset: str | Path, out_dir: str | Path, **kwargs: Any) -> dict:
    """`svqcast models convert openstl`: OpenSTL / SVQ-Forecasting .pth -> svqcast checkpoint
    directory (weights-only load, strict key mapping; see docs/convert.md)."""
    from svqcast.zoo.convert import convert_openstl as _convert

    return _convert(checkpoint, preset, out_dir, **kwargs)


__all__ = [
    "build_model", "load_config", "load_model", "train", "evaluate", "predict", "predict_many", "get_split_dataset",
    "prepare_dataset", "convert_openstl",
]
