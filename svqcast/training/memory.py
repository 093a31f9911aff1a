"""Will a training run fit in memory? Measured, not guessed, before the first step.

One forward pass at batch 1 runs under `torch.autograd.graph.saved_tensors_hooks`: the tensors
autograd keeps for the backward pass are exactly the activation memory a step holds, per sample.
With the weights, their gradients and Adam's two moments, that gives the step's footprint at the
configured batch; a run that would not fit in the memory this machine has available is refused
(exit 2) with the batch size that would, instead of being killed by the kernel without a word.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from svqcast.errors import UsageError

ENV_MEMORY_LIMIT = "SVQCAST_MEMORY_LIMIT_BYTES"  # overrides the available memory (tests, shared machines)
HEADROOM = 0.85  # of the available memory a run may plan to use
OVERHEAD = 1.5  # temporaries of the backward pass and the allocator, on top of the saved activations


def available_bytes() -> int | None:
    """Memory this process may still use: $SVQCAST_MEMORY_LIMIT_BYTES, else Linux's MemAvailable."""
    if os.environ.get(ENV_MEMORY_LIMIT, "").strip():
        return int(float(os.environ[ENV_MEMORY_LIMIT]))
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # unknown (not Linux): no check


def activation_bytes(forward: Callable[[], Any]) -> int:
    """Bytes autograd saves for the backward pass while `forward()` runs (each storage once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(seen.values())


def check_fits(model: torch.nn.Module, sample: torch.Tensor, batch: int, device: torch.device,
               extra: dict[str, Any] | None = None) -> dict[str, float]:
    """Refuse a CPU run whose step would not fit in the available memory; returns the estimate."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    devices = [device.index or 0] if device.type == "cuda" else []
    probe = copy.deepcopy(model)  # its BatchNorm statistics move; the run's model must not
    with torch.random.fork_rng(devices=devices):  # and it draws no random number of the run (dropout)
        per_sample = activation_bytes(lambda: probe(sample[None].to(device), **(extra or {})))
    need = int(per_sample * batch * OVERHEAD + 4 * weights)  # weights, gradients, two Adam moments
    estimate = {"per_sample_bytes": float(per_sample), "step_bytes": float(need)}
    limit = available_bytes() if device.type == "cpu" else None
    if limit is None or need <= HEADROOM * limit:
        return estimate
    fits = int((HEADROOM * limit - 4 * weights) // max(1.0, per_sample * OVERHEAD))
    advice = (f"use `overrides` train.batch_size={fits}" if fits >= 1 else
              "use a smaller model (model.hid_S, model.hid_T) or smaller frames")
    raise UsageError(f"a training step at batch {batch} needs about {need / 2**30:.1f} GiB "
                     f"({per_sample / 2**20:.0f} MiB per sample), more than the {limit / 2**30:.1f} GiB available; "
                     f"{advice}")
