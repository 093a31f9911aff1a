"""The training loop: plain PyTorch, readable top to bottom (docs/training.md).

Recipe (the official one unless a config key says otherwise):

* Adam (betas 0.9/0.999, eps 1e-8, ``train.weight_decay``, 0 by default), one param group;
* loss = MAE | MSE | Huber on the normalised prediction, a plain mean over all elements,
  plus ``train.aux_loss_weight`` times the auxiliary loss the model returns
  (``model(x, return_aux=True).aux_loss``, see :class:`svqcast.models.simvp.ModelOutput`);
* schedule per :mod:`svqcast.training.schedules` (cosine stepped at epoch start, or
  OneCycle per step); optional gradient-norm clipping (``train.clip_grad > 0``);
* validation every epoch on the **validation** split (the official code validates on the
  test split); early stopping after ``train.patience`` epochs strictly worse than the best;
* ``RUN/best/`` (best validation loss, ties included, like the official Recorder) and
  ``RUN/last/`` written every epoch in the checkpoint format of the zoo, and
  ``RUN/trainer_state.pt`` for ``resume``.

Run directory::

    RUN/config.json        the resolved config (what --resume reads back)
    RUN/best/ RUN/last/    checkpoint directories (svqcast.zoo.checkpoint)
    RUN/trainer_state.pt   resumable state (svqcast.training.state)
    RUN/metrics.csv        one row per epoch (svqcast.training.runlog.COLUMNS)
    RUN/metrics.jsonl

One epoch is :func:`train_epoch`, then :func:`validate`, then :func:`end_epoch`. A step
never waits for the device: losses are summed on the device and copied to the host only
at log points (every ``log_every`` steps) and at the end of the epoch, where the loop also
checks that the loss is finite and (under torchrun) whether any rank was interrupted.

A non-finite loss stops training before anything more is written: a ``DataError``
(exit 3) naming the training sample when the data holds NaN/inf, else a ``SvqcastError``
(exit 1, diverged). ``RUN/best``, ``RUN/last`` and the trainer state keep the last
finished epoch.

Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes the resumable state (also in
the middle of an epoch) and raises ``KeyboardInterrupt``; the CLI exits with code 130 and
``svqcast train --resume auto`` continues exactly where the run stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from svqcast.config import parse_overrides, typed_config
from svqcast.errors import DataError, SvqcastError, UsageError
from svqcast.models.simvp import ReturnsAux
from svqcast.progress import Progress
from svqcast.training import distributed as D
from svqcast.training.runlog import epoch_line
from svqcast.training.setup import (
    PRECISIONS,
    LossFn,
    StopFlag,
    autocast,
    criterion,
    model_card,
    resolve_run,
    seed_everything,
)
from svqcast.training.state import (
    STATE_NAME,
    capture_rng,
    save_trainer_state,
)
from svqcast.training.trainer import ModelFn, Trainer, setup_trainer, unpack_batch
from svqcast.zoo.checkpoint import save_checkpoint

__all__ = ["train", "train_epoch", "validate", "end_epoch", "evaluate_loss", "seed_everything"]



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
    progress: str | Progress | None = "auto",
    datasets: tuple[Dataset, Dataset] | None = None,
    model_fn: ModelFn | None = None,
    init_from: str | None = None,
    freeze: str | None = None,
    keep_stats: bool | None = None,
    strict: bool | None = None,
) -> Path:
    """Train a preset / TOML / config dict and return the run directory.

    ``max_epochs`` stops this invocation once that many epochs (counted from the start of
    the run) are done, *without* changing the schedule, which always spans
    ``train.epochs``; ``resume="auto"`` then continues. ``precision``, ``seed``,
    ``deterministic`` and ``dataset`` are shortcuts for the config keys
    ``train.precision``, ``train.seed``, ``train.deterministic`` and ``data.dataset``.
    ``progress`` is ``auto``/``plain`` (lines on stderr), ``none``, or a :class:`svqcast.progress.Progress`.
    ``init_from``, ``freeze``, ``keep_stats`` and ``strict`` fine-tune from another model
    (``train.init_from``, ``train.freeze``, ``train.keep_stats``, ``train.init_strict``; docs/training.md).
    ``datasets=(train, val)`` and ``model_fn`` replace the catalog datasets and the model
    factory (custom data, tests).
    """
    shortcuts: dict[str, Any] = {}
    if dataset is not None:
        shortcuts["data.dataset"] = dataset
    if resume is not None and init_from:
        raise UsageError("`resume` continues the run from its own weights; drop `init_from`")
    for key, value in (("init_from", init_from), ("freeze", freeze), ("keep_stats", keep_stats),
                       ("init_strict", strict)):
        if value is not None:
            shortcuts[f"train.{key}"] = value
    if precision is not None:
        shortcuts["train.precision"] = str(precision)
    if seed is not None:
        shortcuts["train.seed"] = int(seed)
    if deterministic is not None:
        shortcuts["train.deterministic"] = bool(deterministic)
    merged: dict[str, Any] = {}
    if overrides:

        merged.update(parse_overrides(overrides))
    merged.update(shortcuts)
    cfg, run, resuming = resolve_run(config, merged or None, run_dir, resume)
    tc = typed_config(cfg).train
    prec = tc.precision
    if prec not in PRECISIONS:
        raise UsageError(f"train.precision: '{prec}' is not one of {', '.join(PRECISIONS)}")
    loss_fn = criterion(tc.loss.lower())
    if tc.optimizer.lower() != "adam":
        raise UsageError(f"train.optimizer: only 'adam' (the official recipe) is supported, got '{tc.optimizer}'")

    env = D.init_distributed(tc.device)
    try:
        trainer = setup_trainer(cfg, run, resuming, env, loss_fn, prec, progress, datasets, model_fn)
        return _fit(trainer, max_epochs)
    finally:
        D.shutdown(env)


# --------------------------------------------------------------------------- the run


def _fit(t: Trainer, max_epochs: int | None) -> Path:
    """Epochs until the schedule ends, early stopping, ``max_epochs`` or Ctrl-C."""
    epochs = t.tc.epochs
    stop_at = min(epochs, max_epochs) if max_epochs is not None else epochs
    if t.progress.finished:
        t.bar.message(f"{t.run}: training already finished ({t.progress.stop_reason}); nothing to do")
        return t.run
    t.bar.begin("epochs", epochs, done=t.progress.epoch)
    if t.progress.epoch:
        t.bar.message(f"resuming at epoch {t.progress.epoch + 1}/{epochs}")
    try:
        with StopFlag() as stop:
            while t.progress.epoch < stop_at:
                t0 = time.perf_counter() - t.progress.partial_seconds
                lr = train_epoch(t, stop, t0)
                val_loss = validate(t)
                if end_epoch(t, lr, val_loss, t0):
                    break
                if D.any_rank(stop.raised, t.env):
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        t.bar.message(f"interrupted: resumable state in {t.run / STATE_NAME}; continue with --resume auto")
        raise
    finally:
        t.bar.close()
        t.runlog.close()
    return t.run


# --------------------------------------------------------------------------- one epoch


def forward(
    net: torch.nn.Module, x: torch.Tensor, phase: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The prediction and, for models that return one, the auxiliary loss. Called as
    ``net(x, return_aux=True)`` so that a DistributedDataParallel wrapper sees the call;
    `phase` goes along only where the batch has one (climatology-residual models)."""
    extra = {} if phase is None else {"phase": phase.to(x.device)}
    if isinstance(D.unwrap(net), ReturnsAux):
        out = net(x, return_aux=True, **extra)
        return out.pred, out.aux_loss
    return net(x, **extra), None


def train_step(
    t: Trainer, x: torch.Tensor, y: torch.Tensor, phase: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Forward, loss, backward, optimizer and schedule step; returns (total loss, aux)."""
    x, y = x.to(t.env.device, non_blocking=True), y.to(t.env.device, non_blocking=True)
    with autocast(t.env.device, t.precision):
        pred, aux = forward(t.net, x, phase)
    loss = t.loss_fn(pred.float(), y)
    total = loss + t.tc.aux_loss_weight * aux.float() if aux is not None else loss
    t.optimizer.zero_grad(set_to_none=True)
    total.backward()
    clip = t.tc.clip_grad
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), clip)
    t.optimizer.step()
    t.schedule.on_step()
    return total, aux


def train_epoch(t: Trainer, stop: StopFlag, t0: float) -> float:
    """The training steps of epoch ``t.progress.epoch`` (the rest of it, when resumed);
    returns the learning rate of its first step."""
    p = t.progress
    t.sampler.set_epoch(p.epoch)
    t.skip.skip = p.batch_in_epoch * t.batch
    if p.batch_in_epoch == 0:
        t.schedule.on_epoch_start(p.epoch)
        p.partial_loss_sum = p.partial_aux_sum = 0.0
        p.partial_samples = 0
    lr = t.schedule.current_lr()
    t.bar.begin("steps", t.steps_per_epoch, label=f"epoch {p.epoch + 1}/{t.tc.epochs} steps", done=p.batch_in_epoch,
                info=f"lr {lr:.3g}")
    if p.batch_in_epoch:
        t.bar.update("steps", p.batch_in_epoch, info=f"loss {p.partial_loss_sum / max(1, p.partial_samples):.5f}")
    # Running sums of (loss, aux) * samples stay on the device, in float64: the same
    # arithmetic as Python floats, so means are bit-identical to summing on the host, but
    # a step never waits for the device. The host reads them only at log points.
    sums = torch.tensor([p.partial_loss_sum, p.partial_aux_sum], dtype=torch.float64, device=t.env.device)
    checked = p.batch_in_epoch  # batches whose losses are known to be finite
    t.net.train()
    for batch in t.train_loader:
        if p.batch_in_epoch >= t.steps_per_epoch:
            break
        x, y, phase = unpack_batch(batch)
        total, aux = train_step(t, x, y, phase)
        n = int(x.shape[0])
        step_aux = aux.detach().double() if aux is not None else sums.new_zeros(())
        sums += torch.stack([total.detach().double(), step_aux]) * n
        p.step, p.batch_in_epoch, p.partial_samples = p.step + 1, p.batch_in_epoch + 1, p.partial_samples + n
        t.bar.update("steps", p.batch_in_epoch)
        at_log = p.batch_in_epoch % t.log_every == 0 or p.batch_in_epoch >= t.steps_per_epoch
        if at_log:  # host synchronisation: copy the sums, check them, report
            checked = _sync_and_check(t, sums, checked)
            t.bar.update("steps", p.batch_in_epoch, info=f"loss {float(total.detach()):.5f}")
        # one process reads its own flag every step; ranks agree on it only at log points
        if (at_log or not t.env.distributed) and D.any_rank(stop.raised, t.env):
            p.partial_seconds = time.perf_counter() - t0
            _sync_and_check(t, sums, checked)
            _save_state(t)
            raise KeyboardInterrupt
    _sync_and_check(t, sums, checked)
    return lr


def _sync_and_check(t: Trainer, sums: torch.Tensor, checked: int) -> int:
    """Copy the running sums to the host and stop on a non-finite loss (on any rank)
    before anything else is written; returns the batches now known to be finite."""
    p = t.progress
    p.partial_loss_sum, p.partial_aux_sum = sums.tolist()
    if D.any_rank(not math.isfinite(p.partial_loss_sum), t.env):
        raise _non_finite(t, checked)
    return p.batch_in_epoch


def _non_finite(t: Trainer, checked: int) -> SvqcastError:
    """DataError naming the first training sample with NaN/inf among the batches since the
    last check; otherwise the optimisation diverged."""
    p = t.progress
    order = list(t.sampler)  # this epoch's permutation (a pure function of seed and epoch)
    missing_ok = bool(getattr(t.train_ds, "missing_ok", False))  # then targets hold NaN where data is missing
    for i in order[checked * t.batch : p.batch_in_epoch * t.batch]:
        x, y = t.train_ds[i][:2]
        if not (bool(torch.isfinite(x).all()) and (missing_ok or bool(torch.isfinite(y).all()))):
            return DataError(
                f"training sample {i} of '{t.cfg['data']['dataset']}' holds NaN or inf, so the loss became "
                f"non-finite at epoch {p.epoch + 1}; fix or drop it in the source data and re-run "
                "`svqcast prepare --force`"
            )
    return SvqcastError(
        f"training diverged: the loss became non-finite by step {p.step} (epoch {p.epoch + 1}); the checkpoints "
        "of the last finished epoch were kept; lower train.lr or set train.clip_grad"
    )


def validate(t: Trainer) -> float:
    """The validation loss of the current weights; a non-finite value stops training."""
    max_val = t.tc.max_val_steps
    aux_w = t.tc.aux_loss_weight
    val_loss = evaluate_loss(t.net, t.val_loader, t.loss_fn, aux_w, t.env, t.precision, max_val)
    if math.isfinite(val_loss):
        return val_loss
    size = t.tc.val_batch_size
    indices = list(range(t.env.rank, len(t.val_ds), t.env.world_size))  # type: ignore[arg-type]
    for i in indices[: max_val * size] if max_val > 0 else indices:
        if not all(bool(torch.isfinite(v).all()) for v in t.val_ds[i]):
            raise DataError(
                f"validation sample {i} of '{t.cfg['data']['dataset']}' holds NaN or inf; fix or drop it in "
                "the source data and re-run `svqcast prepare --force`"
            )
    raise SvqcastError(
        f"training diverged: the validation loss is {val_loss} at epoch {t.progress.epoch + 1}; the checkpoints "
        "of the last finished epoch were kept; lower train.lr or set train.clip_grad"
    )


def end_epoch(t: Trainer, lr: float, val_loss: float, t0: float) -> bool:
    """Metrics row, early stopping, checkpoints and trainer state; True when finished."""
    p, env, epoch, epochs = t.progress, t.env, t.progress.epoch, t.tc.epochs
    loss_sum, aux_sum, n_seen = D.all_reduce_sum([p.partial_loss_sum, p.partial_aux_sum, float(p.partial_samples)], env)
    seconds = time.perf_counter() - t0
    is_best = t.early.update(val_loss, epoch)
    row = {
        "epoch": epoch, "step": p.step, "lr": lr,
        "train_loss": loss_sum / max(1.0, n_seen), "train_aux_loss": aux_sum / max(1.0, n_seen),
        "val_loss": val_loss, "best_val_loss": t.early.best, "is_best": is_best,
        "seconds": seconds, "samples_per_s": n_seen / max(seconds, 1e-9),
    }
    p.epoch, p.batch_in_epoch, p.partial_samples = epoch + 1, 0, 0
    p.partial_loss_sum = p.partial_aux_sum = p.partial_seconds = 0.0
    if D.broadcast_flag(t.early.should_stop, env):
        p.finished, p.stop_reason = True, f"early stopping at epoch {epoch + 1}"
    elif p.epoch >= epochs:
        p.finished, p.stop_reason = True, f"completed {epochs} epochs"
    if env.is_main:
        prov = dict(t.provenance, epoch=epoch + 1, step=p.step, val_loss=val_loss)
        if is_best:
            save_checkpoint(t.run / "best", t.model, t.cfg, t.spec_dict, dict(prov, selected_on="val_loss"),
                            card=model_card(t.cfg, prov, "best validation loss", t.spec_dict, t.run))
        save_checkpoint(t.run / "last", t.model, t.cfg, t.spec_dict, prov,
                        card=model_card(t.cfg, prov, "last epoch", t.spec_dict, t.run))
        t.runlog.append(row)
    t.bar.end("steps")
    t.bar.message(epoch_line(row, t.tc.epochs))
    t.bar.update("epochs", int(row["epoch"]) + 1)
    _save_state(t)
    if p.finished:
        t.bar.message(f"{p.stop_reason}; best val_loss {t.early.best:.5f} at epoch {t.early.best_epoch + 1}")
    return p.finished


def _save_state(t: Trainer) -> None:
    if t.env.is_main:
        save_trainer_state(
            t.run,
            model_state=t.model.state_dict(),
            optimizer_state=t.optimizer.state_dict(),
            schedule_state=t.schedule.state_dict(),
            progress=t.progress,
            early=t.early,
            rng=capture_rng(),
        )
    D.barrier(t.env)


@torch.no_grad()
def evaluate_loss(
    model: torch.nn.Module,
    loader: DataLoader,
    loss_fn: LossFn,
    aux_w: float,
    env: D.DistEnv,
    precision: str = "32",
    max_steps: int = 0,
) -> float:
    """Mean loss (criterion + weighted aux) over all samples of the loader, all ranks.

    A per-sample mean, not the official mean of per-batch means: the two differ only when
    the last batch is smaller, and ours does not depend on batch size or world size. The
    sum stays on the device (float64) and reaches the host once, at the end.
    """
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=env.device)
    count = 0.0
    for i, batch in enumerate(loader):
        if max_steps > 0 and i >= max_steps:
            break
        x, y, phase = unpack_batch(batch)
        x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
        with autocast(env.device, precision):
            pred, aux = forward(model, x, phase)
        loss = loss_fn(pred.float(), y)
        if aux is not None:
            loss = loss + aux_w * aux.float()
        total += loss.double() * int(x.shape[0])
        count += int(x.shape[0])
    total_f, count = D.all_reduce_sum([total.item(), count], env)
    model.train()
    return total_f / count if count else math.nan
