"""What one training run is built from: the `Trainer` (data, loaders, model, optimizer,
schedule, restored state, provenance), assembled once by :func:`setup_trainer`.

The loop itself (`svqcast.training.loop`) only steps, validates and saves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from svqcast._version import __version__
from svqcast.config import Config, read_json_config, typed_config
from svqcast.config_schema import TrainConfig
from svqcast.data.climatology import PhaseDataset, fill_climatology
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import atomic_write_text
from svqcast.models.fastpath import compile_model, prepare_model
from svqcast.models.phase import cycle_of, needs_phase
from svqcast.progress import Progress as Reporter
from svqcast.progress import resolve_progress
from svqcast.training import distributed as D
from svqcast.training.finetune import freeze, open_parent, parse_freeze, trainable, transfer_weights
from svqcast.training.memory import check_fits
from svqcast.training.runlog import RunLog
from svqcast.training.schedules import Schedule, build_schedule
from svqcast.training.setup import (
    LossFn,
    SkipSampler,
    build_datasets,
    check_shapes,
    data_provenance,
    default_model_fn,
    git_commit,
    seed_everything,
    set_deterministic,
    skipping_missing,
)
from svqcast.training.state import (
    STATE_NAME,
    EarlyStopping,
    Progress,
    early_from,
    load_trainer_state,
    progress_from,
    restore_rng,
)
from svqcast.zoo.checkpoint import load_strict

ModelFn = Callable[[Config], torch.nn.Module]
#: log points per epoch (each copies the running loss to the host); at most every 50 steps
LOGS_PER_EPOCH = 10
MAX_LOG_INTERVAL = 50


@dataclass
class Trainer:
    """Everything one training invocation holds (built by :func:`setup_trainer`)."""

    cfg: Config
    run: Path
    env: D.DistEnv
    model: torch.nn.Module  # the module itself: checkpoints, clipping
    net: torch.nn.Module  # what is called: the model, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: LossFn
    precision: str
    train_ds: Dataset
    sampler: DistributedSampler
    skip: SkipSampler
    train_loader: DataLoader
    val_ds: Dataset
    val_loader: DataLoader
    batch: int
    steps_per_epoch: int
    log_every: int
    progress: Progress
    early: EarlyStopping
    runlog: RunLog
    bar: Reporter  # where the run reports (svqcast.progress)
    provenance: dict[str, Any]
    spec_dict: dict[str, Any]

    @cached_property
    def tc(self) -> TrainConfig:
        """`[train]`, typed and complete (`_defaults.toml` merged under it)."""
        return typed_config(self.cfg).train


def load_data(cfg: Config, env: D.DistEnv, datasets: tuple[Dataset, Dataset] | None) -> tuple[Dataset, Dataset]:
    """Rank 0 first: it may have to prepare the dataset (embedded samples are unpacked on
    first use); then the first process of each other node (a node-local data dir), then the
    rest, which open the prepared store (svqcast.training.distributed.in_turns)."""
    train_ds, val_ds = datasets if datasets is not None else D.in_turns(env, lambda: build_datasets(cfg))
    if len(train_ds) == 0 or len(val_ds) == 0:  # type: ignore[arg-type]
        raise DataError(f"dataset '{cfg['data']['dataset']}': empty training or validation split")
    check_shapes(cfg, train_ds)
    return train_ds, val_ds


def make_loaders(
    tc: TrainConfig, env: D.DistEnv, train_ds: Dataset, val_ds: Dataset
) -> tuple[DistributedSampler, SkipSampler, DataLoader, DataLoader]:
    """One DataLoader per split for the whole run: workers persist across epochs (the
    sampler is re-seeded per epoch in place), pinned memory feeds a GPU asynchronously."""
    seed, batch, workers = tc.seed, tc.batch_size, tc.num_workers
    base: DistributedSampler = DistributedSampler(
        train_ds, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=True
    )
    if len(base) < batch:
        raise UsageError(
            f"the training split has {len(train_ds)} samples ({len(base)} per process), "  # type: ignore[arg-type]
            f"fewer than train.batch_size = {batch}; lower it with `overrides` train.batch_size=..."
        )
    skip = SkipSampler(base)
    common: dict[str, Any] = {
        "num_workers": workers, "persistent_workers": workers > 0, "pin_memory": env.device.type == "cuda",
    }
    train_loader = DataLoader(
        train_ds, batch_size=batch, sampler=skip, drop_last=True,
        generator=torch.Generator().manual_seed(seed), **common,
    )
    val_loader = DataLoader(
        val_ds, batch_size=tc.val_batch_size,
        sampler=list(range(env.rank, len(val_ds), env.world_size)),  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(seed), **common,
    )
    return base, skip, train_loader, val_loader


def with_phase(model: torch.nn.Module, train_ds: Dataset, val_ds: Dataset) -> tuple[Dataset, Dataset]:
    """For a climatology-residual model: fill its climatology from the training split and
    make both splits yield (x, y, phase); other models see the splits unchanged."""
    if not needs_phase(model):
        return train_ds, val_ds
    fill_climatology(model, train_ds)  # a resumed run then restores the saved table over it
    period = cycle_of(model)
    return PhaseDataset(train_ds, period), PhaseDataset(val_ds, period)


def unpack_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(x, y) or (x, y, phase) from a loader batch."""
    return batch[0], batch[1], (batch[2] if len(batch) > 2 else None)


def setup_trainer(
    cfg: Config, run: Path, resuming: bool, env: D.DistEnv, loss_fn: LossFn, prec: str,
    progress_kind: str | Reporter | None, datasets: tuple[Dataset, Dataset] | None, model_fn: ModelFn | None,
) -> Trainer:
    """Seed, open the data, build model, optimizer and schedule, restore a resumed run."""
    tc = typed_config(cfg).train
    parts = parse_freeze(tc.freeze)  # checked, like the parent, before any data or model work
    parent = open_parent(tc.init_from) if tc.init_from else None
    if tc.num_threads > 0:
        torch.set_num_threads(tc.num_threads)
    set_deterministic(tc.deterministic)
    seed_everything(tc.seed)
    train_ds, val_ds = load_data(cfg, env, datasets)
    if getattr(train_ds, "missing_ok", False):  # masked cells and allowed gaps are NaN in the targets
        loss_fn = skipping_missing(loss_fn)
    spec = getattr(train_ds, "spec", None)  # catalog datasets carry their DataSpec
    model = (model_fn or default_model_fn)(cfg).to(env.device)
    transfer = None if parent is None else transfer_weights(
        model, parent.state, parent.ref, parent.meta.get("weights_sha256"), strict=tc.init_strict, load=not resuming)
    if transfer is not None and parent is not None:
        transfer.repo_id, transfer.revision = parent.repo_id, parent.revision
    frozen = freeze(model, parts)
    prepare_model(model, prec, tc.channels_last, env.device)  # layout only; fp32 weights
    if spec is not None and hasattr(spec, "for_network"):  # record the grid padding (DataSpec.padding)
        spec = spec.for_network(int(getattr(model, "stride", 1)))
    spec_dict = spec.to_dict() if spec is not None else {}
    # measured at batch 1 before anything is written: refuse what cannot fit (the presets' models; a
    # custom `model_fn` may count its calls, so it is not called behind its back)
    if model_fn is None and len(cast(Sized, train_ds)) > 0:
        phase = {"phase": torch.zeros(1, dtype=torch.long, device=env.device)} if needs_phase(model) else None
        check_fits(model, train_ds[0][0], tc.batch_size, env.device, phase)
    sampler, skip, train_loader, val_loader = make_loaders(tc, env, *with_phase(model, train_ds, val_ds))
    steps = len(sampler) // tc.batch_size
    if tc.max_steps_per_epoch > 0:
        steps = min(steps, tc.max_steps_per_epoch)
    optimizer = torch.optim.Adam(trainable(model), lr=tc.lr, weight_decay=tc.weight_decay)
    schedule = build_schedule(optimizer, tc, steps)
    progress, early = Progress(), EarlyStopping(patience=tc.patience)
    provenance = run_provenance(cfg, env, train_ds, val_ds, spec_dict, prec)
    if transfer is not None and env.is_main:
        provenance["fine_tuned_from"] = {**transfer.record(), "frozen": frozen,
                                         "stats": "parent's" if tc.keep_stats else "the new dataset's"}
    elif frozen and env.is_main:
        provenance["frozen"] = frozen
    if resuming:
        _same_data(run, provenance)
        progress, early = restore_state(run, model, optimizer, schedule)
    net = D.wrap_model(model, env, sync_batchnorm=tc.sync_batchnorm)
    net = compile_model(net, tc.compile)  # `model` stays the uncompiled module for state
    runlog = RunLog(run, tensorboard=tc.tensorboard, enabled=env.is_main)
    if env.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.json", json.dumps(cfg, indent=2) + "\n")
        runlog.load_existing(before_epoch=progress.epoch)
    reporter = resolve_progress(progress_kind, enabled=env.is_main)
    if transfer is not None:
        reporter.message(f"fine-tune from {transfer.parent}: {len(transfer.loaded)} tensors loaded"
                         f"{' (weights of the run itself: resumed)' if resuming else ''}; new: "
                         f"{', '.join(transfer.new) or 'none'}; dropped: {', '.join(transfer.dropped) or 'none'}; "
                         f"frozen: {', '.join(frozen) or 'nothing'}; statistics: "
                         f"{'the parent' if tc.keep_stats else 'the new dataset'}'s")
    return Trainer(
        cfg, run, env, model, net, optimizer, schedule, loss_fn, prec, train_ds, sampler, skip, train_loader,
        val_ds, val_loader, tc.batch_size, steps, max(1, min(MAX_LOG_INTERVAL, steps // LOGS_PER_EPOCH)),
        progress, early, runlog, reporter, provenance, spec_dict,
    )


def _same_data(run: Path, provenance: Mapping[str, Any]) -> None:
    """A resumed run must train on the data it started with: a store prepared again with other
    content (its manifest changed) is refused, naming both digests."""
    last = run / "last" / "config.json"
    if not last.is_file():
        return
    before = (read_json_config(last, "the run's last checkpoint").get("provenance") or {}).get("data_hash")
    now = provenance.get("data_hash")
    if before and now and before != now:
        raise UsageError(f"`resume`: {run} was trained on data {str(before)[:30]}..., the dataset now holds "
                         f"{str(now)[:30]}... (prepared again since); start a new run in another `run_dir`")


def restore_state(
    run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule
) -> tuple[Progress, EarlyStopping]:
    payload = load_trainer_state(run)
    load_strict(model, payload["model"], str(run / STATE_NAME))
    optimizer.load_state_dict(payload["optimizer"])
    schedule.load_state_dict(payload["schedule"])
    restore_rng(payload["rng"])
    return progress_from(payload), early_from(payload)


def run_provenance(
    cfg: Config, env: D.DistEnv, train_ds: Dataset, val_ds: Dataset, spec_dict: dict[str, Any], prec: str
) -> dict[str, Any]:
    """What every checkpoint of the run records about how it was made (rank 0 only)."""
    if not env.is_main:
        return {}
    return {
        "seed": typed_config(cfg).train.seed,
        "git_commit": git_commit(),
        **data_provenance(train_ds, spec_dict),
        "dataset": cfg["data"]["dataset"],
        "train_samples": len(train_ds),  # type: ignore[arg-type]
        "val_samples": len(val_ds),  # type: ignore[arg-type]
        "world_size": env.world_size,
        "precision": prec,
        "svqcast_version": __version__,
        "torch_version": torch.__version__,
    }
