"""Resumable trainer state: counters, early stopping, RNG states, and ``trainer_state.pt``.

``RUN/trainer_state.pt`` holds only tensors and plain Python types (no pickled classes), so
it loads with ``torch.load(weights_only=True)``: resuming a run never executes code from
the file. It holds

* the model weights (also for a state saved in the middle of an epoch, which ``last/``
  cannot represent), the optimizer and the schedule state;
* the RNG states of ``random``, ``numpy`` and ``torch`` (and CUDA when used);
* :class:`Progress` counters: next epoch, optimizer steps, batches already done in a
  partially finished epoch and their loss sums;
* :class:`EarlyStopping`'s best value, best epoch and bad-epoch counter.

The sampler needs no state of its own: each epoch's permutation is a pure function of
``(train.seed, epoch)`` (``DistributedSampler.set_epoch``), and a partial epoch is
resumed by skipping the batches already done.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svqcast.errors import DataError
from svqcast.fsutil import atomic_path

STATE_NAME = "trainer_state.pt"
STATE_VERSION = 1


@dataclass
class EarlyStopping:
    """The official rule (docs/reference/official-behaviour.md §5.4): stop after `patience`
    epochs strictly worse than the best.

    * ``val < best``: a strict improvement; the counter resets.
    * ``val > best``: the counter grows by one; training stops when it reaches `patience`.
    * ``val == best``: a tie changes neither best nor counter, but (like the official
      ``Recorder``, which saves on ``<=``) the tied epoch's weights become ``best/``.
    ``patience <= 0`` disables stopping.
    """

    patience: int
    best: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record one validation value; True when these weights should become ``best/``."""
        if not math.isfinite(value):
            self.bad_epochs += 1
            return False
        if value < self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
            return True
        if value == self.best:
            self.best_epoch = epoch
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience


@dataclass
class Progress:
    """Counters that say where training is."""

    epoch: int = 0  # next epoch to run (0-based)
    step: int = 0  # optimizer steps done
    batch_in_epoch: int = 0  # batches of `epoch` already done (a mid-epoch Ctrl-C)
    partial_loss_sum: float = 0.0  # sums over those batches, so the epoch mean is exact
    partial_aux_sum: float = 0.0
    partial_samples: int = 0
    partial_seconds: float = 0.0
    finished: bool = False
    stop_reason: str = ""


def capture_rng() -> dict[str, Any]:
    """RNG states as tensors and plain types (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_trainer_state(
    run_dir: Path,
    *,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    schedule_state: dict[str, Any],
    progress: Progress,
    early: EarlyStopping,
    rng: dict[str, Any],
) -> Path:
    """Atomically write ``RUN/trainer_state.pt``."""
    payload = {
        "version": STATE_VERSION,
        "model": {k: v.detach().cpu().clone() for k, v in model_state.items()},
        "optimizer": optimizer_state,
        "schedule": schedule_state,
        "progress": asdict(progress),
        "early_stopping": asdict(early),
        "rng": rng,
    }
    path = Path(run_dir) / STATE_NAME
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_trainer_state(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / STATE_NAME
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no trainer state to resume from") from None
    except Exception as exc:  # unpickling errors of a corrupt or foreign file
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise DataError(f"{path}: unreadable trainer state ({first[:160]}); start a new run") from None
    if payload.get("version") != STATE_VERSION:
        raise DataError(f"{path}: trainer state version {payload.get('version')} is not supported")
    return payload


def progress_from(payload: dict[str, Any]) -> Progress:
    names = {f.name for f in fields(Progress)}
    return Progress(**{k: v for k, v in payload["progress"].items() if k in names})


def early_from(payload: dict[str, Any]) -> EarlyStopping:
    names = {f.name for f in fields(EarlyStopping)}
    return EarlyStopping(**{k: v for k, v in payload["early_stopping"].items() if k in names})
