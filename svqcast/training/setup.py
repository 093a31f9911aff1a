"""What a training run needs before its first step: the run directory and config, the
datasets, seeding, the loss, data provenance, and the Ctrl-C flag.

The epoch loop itself is in :mod:`svqcast.training.loop`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from svqcast.config import Config, load_config, read_json_config, typed_config
from svqcast.data import get_split_dataset
from svqcast.data.loading import verify_store
from svqcast.data.storedir import MANIFEST
from svqcast.data.windows import WindowDataset
from svqcast.errors import UsageError
from svqcast.fsutil import check_output, sha256_file
from svqcast.models.factory import build_model_from_config
from svqcast.models.fastpath import autocast_context
from svqcast.training.finetune import open_parent
from svqcast.training.state import STATE_NAME
from svqcast.zoo.card import training_card

LOSSES = ("mae", "mse", "huber")
PRECISIONS = ("32", "bf16")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> None:
    """The official seeding: the same seed to random, numpy and torch on every rank."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels (bit-identical reruns; slower on GPU)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def criterion(name: str) -> LossFn:
    """Plain mean over all elements, as the official ``nn.L1Loss`` / ``nn.MSELoss``."""
    losses: dict[str, LossFn] = {"mae": F.l1_loss, "mse": F.mse_loss, "huber": F.huber_loss}  # huber: delta 1.0
    if name not in losses:
        raise UsageError(f"train.loss: unknown '{name}'; choose one of {', '.join(LOSSES)}")
    return losses[name]


def skipping_missing(loss_fn: LossFn) -> LossFn:
    """`loss_fn` over the valid target cells only: for data whose store records missing cells
    (a static mask, allowed gaps), whose targets hold NaN there. Elsewhere a NaN is a fault the
    loop must see, so this wrapper is used only for such data."""

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = torch.isfinite(target)
        if bool(valid.all()):
            return loss_fn(pred, target)
        return loss_fn(pred[valid], target[valid])

    return loss


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for "bf16", nothing for "32" (svqcast.models.fastpath)."""
    return autocast_context(device, precision)


def git_commit() -> str | None:
    """The commit of the svqcast source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def data_provenance(dataset: Dataset, spec_dict: Mapping[str, Any]) -> dict[str, str | None]:
    """What identifies the training data, for the checkpoint's provenance.

    ``data_manifest_sha256`` is the sha256 of the prepared store's ``manifest.json`` when
    training reads a prepared store; the store is verified against its manifest first,
    because its statistics are about to be written into the checkpoint. Custom datasets
    (``train(datasets=...)``) have no store: ``data_hash`` is then the sha256 of their
    data spec, else it names the manifest.
    """

    if isinstance(dataset, WindowDataset):
        store = Path(dataset.path).parent
        verify_store(store, deep=True)
        manifest = sha256_file(store / MANIFEST)
        return {"data_manifest_sha256": manifest, "data_hash": f"manifest-sha256:{manifest}"}
    canon = json.dumps(dict(spec_dict), sort_keys=True, default=str).encode()
    return {"data_manifest_sha256": None, "data_hash": "spec-sha256:" + hashlib.sha256(canon).hexdigest()}


class SkipSampler(Sampler[int]):
    """Wraps a sampler and drops its first `skip` indices (resuming a partial epoch).

    One instance serves every epoch: the loop sets `skip` before each epoch, so the
    DataLoader (and its persistent workers) is built once."""

    def __init__(self, base: Sampler[int], skip: int = 0) -> None:
        self.base = base
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        for i, idx in enumerate(self.base):
            if i >= self.skip:
                yield idx

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)  # type: ignore[arg-type]


def default_run_dir(cfg: Mapping[str, Any]) -> Path:
    """runs/<preset> for the preset's own dataset (presets are named `<dataset>_<translator>...`),
    runs/<preset>-<dataset> for any other: two datasets trained with one preset never share one."""
    name, dataset = str(cfg.get("name") or "run"), str(cfg["data"]["dataset"])
    own = name.startswith(f"{dataset}_") or name == dataset or name.endswith(f"-{dataset}")
    return Path("runs") / (name if own else f"{name}-{dataset}")


def resolve_run(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | Iterable[str] | None,
    run_dir: str | Path | None,
    resume: str | Path | None,
) -> tuple[Config, Path, bool]:
    """Decide the config, the run directory and whether to resume.

    * ``resume=None``: a new run; its directory (default ``runs/<preset>-<dataset>``) must not
      already hold one.
    * ``resume="auto"``: continue the run in ``run_dir`` if it has a trainer state, else start.
    * ``resume=DIR``: continue the run in DIR (its stored config wins; overrides apply on top).

    A run is only ever continued with its own preset and dataset: anything else is refused
    naming both, so a model of one dataset never silently trains on another.
    """
    if resume is not None and str(resume) != "auto":
        run = Path(resume)
        if not (run / STATE_NAME).is_file():
            raise UsageError(f"`resume` {run}: no {STATE_NAME} there; is it a svqcast run directory?")
        resuming = True
        wanted = load_config(config, overrides) if config is not None else None
    else:
        if config is None and run_dir is None:
            raise UsageError("give `preset` (a preset name) or `config` (a TOML file)")
        wanted = load_config(config, overrides) if config is not None else None
        run = Path(run_dir) if run_dir is not None else default_run_dir(wanted or {})
        resuming = resume is not None and (run / STATE_NAME).is_file()
        if not resuming and (run / STATE_NAME).is_file():
            raise UsageError(f"{run} already holds a run; continue it with `resume` auto, or choose another `run_dir`")
    check_output(run, overwrite=True, kind="dir")  # a file, a FIFO or an unwritable place: exit 2
    if resuming:
        stored = read_json_config(run / "config.json", "the run's config")
        resumed = load_config(stored, overrides)
        _same_run(run, stored, wanted, resumed)
        return resumed, run, True
    if wanted is None:
        raise UsageError("give `preset` (a preset name) or `config` (a TOML file)")
    return wanted, run, False


def _same_run(run: Path, stored: Mapping[str, Any], wanted: Mapping[str, Any] | None,
              resumed: Mapping[str, Any]) -> None:
    """Refuse to continue `run` with another preset or on another dataset (one line naming both)."""
    had = (stored.get("name"), (stored.get("data") or {}).get("dataset"))
    for what, now in (("preset", (wanted or {}).get("name")),
                      ("dataset", (wanted or resumed)["data"]["dataset"])):
        before = had[0] if what == "preset" else had[1]
        if now is not None and before is not None and now != before:
            raise UsageError(f"`resume`: {run} holds a run of {what} '{before}', not '{now}'; continue it without "
                             f"changing its {what}, or start a new run in another `run_dir`")


def build_datasets(cfg: Config) -> tuple[Dataset, Dataset]:
    """Training and validation splits of ``data.dataset`` for the model's T_in / T_out."""

    conf = typed_config(cfg)
    kwargs: dict[str, Any] = {
        "t_in": conf.model.in_shape[0],
        "t_out": conf.model.out_frames,
        "root": conf.data.root or None,
    }
    if conf.data.official_validation:
        kwargs["official_validation"] = True
    if conf.train.keep_stats:  # a fine-tune that normalises with its parent's statistics
        if not conf.train.init_from:
            raise UsageError("train.keep_stats keeps the statistics of the `init_from` model; give one")
        stats = parent_stats(conf.train.init_from)
        if stats is None:
            raise UsageError(f"train.keep_stats: {conf.train.init_from} records no normalisation statistics")
        kwargs["stats"] = stats
    name = conf.data.dataset
    return get_split_dataset(name, "train", **kwargs), get_split_dataset(name, "val", **kwargs)


def parent_stats(ref: str) -> tuple[list[float], list[float]] | None:
    """The (mean, std) of the data spec of checkpoint `ref` (verified like every load)."""
    return open_parent(ref).stats


def check_shapes(cfg: Config, ds: Dataset) -> None:
    """The model's ``in_shape`` (C, H, W) must match what the dataset yields."""
    x, y = ds[0]
    m = typed_config(cfg).model
    want = list(m.in_shape)
    got = [int(v) for v in x.shape]
    if got != want:
        raise UsageError(
            f"model.in_shape {want} does not match the dataset's input clips {got}; "
            f"use `overrides` model.in_shape={got} (and a matching model) or another preset"
        )
    t_out = m.out_frames
    if int(y.shape[0]) != t_out:
        raise UsageError(f"model.out_frames {t_out} does not match the dataset's targets {list(y.shape)}")


def default_model_fn(cfg: Config) -> torch.nn.Module:
    return build_model_from_config(cfg)


def model_card(cfg: Config, provenance: Mapping[str, Any], which: str, data_spec: Mapping[str, Any] | None = None,
               run: Path | None = None) -> Callable[[str], str]:
    """The checkpoint's README.md, given the weights' sha256 once they are written: the one card
    builder `models push` uses too, named after the run and its dataset."""
    return lambda sha256: training_card(cfg, provenance, which, data_spec, run=None if run is None else str(run),
                                        weights_sha256=sha256)


class StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks after every step (all ranks agree
    on it at log points); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
