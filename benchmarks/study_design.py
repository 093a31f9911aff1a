"""The SVQ study's design: the datasets, their recipes, the model family and the ablation (data,
not code), the training budget, and the plan of runs that follows from them (see study.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "results" / "study.json"
DEFAULT_DOC = REPO / "docs" / "results.md"
DEFAULT_IMG = REPO / "docs" / "img"
#: the machine budget of the whole study (all sessions together), in hours
BUDGET_HOURS = 5.0

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
