"""Learning-rate schedules of the official recipe (docs/reference/official-behaviour.md §5.3).

Two schedules, with the official stepping semantics kept exactly:

* ``cosine`` -- timm's ``CosineLRScheduler(t_initial=epochs, lr_min=min_lr,
  warmup_lr_init=warmup_lr, warmup_t=warmup_epochs, t_in_epochs=True,
  warmup_prefix=False, cycle_limit=1)``, stepped **once per epoch at the start of the
  epoch** with the 0-based epoch index. The warmup epochs are *not* subtracted from the
  cosine phase, so the first post-warmup learning rate is already below the peak. Written
  out here (no timm dependency) as the closed form :func:`cosine_warmup_lr`.
* ``onecycle`` -- ``torch.optim.lr_scheduler.OneCycleLR(max_lr=lr, total_steps=epochs *
  steps_per_epoch, final_div_factor=...)`` stepped after every optimizer step. Everything
  else is the PyTorch default, including ``cycle_momentum=True``, which on Adam cycles
  beta1 between 0.95 and 0.85. ``warmup_epochs`` is ignored, as in the official code.
* ``none`` -- a constant learning rate.

Every schedule has the same two hooks, ``on_epoch_start(epoch)`` and ``on_step()``, so
the loop does not need to know which one it drives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from svqcast.config_schema import TrainConfig
from svqcast.errors import UsageError

SCHEDULERS = ("cosine", "onecycle", "none")


def cosine_warmup_lr(
    epoch: int,
    *,
    base_lr: float,
    epochs: int,
    warmup_epochs: int,
    warmup_lr: float = 1e-5,
    min_lr: float = 1e-6,
) -> float:
    """Learning rate of 0-based `epoch` under timm's CosineLRScheduler (official settings).

    Warmup: ``warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs`` for
    ``epoch < warmup_epochs``. Afterwards ``min_lr + 0.5 (base_lr - min_lr)(1 + cos(pi
    epoch / epochs))`` -- the epoch is not shifted by the warmup (``warmup_prefix=False``).
    Past the single cycle (``epoch >= epochs``) the rate stays at ``min_lr``.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
    if epoch >= epochs:  # cycle_limit = 1: after the cycle timm returns lr_min
        return min_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


class Schedule:
    """Base: a constant learning rate. Subclasses override the hooks they need."""

    name = "none"

    def __init__(self, optimizer: torch.optim.Optimizer, base_lr: float) -> None:
        self.optimizer = optimizer
        self.base_lr = base_lr
        _set_lr(optimizer, base_lr)

    def on_epoch_start(self, epoch: int) -> None:
        """Called before the first step of 0-based `epoch`."""

    def on_step(self) -> None:
        """Called after every optimizer step."""

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("name") != self.name:
            raise UsageError(
                f"the saved run used scheduler '{state.get('name')}', the config says "
                f"'{self.name}'; resume with the run's own config"
            )


class CosineWarmupSchedule(Schedule):
    """Per-epoch cosine with linear warmup; stepped at the start of each epoch."""

    name = "cosine"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base_lr: float,
        epochs: int,
        warmup_epochs: int,
        warmup_lr: float,
        min_lr: float,
    ) -> None:
        super().__init__(optimizer, base_lr)
        self.epochs = epochs
        self.warmup_epochs = warmup_epochs
        self.warmup_lr = warmup_lr
        self.min_lr = min_lr
        self.epoch = -1
        # timm sets the warmup start rate at construction time.
        _set_lr(optimizer, warmup_lr if warmup_epochs > 0 else base_lr)

    def lr_at(self, epoch: int) -> float:
        return cosine_warmup_lr(
            epoch,
            base_lr=self.base_lr,
            epochs=self.epochs,
            warmup_epochs=self.warmup_epochs,
            warmup_lr=self.warmup_lr,
            min_lr=self.min_lr,
        )

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch
        _set_lr(self.optimizer, self.lr_at(epoch))

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.epoch = int(state["epoch"])
        if self.epoch >= 0:
            _set_lr(self.optimizer, self.lr_at(self.epoch))


class OneCycleSchedule(Schedule):
    """PyTorch's OneCycleLR, stepped per iteration (beta1 cycles on Adam)."""

    name = "onecycle"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base_lr: float,
        total_steps: int,
        final_div_factor: float,
    ) -> None:
        super().__init__(optimizer, base_lr)
        self.total_steps = total_steps
        self.inner = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=base_lr,
            total_steps=total_steps,
            final_div_factor=final_div_factor,
        )

    def on_step(self) -> None:
        # OneCycleLR refuses to step past total_steps; the last step needs no new rate.
        if self.inner.last_epoch + 1 < self.total_steps:
            self.inner.step()

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "inner": self.inner.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.inner.load_state_dict(dict(state["inner"]))
        # OneCycleLR writes lr / beta1 into the optimizer when it steps; the optimizer's own
        # state_dict (restored separately) carries the values of the last step.


def build_schedule(
    optimizer: torch.optim.Optimizer, train_cfg: TrainConfig, steps_per_epoch: int
) -> Schedule:
    """The schedule named by ``train.scheduler`` for an optimizer built at ``train.lr``."""
    name = train_cfg.scheduler.lower()
    lr = train_cfg.lr
    epochs = train_cfg.epochs
    if name == "cosine":
        return CosineWarmupSchedule(
            optimizer,
            lr,
            epochs=epochs,
            warmup_epochs=train_cfg.warmup_epochs,
            warmup_lr=train_cfg.warmup_lr,
            min_lr=train_cfg.min_lr,
        )
    if name == "onecycle":
        return OneCycleSchedule(
            optimizer,
            lr,
            total_steps=max(1, epochs * steps_per_epoch),
            final_div_factor=train_cfg.final_div_factor,
        )
    if name == "none":
        return Schedule(optimizer, lr)
    raise UsageError(f"train.scheduler: unknown '{name}'; choose one of {', '.join(SCHEDULERS)}")
