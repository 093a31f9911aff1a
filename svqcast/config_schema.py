"""The typed config: one frozen dataclass per section of `presets/_defaults.toml`.

`_defaults.toml` is the one place a default is written. Each field below declares its name
and type only; its default is read from the file when this module is imported (`_default`),
and the import fails if a section of the file and its dataclass do not name the same keys.

Build a tree with `svqcast.config.typed_config(cfg)` (or `model_config` for the `[model]`
section alone): it merges the defaults under `cfg` and checks keys, types and ranges first.
The nested dict stays the serialized form (config.json, `--set`); code reads the fields.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS_FILE = "_defaults.toml"
SECTIONS = ("model", "data", "train")


def _read_defaults() -> dict[str, Any]:
    with resources.files("svqcast.presets").joinpath(DEFAULTS_FILE).open("rb") as fh:
        return tomllib.load(fh)


#: `_defaults.toml` as read at import. Read-only: copy it (`copy.deepcopy`) before changing it.
DEFAULTS: dict[str, Any] = _read_defaults()


def _default(section: str, key: str) -> Any:
    """The default of `section.key`: the value `_defaults.toml` gives it."""
    value = DEFAULTS[section][key]
    if isinstance(value, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(value))
    return value


@dataclass(frozen=True)
class ModelConfig:
    """`[model]` (read by svqcast.models.factory and the quantizer registry)."""

    arch: str = _default("model", "arch")
    in_shape: list[int] = _default("model", "in_shape")
    out_frames: int = _default("model", "out_frames")
    hid_S: int = _default("model", "hid_S")
    hid_T: int = _default("model", "hid_T")
    N_S: int = _default("model", "N_S")
    N_T: int = _default("model", "N_T")
    translator: str = _default("model", "translator")
    mlp_ratio: float = _default("model", "mlp_ratio")
    drop: float = _default("model", "drop")
    drop_path: float = _default("model", "drop_path")
    spatio_kernel_enc: int = _default("model", "spatio_kernel_enc")
    spatio_kernel_dec: int = _default("model", "spatio_kernel_dec")
    swin_shift_mask: bool = _default("model", "swin_shift_mask")
    fused_attn: bool = _default("model", "fused_attn")
    quantizer: str = _default("model", "quantizer")
    codebook_size: int = _default("model", "codebook_size")
    codebook_init: str = _default("model", "codebook_init")
    middim: int = _default("model", "middim")
    nonlinear: bool = _default("model", "nonlinear")
    hid_relu: bool = _default("model", "hid_relu")
    out_relu: bool = _default("model", "out_relu")
    post_vq: bool = _default("model", "post_vq")
    freeze_projection: bool = _default("model", "freeze_projection")
    residual: str = _default("model", "residual")
    residual_period: int = _default("model", "residual_period")
    vq_options: dict[str, Any] = _default("model", "vq_options")  # a free table (quantizer keywords)


@dataclass(frozen=True)
class DataConfig:
    """`[data]`."""

    dataset: str = _default("data", "dataset")
    root: str = _default("data", "root")
    official_validation: bool = _default("data", "official_validation")


@dataclass(frozen=True)
class TrainConfig:
    """`[train]` (read by svqcast.training)."""

    epochs: int = _default("train", "epochs")
    batch_size: int = _default("train", "batch_size")
    val_batch_size: int = _default("train", "val_batch_size")
    lr: float = _default("train", "lr")
    optimizer: str = _default("train", "optimizer")
    weight_decay: float = _default("train", "weight_decay")
    scheduler: str = _default("train", "scheduler")
    warmup_epochs: int = _default("train", "warmup_epochs")
    warmup_lr: float = _default("train", "warmup_lr")
    min_lr: float = _default("train", "min_lr")
    final_div_factor: float = _default("train", "final_div_factor")
    loss: str = _default("train", "loss")
    aux_loss_weight: float = _default("train", "aux_loss_weight")
    patience: int = _default("train", "patience")
    clip_grad: float = _default("train", "clip_grad")
    seed: int = _default("train", "seed")
    num_workers: int = _default("train", "num_workers")
    precision: str = _default("train", "precision")
    deterministic: bool = _default("train", "deterministic")
    device: str = _default("train", "device")
    max_steps_per_epoch: int = _default("train", "max_steps_per_epoch")
    max_val_steps: int = _default("train", "max_val_steps")
    tensorboard: bool = _default("train", "tensorboard")
    sync_batchnorm: bool = _default("train", "sync_batchnorm")
    num_threads: int = _default("train", "num_threads")
    channels_last: str = _default("train", "channels_last")
    compile: bool = _default("train", "compile")
    init_from: str = _default("train", "init_from")
    init_strict: bool = _default("train", "init_strict")
    freeze: str = _default("train", "freeze")
    keep_stats: bool = _default("train", "keep_stats")


SECTION_TYPES: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


@dataclass(frozen=True)
class SvqcastConfig:
    """A whole config: the three sections plus the loader's `name` and the `description`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = ""
    description: str = ""

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> SvqcastConfig:
        """The tree of a CHECKED config dict (`svqcast.config.validate_config`); keys it
        lacks take the defaults. Use `svqcast.config.typed_config`, which checks first."""
        top = {key: str(cfg[key]) for key in ("name", "description") if key in cfg}
        return cls(ModelConfig(**cfg["model"]) if "model" in cfg else ModelConfig(),
                   DataConfig(**cfg["data"]) if "data" in cfg else DataConfig(),
                   TrainConfig(**cfg["train"]) if "train" in cfg else TrainConfig(), **top)

    def to_dict(self) -> dict[str, Any]:
        """The nested dict (what config.json stores); `name`/`description` only when set."""
        out = {section: asdict(getattr(self, section)) for section in SECTIONS}
        out.update({key: getattr(self, key) for key in ("description", "name") if getattr(self, key)})
        return out


def _check_fields_match_defaults() -> None:
    """Each dataclass names exactly the keys of its `_defaults.toml` section."""
    sections = {k for k, v in DEFAULTS.items() if isinstance(v, dict)}
    if sections != set(SECTIONS):
        raise RuntimeError(f"{DEFAULTS_FILE}: sections {sorted(sections)}, svqcast.config_schema {list(SECTIONS)}")
    for section, cls in SECTION_TYPES.items():
        names, keys = {f.name for f in fields(cls)}, set(DEFAULTS[section])
        if names != keys:
            raise RuntimeError(f"{DEFAULTS_FILE} [{section}] and svqcast.config_schema.{cls.__name__} differ in "
                               f"{sorted(names ^ keys)}: add the field (or the key) to both")


_check_fields_match_defaults()
