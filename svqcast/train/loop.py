"""The training loop: plain PyTorch, readable top to bottom (svq-spec.md section 1c).

Recipe (the official one unless a config key says otherwise):

* Adam (betas 0.9/0.999, eps 1e-8, ``train.weight_decay``, 0 by default), one param group;
* loss = MAE | MSE | Huber on the normalised prediction, a plain mean over all elements,
  plus ``train.aux_loss_weight`` times the quantizer's auxiliary loss (``model.aux_loss``);
* schedule per :mod:`svqcast.train.schedules` (cosine stepped at epoch start, or
  OneCycle per step); optional gradient-norm clipping (``train.clip_grad > 0``);
* validation every epoch on the **validation** split (the official code validates on the
  test split); early stopping after ``train.patience`` epochs strictly worse than the best;
* ``RUN/best/`` (best validation loss, ties included, like the official Recorder) and
  ``RUN/last/`` written every epoch in the checkpoint format of the zoo, and
  ``RUN/trainer_state.pt`` for ``resume``.

Run directory::

    RUN/config.json        the resolved config (what --resume reads back)
    RUN/best/ RUN/last/    checkpoint directories (svqcast.checkpoint)
    RUN/trainer_state.pt   resumable state (svqcast.train.state)
    RUN/metrics.csv        one row per epoch (svqcast.train.runlog.COLUMNS)
    RUN/metrics.jsonl

Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes the resumable state (also in
the middle of an epoch) and raises ``KeyboardInterrupt``; the CLI exits with code 130 and
``svqcast train --resume auto`` continues exactly where the run stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from svqcast import __version__
from svqcast.checkpoint import save_checkpoint
from svqcast.config import Config, load_config
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import atomic_write_text
from svqcast.train import distributed as D
from svqcast.train.runlog import RunLog, make_progress
from svqcast.train.schedules import Schedule, build_schedule
from svqcast.train.state import (
    STATE_NAME,
    EarlyStopping,
    Progress,
    capture_rng,
    early_from,
    load_trainer_state,
    progress_from,
    restore_rng,
    save_trainer_state,
)

LOSSES = ("mae", "mse", "huber")
PRECISIONS = ("32", "bf16")
ModelFn = Callable[[Config], torch.nn.Module]


# --------------------------------------------------------------------------- helpers


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


def criterion(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Plain mean over all elements, as the official ``nn.L1Loss`` / ``nn.MSELoss``."""
    if name == "mae":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "huber":
        return F.huber_loss  # delta 1.0 = nn.HuberLoss()
    raise UsageError(f"train.loss: unknown '{name}'; choose one of {', '.join(LOSSES)}")


def aux_loss_of(model: torch.nn.Module) -> torch.Tensor | None:
    """The quantizer's auxiliary loss of the last forward call, if the model has one."""
    aux = getattr(D.unwrap(model), "aux_loss", None)
    return aux if isinstance(aux, torch.Tensor) else None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def git_commit() -> str | None:
    """The commit of the svqcast source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def data_fingerprint(spec_dict: Mapping[str, Any], dataset: Any) -> str:
    """A hash that identifies the training data: the store's own hash when the dataset has
    one, else the sha256 of the data spec (its statistics change with any data change)."""
    for attr in ("data_hash", "store_hash", "sha256"):
        value = getattr(dataset, attr, None)
        if isinstance(value, str) and value:
            return value
    extra = spec_dict.get("extra") or {}
    for key in ("data_hash", "store_sha256", "sha256"):
        if isinstance(extra.get(key), str):
            return str(extra[key])
    canon = json.dumps(spec_dict, sort_keys=True, default=str).encode()
    return "spec-sha256:" + hashlib.sha256(canon).hexdigest()


class SkipSampler(Sampler[int]):
    """Wraps a sampler and drops its first `skip` indices (resuming a partial epoch)."""

    def __init__(self, base: Sampler[int], skip: int = 0) -> None:
        self.base = base
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        for i, idx in enumerate(self.base):
            if i >= self.skip:
                yield idx

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- setup


def resolve_run(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | Iterable[str] | None,
    run_dir: str | Path | None,
    resume: str | Path | None,
) -> tuple[Config, Path, bool]:
    """Decide the config, the run directory and whether to resume.

    * ``resume=None``: a new run; its directory must not already hold one.
    * ``resume="auto"``: continue the run in ``run_dir`` if it has a trainer state, else start.
    * ``resume=DIR``: continue the run in DIR (its stored config wins; overrides apply on top).
    """
    if resume is not None and str(resume) != "auto":
        run = Path(resume)
        if not (run / STATE_NAME).is_file():
            raise UsageError(f"--resume {run}: no {STATE_NAME} there; is it a svqcast run directory?")
        resuming = True
    else:
        if run_dir is None:
            if config is None:
                raise UsageError("give a preset (--preset) or a config file (--config)")
            name = load_config(config).get("name", "run")
            run = Path("runs") / str(name)
        else:
            run = Path(run_dir)
        resuming = resume is not None and (run / STATE_NAME).is_file()
        if not resuming and (run / STATE_NAME).is_file():
            raise UsageError(
                f"{run} already holds a run; continue it with --resume auto, "
                "or choose another --run-dir"
            )
    if resuming:
        cfg_path = run / "config.json"
        try:
            stored = json.loads(cfg_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{cfg_path}: cannot read the run's config ({exc})") from None
        cfg = load_config(stored, overrides)
    else:
        if config is None:
            raise UsageError("give a preset (--preset) or a config file (--config)")
        cfg = load_config(config, overrides)
    return cfg, run, resuming


def build_datasets(cfg: Config) -> tuple[Dataset, Dataset]:
    """Training and validation splits of ``data.dataset`` for the model's T_in / T_out."""
    from svqcast.data import get_split_dataset

    model_cfg, data_cfg = cfg["model"], cfg["data"]
    kwargs: dict[str, Any] = {
        "t_in": int(model_cfg["in_shape"][0]),
        "t_out": int(model_cfg.get("out_frames", model_cfg["in_shape"][0])),
        "root": data_cfg.get("root") or None,
    }
    if data_cfg.get("official_validation"):
        kwargs["official_validation"] = True
    name = str(data_cfg["dataset"])
    return get_split_dataset(name, "train", **kwargs), get_split_dataset(name, "val", **kwargs)


def check_shapes(cfg: Config, ds: Dataset) -> None:
    """The model's ``in_shape`` (C, H, W) must match what the dataset yields."""
    x, y = ds[0]
    want = [int(v) for v in cfg["model"]["in_shape"]]
    got = [int(v) for v in x.shape]
    if got != want:
        raise UsageError(
            f"model.in_shape {want} does not match the dataset's input clips {got}; "
            f"use --set model.in_shape={got} (and a matching model) or another preset"
        )
    t_out = int(cfg["model"].get("out_frames", want[0]))
    if int(y.shape[0]) != t_out:
        raise UsageError(f"model.out_frames {t_out} does not match the dataset's targets {list(y.shape)}")


def default_model_fn(cfg: Config) -> torch.nn.Module:
    from svqcast.models.factory import build_model_from_config

    return build_model_from_config(cfg)


def model_card(cfg: Config, provenance: Mapping[str, Any], which: str) -> str:
    return (
        f"# {cfg.get('name', 'svqcast model')} ({which})\n\n"
        f"SimVP{' + ' + str(cfg['model'].get('quantizer')) if cfg['model'].get('quantizer', 'none') != 'none' else ''} "
        f"trained with `svqcast train` on `{cfg['data']['dataset']}`.\n\n"
        f"- epoch: {provenance.get('epoch')}\n- validation loss: {provenance.get('val_loss')}\n"
        f"- seed: {provenance.get('seed')}\n- svqcast: {provenance.get('svqcast_version')}\n"
        f"- git commit: {provenance.get('git_commit')}\n\n"
        "Paper: Sparse Vector Quantization for spatiotemporal forecasting, arXiv:2312.03406.\n"
    )


class _StopFlag:
    """SIGINT/SIGTERM set a flag that the loop checks after every step; a second Ctrl-C
    interrupts at once."""

    def __init__(self) -> None:
        self.raised = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self) -> _StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


# --------------------------------------------------------------------------- the loop


def train(
    config: str | Path | Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    run_dir: str | Path | None = None,
    dataset: str | None = None,
    max_epochs: int | None = None,
    resume: str | Path | None = None,
    precision: str | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    progress: str = "auto",
    datasets: tuple[Dataset, Dataset] | None = None,
    model_fn: ModelFn | None = None,
) -> Path:
    """Train a preset / TOML / config dict and return the run directory.

    ``max_epochs`` stops this invocation once that many epochs (counted from the start of
    the run) are done, *without* changing the schedule, which always spans
    ``train.epochs``; ``resume="auto"`` then continues. ``precision``, ``seed``,
    ``deterministic`` and ``dataset`` are shortcuts for the config keys
    ``train.precision``, ``train.seed``, ``train.deterministic`` and ``data.dataset``.
    ``datasets=(train, val)`` and ``model_fn`` replace the catalog datasets and the model
    factory (custom data, tests).
    """
    shortcuts: dict[str, Any] = {}
    if dataset is not None:
        shortcuts["data.dataset"] = dataset
    if precision is not None:
        shortcuts["train.precision"] = str(precision)
    if seed is not None:
        shortcuts["train.seed"] = int(seed)
    if deterministic is not None:
        shortcuts["train.deterministic"] = bool(deterministic)
    merged: dict[str, Any] = {}
    if overrides:
        from svqcast.config import parse_overrides

        merged.update(parse_overrides(overrides))
    merged.update(shortcuts)
    cfg, run, resuming = resolve_run(config, merged or None, run_dir, resume)
    tc = cfg["train"]
    prec = str(tc.get("precision", "32"))
    if prec not in PRECISIONS:
        raise UsageError(f"train.precision: '{prec}' is not one of {', '.join(PRECISIONS)}")
    loss_fn = criterion(str(tc.get("loss", "mae")).lower())
    if str(tc.get("optimizer", "adam")).lower() != "adam":
        raise UsageError(f"train.optimizer: only 'adam' (the official recipe) is supported, got '{tc['optimizer']}'")

    env = D.init_distributed(str(tc.get("device", "auto")))
    try:
        return _fit(cfg, run, resuming, env, loss_fn, prec, max_epochs, progress, datasets, model_fn)
    finally:
        D.shutdown(env)


def _fit(
    cfg: Config,
    run: Path,
    resuming: bool,
    env: D.DistEnv,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    prec: str,
    max_epochs: int | None,
    progress_kind: str,
    datasets: tuple[Dataset, Dataset] | None,
    model_fn: ModelFn | None,
) -> Path:
    tc = cfg["train"]
    seed = int(tc.get("seed", 42))
    if int(tc.get("num_threads", 0)) > 0:
        torch.set_num_threads(int(tc["num_threads"]))
    set_deterministic(bool(tc.get("deterministic", False)))
    seed_everything(seed)

    # Rank 0 first: it may have to prepare the dataset (embedded samples are unpacked on
    # first use); the others wait, then open the prepared store.
    if env.distributed and not env.is_main:
        D.barrier(env)
    train_ds, val_ds = datasets if datasets is not None else build_datasets(cfg)
    if env.distributed and env.is_main:
        D.barrier(env)
    if len(train_ds) == 0 or len(val_ds) == 0:  # type: ignore[arg-type]
        raise DataError(f"dataset '{cfg['data']['dataset']}': empty training or validation split")
    check_shapes(cfg, train_ds)
    spec = getattr(train_ds, "spec", None)
    spec_dict = spec.to_dict() if spec is not None else {}

    model = (model_fn or default_model_fn)(cfg).to(env.device)
    batch = int(tc["batch_size"])
    base_sampler = DistributedSampler(
        train_ds, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed, drop_last=True
    )
    if len(base_sampler) < batch:
        raise UsageError(
            f"the training split has {len(train_ds)} samples ({len(base_sampler)} per process), "  # type: ignore[arg-type]
            f"fewer than train.batch_size = {batch}; lower it with --set train.batch_size=..."
        )
    steps_per_epoch = len(base_sampler) // batch
    if int(tc.get("max_steps_per_epoch", 0)) > 0:
        steps_per_epoch = min(steps_per_epoch, int(tc["max_steps_per_epoch"]))
    val_indices = list(range(env.rank, len(val_ds), env.world_size))  # type: ignore[arg-type]
    val_loader = DataLoader(
        val_ds,
        batch_size=int(tc.get("val_batch_size", batch)),
        sampler=val_indices,
        num_workers=int(tc.get("num_workers", 0)),
        generator=torch.Generator().manual_seed(seed),
    )

    optimizer = torch.optim.Adam(
        model.parameters(), lr=float(tc["lr"]), weight_decay=float(tc.get("weight_decay", 0.0))
    )
    schedule: Schedule = build_schedule(optimizer, tc, steps_per_epoch)
    progress = Progress()
    early = EarlyStopping(patience=int(tc.get("patience", 0)))

    if resuming:
        payload = load_trainer_state(run)
        from svqcast.checkpoint import load_strict

        load_strict(model, payload["model"], str(run / STATE_NAME))
        optimizer.load_state_dict(payload["optimizer"])
        schedule.load_state_dict(payload["schedule"])
        progress = progress_from(payload)
        early = early_from(payload)
        restore_rng(payload["rng"])
        del payload
    ddp_model = D.wrap_model(model, env, sync_batchnorm=bool(tc.get("sync_batchnorm", False)))

    runlog = RunLog(run, tensorboard=bool(tc.get("tensorboard", False)), enabled=env.is_main)
    if env.is_main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.json", json.dumps(cfg, indent=2) + "\n")
        runlog.load_existing(before_epoch=progress.epoch)
    bar = make_progress(progress_kind, enabled=env.is_main)
    epochs = int(tc["epochs"])
    stop_at = min(epochs, max_epochs) if max_epochs is not None else epochs
    if progress.finished:
        bar.message(f"{run}: training already finished ({progress.stop_reason}); nothing to do")
        return run

    provenance_base = {
        "seed": seed,
        "git_commit": git_commit() if env.is_main else None,
        "data_hash": data_fingerprint(spec_dict, train_ds),
        "dataset": cfg["data"]["dataset"],
        "train_samples": len(train_ds),  # type: ignore[arg-type]
        "val_samples": len(val_ds),  # type: ignore[arg-type]
        "world_size": env.world_size,
        "precision": prec,
        "svqcast_version": __version__,
        "torch_version": torch.__version__,
    }
    clip = float(tc.get("clip_grad", 0.0))
    aux_w = float(tc.get("aux_loss_weight", 1.0))
    max_val = int(tc.get("max_val_steps", 0))

    def save_state() -> None:
        if env.is_main:
            save_trainer_state(
                run,
                model_state=model.state_dict(),
                optimizer_state=optimizer.state_dict(),
                schedule_state=schedule.state_dict(),
                progress=progress,
                early=early,
                rng=capture_rng(),
            )
        D.barrier(env)

    bar.start(progress.epoch, epochs)
    try:
        with _StopFlag() as stop:
            while progress.epoch < stop_at:
                epoch = progress.epoch
                t0 = time.perf_counter() - progress.partial_seconds
                base_sampler.set_epoch(epoch)
                loader = DataLoader(
                    train_ds,
                    batch_size=batch,
                    sampler=SkipSampler(base_sampler, progress.batch_in_epoch * batch),
                    drop_last=True,
                    num_workers=int(tc.get("num_workers", 0)),
                    generator=torch.Generator().manual_seed(seed + epoch),
                )
                if progress.batch_in_epoch == 0:
                    schedule.on_epoch_start(epoch)
                    progress.partial_loss_sum = progress.partial_aux_sum = 0.0
                    progress.partial_samples = 0
                epoch_lr = schedule.current_lr()
                bar.start_epoch(epoch, steps_per_epoch, epoch_lr)
                if progress.batch_in_epoch:
                    bar.step(progress.batch_in_epoch, progress.partial_loss_sum / max(1, progress.partial_samples))

                # ---- training steps
                ddp_model.train()
                for x, y in loader:
                    if progress.batch_in_epoch >= steps_per_epoch:
                        break
                    x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
                    with autocast(env.device, prec):
                        pred = ddp_model(x)
                    loss = loss_fn(pred.float(), y)
                    aux = aux_loss_of(ddp_model)
                    total = loss + aux_w * aux.float() if aux is not None else loss
                    optimizer.zero_grad(set_to_none=True)
                    total.backward()
                    if clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    optimizer.step()
                    schedule.on_step()
                    n = int(x.shape[0])
                    progress.step += 1
                    progress.batch_in_epoch += 1
                    progress.partial_loss_sum += float(total.detach()) * n
                    progress.partial_aux_sum += (float(aux.detach()) if aux is not None else 0.0) * n
                    progress.partial_samples += n
                    bar.step(progress.batch_in_epoch, float(total.detach()))
                    if D.any_rank(stop.raised, env):
                        progress.partial_seconds = time.perf_counter() - t0
                        save_state()
                        raise KeyboardInterrupt
                # ---- validation
                val_loss = evaluate_loss(ddp_model, val_loader, loss_fn, aux_w, env, prec, max_val)
                loss_sum, aux_sum, n_seen = D.all_reduce_sum(
                    [progress.partial_loss_sum, progress.partial_aux_sum, float(progress.partial_samples)], env
                )
                seconds = time.perf_counter() - t0
                is_best = early.update(val_loss, epoch)
                row = {
                    "epoch": epoch,
                    "step": progress.step,
                    "lr": epoch_lr,
                    "train_loss": loss_sum / max(1.0, n_seen),
                    "train_aux_loss": aux_sum / max(1.0, n_seen),
                    "val_loss": val_loss,
                    "best_val_loss": early.best,
                    "is_best": is_best,
                    "seconds": seconds,
                    "samples_per_s": n_seen / max(seconds, 1e-9),
                }
                progress.epoch += 1
                progress.batch_in_epoch = 0
                progress.partial_loss_sum = progress.partial_aux_sum = 0.0
                progress.partial_samples = 0
                progress.partial_seconds = 0.0
                stop_now = D.broadcast_flag(early.should_stop, env)
                if stop_now:
                    progress.finished, progress.stop_reason = True, f"early stopping at epoch {epoch + 1}"
                elif progress.epoch >= epochs:
                    progress.finished, progress.stop_reason = True, f"completed {epochs} epochs"
                if env.is_main:
                    prov = dict(provenance_base, epoch=epoch + 1, step=progress.step, val_loss=val_loss)
                    if is_best:
                        save_checkpoint(
                            run / "best", model, cfg, spec_dict, dict(prov, selected_on="val_loss"),
                            card=model_card(cfg, prov, "best validation loss"),
                        )
                    save_checkpoint(run / "last", model, cfg, spec_dict, prov, card=model_card(cfg, prov, "last epoch"))
                    runlog.append(row)
                bar.end_epoch(row)
                save_state()
                if progress.finished:
                    bar.message(f"{progress.stop_reason}; best val_loss {early.best:.5f} at epoch {early.best_epoch + 1}")
                    break
                if D.any_rank(stop.raised, env):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.message(f"interrupted: resumable state in {run / STATE_NAME}; continue with --resume auto")
        raise
    finally:
        bar.close()
        runlog.close()
    return run


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    loader: DataLoader,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    aux_w: float,
    env: D.DistEnv,
    precision: str = "32",
    max_steps: int = 0,
) -> float:
    """Mean loss (criterion + weighted aux) over all samples of the loader, all ranks.

    A per-sample mean, not the official mean of per-batch means: the two differ only when
    the last batch is smaller, and ours does not depend on batch size or world size.
    """
    model.eval()
    total, count = 0.0, 0.0
    for i, (x, y) in enumerate(loader):
        if max_steps > 0 and i >= max_steps:
            break
        x, y = x.to(env.device), y.to(env.device)
        with autocast(env.device, precision):
            pred = model(x)
        loss = loss_fn(pred.float(), y)
        aux = aux_loss_of(model)
        if aux is not None:
            loss = loss + aux_w * aux.float()
        total += float(loss) * int(x.shape[0])
        count += int(x.shape[0])
    total, count = D.all_reduce_sum([total, count], env)
    model.train()
    return total / count if count else math.nan
