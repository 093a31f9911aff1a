"""Model cards: one builder, used by `svqcast train` (every checkpoint's README.md) and by
`svqcast models push`, on huggingface_hub's `ModelCard` / `ModelCardData` so the metadata
(licence, tags, datasets, `model-index` with `EvalResult`s) is validated Hub card data, not
hand-written YAML.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from svqcast._version import __version__
from svqcast.config import typed_config
from svqcast.config_schema import SvqcastConfig

TASK = "time-series-forecasting"
TAGS = ["spatiotemporal-forecasting", "sparse-vector-quantization", "simvp", "svqcast"]
CITATION = (
    "Chen et al., Does Vector Quantization Fail in Spatio-Temporal Forecasting? Exploring a Differentiable "
    "Sparse Soft-Vector Quantization Approach, arXiv:2312.03406."
)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _epoch1(epoch: Any) -> str:
    """metrics.jsonl counts epochs from 0 (the scheduler's index); people count from 1."""
    return str(int(epoch) + 1) if isinstance(epoch, int) else "?"


def best_val_row(run_dir: Path | None) -> dict[str, Any]:
    """Best validation row of a run's metrics.jsonl (lowest val_loss), if there is one."""
    path = run_dir / "metrics.jsonl" if run_dir is not None else None
    if path is None or not path.is_file():
        return {}
    best: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        val = row.get("val_loss") if isinstance(row, dict) else None
        if isinstance(val, (int, float)) and (not best or val < best["val_loss"]):
            best = row
    return best


def _sections(meta: Mapping[str, Any]) -> tuple[SvqcastConfig, dict, dict]:
    """(the typed config, defaults merged; the data spec; the provenance) of a checkpoint's meta."""
    return (typed_config(meta.get("config") or {}), dict(meta.get("data_spec") or {}),
            dict(meta.get("provenance") or {}))


def _dataset(meta: Mapping[str, Any]) -> str:
    cfg, spec, _ = _sections(meta)
    return str(spec.get("dataset") or cfg.data.dataset or "?")


def card_data(meta: Mapping[str, Any], name: str, licence: str, metrics: Mapping[str, Any] | None) -> Any:
    """The card's metadata; numeric `metrics` become `EvalResult`s on the model's dataset."""
    from huggingface_hub import EvalResult, ModelCardData

    dataset = _dataset(meta)
    results = [
        EvalResult(task_type=TASK, dataset_type=dataset, dataset_name=dataset, dataset_split="test",
                   metric_type=str(key), metric_value=float(value))
        for key, value in (metrics or {}).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    ft = (meta.get("provenance") or {}).get("fine_tuned_from") or {}
    parent = str(ft.get("parent") or "")
    base = ft.get("repo_id") or (parent[len("hf://"):].split("@")[0] if parent.startswith("hf://") else None)
    return ModelCardData(
        library_name="svqcast", license=licence, tags=list(TAGS), pipeline_tag=TASK,
        datasets=[dataset] if dataset != "?" else None, model_name=name,
        eval_results=results or None, base_model=base,
    )


def _model_lines(meta: Mapping[str, Any]) -> list[str]:
    cfg, _, _ = _sections(meta)
    model = cfg.model
    codebook = f", codebook {model.codebook_size}" if model.quantizer != "none" else ""
    return [
        "## Model", "",
        f"- preset: `{meta.get('preset') or cfg.name or '?'}`",
        f"- architecture: SimVP, translator `{model.translator}`, hid_S={model.hid_S}, "
        f"hid_T={model.hid_T}, N_S={model.N_S}, N_T={model.N_T}",
        f"- quantizer: `{model.quantizer}`{codebook}",
        f"- svqcast version: {meta.get('svqcast_version', __version__)}",
        f"- weights sha256: `{meta.get('weights_sha256', '?')}`",
        *_parent_lines(meta),
    ]


def _parent_lines(meta: Mapping[str, Any]) -> list[str]:
    """A fine-tune names its parent: reference, weights sha256, what was loaded, frozen, which stats."""
    ft = (meta.get("provenance") or {}).get("fine_tuned_from")
    if not ft:
        return []
    rev = f", revision `{ft['revision']}`" if ft.get("revision") else ""
    return [f"- fine-tuned from: `{ft.get('parent')}`{rev} (weights sha256 `{ft.get('weights_sha256')}`); "
            f"{ft.get('loaded')} tensors loaded, {len(ft.get('new') or [])} new, {len(ft.get('dropped') or [])} "
            f"dropped; frozen: {', '.join(ft.get('frozen') or []) or 'nothing'}; statistics: {ft.get('stats')}"]


def _data_lines(meta: Mapping[str, Any]) -> list[str]:
    _, spec, _ = _sections(meta)
    coords = spec.get("coords") or {}
    dims = spec.get("dims") or ["lat", "lon"]
    grid = " x ".join(f"{d} {len(coords.get(d, []))}" for d in dims) if coords else "?"
    step_s = spec.get("time_step_seconds")
    step = f"{int(step_s) // 3600} h" if step_s and int(step_s) % 3600 == 0 else (f"{step_s} s" if step_s else "?")
    return [
        "## Data", "",
        f"- dataset: `{_dataset(meta)}`; variables {spec.get('variables', '?')} in {spec.get('units', '?')}",
        f"- grid: {grid}; time step {step}; "
        f"{spec.get('t_in', '?')} input frames -> {spec.get('t_out', '?')} output frames",
        "- normalisation: per-channel z-score with the training split's mean/std (stored in config.json)",
    ] + _user_data_lines(spec)


def _user_data_lines(spec: Mapping[str, Any]) -> list[str]:
    """Provenance of a dataset prepared from the user's own files (`svqcast prepare PATH`)."""
    extra = spec.get("extra") or {}
    if not extra.get("user_dataset"):
        return []
    files = [f"`{name}` ({digest if ' ' in str(digest) else f'sha256 {digest}'})"
             for name, digest in (extra.get("source_files") or {}).items()]
    padded = ", grid padded to the encoder stride and cropped back" if any(spec.get("padding") or []) else ""
    source = ", ".join(files) or "the user's files"
    return [f"- prepared with `svqcast prepare` from {source}; time step {extra.get('time_step', '?')}{padded}"]


def _training_lines(meta: Mapping[str, Any], best_val: Mapping[str, Any] | None, which: str | None) -> list[str]:
    cfg, _, prov = _sections(meta)
    train = cfg.train
    lines = [
        "## Training", "",
        f"- recipe: loss {train.loss}, lr {train.lr}, optimizer {train.optimizer}, "
        f"scheduler {train.scheduler}, batch {train.batch_size}, seed {train.seed}",
    ]
    if which:
        epochs_done = prov.get("epoch")  # provenance counts epochs done (1-based), metrics.jsonl from 0
        lines.append(f"- this checkpoint: {which}, epoch {epochs_done if isinstance(epochs_done, int) else '?'}, "
                     f"val_loss {_fmt(prov.get('val_loss'))}")
    if best_val:
        lines.append(f"- best validation epoch {_epoch1(best_val.get('epoch'))}: "
                     f"val_loss {_fmt(best_val.get('val_loss'))}")
    for key in ("data_hash", "data_manifest_sha256", "git_commit", "seed"):
        if prov.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: `{prov[key]}`")
    return lines


def _usage_lines(ref: str) -> list[str]:
    return [
        "## Use", "",
        "```bash", f"svqcast predict input.nc -o forecast.nc --model {ref}", "```", "",
        "```python", "import svqcast, xarray as xr",
        f"fc = svqcast.load_model({ref!r}).predict(xr.open_dataset('input.nc'))", "```", "",
        "## Citation", "", CITATION, "",
    ]


def model_card(
    meta: Mapping[str, Any],
    *,
    name: str,
    repo_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    scores_table: str | None = None,
    best_val: Mapping[str, Any] | None = None,
    licence: str = "apache-2.0",
    description: str | None = None,
    which: str | None = None,
    usage_ref: str | None = None,
) -> str:
    """A Hugging Face model card (validated metadata + markdown) from a checkpoint's config.json
    contents (`meta`), optional test metrics and the run's best validation row. `usage_ref`: what
    the usage example loads (default: the Hub repository, else `name`)."""
    from huggingface_hub import ModelCard

    data = card_data(meta, name, licence, metrics)
    body = [f"# {name}", "", description or f"SimVP + SVQ forecaster trained with svqcast on `{_dataset(meta)}`.", ""]
    body += _model_lines(meta) + [""] + _data_lines(meta) + [""] + _training_lines(meta, best_val, which)
    if scores_table or metrics:
        body += ["", "## Evaluation", ""]
        if scores_table:
            body.append(scores_table)
        if metrics:
            body += ["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    if meta.get("ensemble"):
        body += ["", ensemble_section(meta["ensemble"]).rstrip()]
    body += [""] + _usage_lines(usage_ref or (f"hf://{repo_id}" if repo_id else name))
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
    return str(card)


def ensemble_section(fitted: Mapping[str, Any]) -> str:
    """The card's ensemble section from config.json `ensemble`: the fitted noise amplitude and
    per-lead dispersion, the spread/skill per lead on the validation split and, when measured,
    the held-out table."""
    by_lead = dict(fitted.get("spread_skill_by_lead") or {})
    raw = dict(fitted.get("spread_skill_by_lead_amplitude_only") or {})
    dispersion = dict(fitted.get("dispersion") or {})
    leads = len(next(iter(by_lead.values()), []))
    lines = ["## Ensemble", "",
             f"Noise members (`svqcast predict --members N --perturb noise`): amplitude "
             f"{', '.join(f'{a:.4g}' for a in fitted.get('amplitude') or [])} (physical units, per channel), "
             f"correlation length {float(fitted.get('length_cells', 0)):g} cells, fitted on {fitted.get('fitted_on')} "
             f"({fitted.get('samples')} samples, {fitted.get('members')} members) so that spread matches skill on "
             "average over the leads" + ("; then each lead's members are moved towards or away from their mean by "
                                         "the dispersion factor below, fitted on the same samples" if dispersion
                                         else "") + ".", ""]
    if leads:
        lines += ["| channel | " + " | ".join(f"+{j + 1}" for j in range(leads)) + " |", "|---" * (leads + 1) + "|"]
        for label, table in (("spread/skill, amplitude only", raw), ("dispersion", dispersion),
                             ("spread/skill" + (", calibrated" if dispersion else ""), by_lead)):
            lines += [f"| {ch} {label} | " + " | ".join(f"{v:.2f}" for v in values) + " |"
                      for ch, values in table.items()]
    held = fitted.get("held_out")
    if held:
        n = len(held["crps"])
        lines += ["", f"On the held-out {held['split']} split ({held['samples']} forecasts, {held['members']} members; "
                  "`svqcast.verify.calibrate.ensemble_skill`):", "",
                  "| lead | " + " | ".join(f"+{j + 1}" for j in range(n)) + " |", "|---" * (n + 1) + "|"]
        for key, label in (("spread_skill", "spread/skill"), ("crps", "CRPS"), ("mae", "deterministic MAE"),
                           ("crps_climatology", "climatological ensemble CRPS")):
            lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in held[key]) + " |")
        lines += ["", "What these numbers mean, and where spread/skill is off: docs/ensembles.md."]
    return "\n".join(lines) + "\n"


def training_card(
    config: Mapping[str, Any],
    provenance: Mapping[str, Any],
    which: str,
    data_spec: Mapping[str, Any] | None = None,
    *,
    run: str | None = None,
    weights_sha256: str | None = None,
) -> str:
    """The card `svqcast train` writes next to each checkpoint (best/, last/): the same builder
    as `models push`, fed from the run's config, provenance and weights digest. It is named after
    the run and its dataset, and its usage example loads the run (never a zoo model of the preset)."""
    meta = {"config": dict(config), "provenance": dict(provenance), "data_spec": dict(data_spec or {}),
            "preset": config.get("name"), "svqcast_version": provenance.get("svqcast_version", __version__),
            **({"weights_sha256": weights_sha256} if weights_sha256 else {})}
    dataset = (config.get("data") or {}).get("dataset")
    name = f"{run or config.get('name') or 'svqcast model'}" + (f" ({dataset})" if dataset else "")
    return model_card(meta, name=name, which=which, usage_ref=run)
