"""Data-parallel training straight from torchrun's environment (nanoGPT style).

``torchrun --nproc_per_node N svqcast train ...`` starts N copies of the same command and
sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; here we only read them. There is no
process management of our own: without those variables training runs in one process.

Backend: NCCL when the device is a GPU, gloo on CPU. Each process sees ``batch_size``
samples per step (the official per-process convention), gradients are averaged by
DistributedDataParallel, and only rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from svqcast.errors import UsageError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(preference: str, local_rank: int = 0, option: str = "`overrides` train.device=") -> torch.device:
    """``auto`` takes the GPU when there is one; ``cpu`` / ``cuda`` force the choice.
    `option` is how the caller's user sets the device, for the message (parameters marked
    as in svqcast.errors)."""
    preference = preference.lower()
    if preference == "cpu":
        return torch.device("cpu")
    if preference in {"cuda", "gpu"} or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UsageError(f"{option}{preference}: no CUDA GPU is visible to PyTorch on this machine; "
                             f"use {option}cpu (or {option}auto)")
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    if preference == "auto":
        return torch.device("cpu")
    raise UsageError(f"train.device: unknown '{preference}'; choose auto, cpu or cuda")


def init_distributed(device_preference: str = "auto") -> DistEnv:
    """Read torchrun's variables and join the process group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    if world_size <= 1:
        return DistEnv(device=device)
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed; run without torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return DistEnv(rank, local_rank, world_size, device, backend)


def shutdown(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, env: DistEnv, sync_batchnorm: bool = False) -> torch.nn.Module:
    """DistributedDataParallel when distributed, else the model itself.

    BatchNorm layers (gSTA, ConvNeXt, ... translators) normalise with per-process batch
    statistics under plain DDP; ``sync_batchnorm`` converts them to SyncBatchNorm
    (statistics over all ranks), which PyTorch supports on GPUs only.
    """
    if not env.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_batchnorm:
        if env.device.type != "cuda":
            raise UsageError("train.sync_batchnorm needs GPUs (PyTorch's SyncBatchNorm has no CPU path)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (the model itself otherwise)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    return model.module if isinstance(model, DDP) else model


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a few scalars over all ranks (float64, so sums of losses stay exact enough)."""
    if not env.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank if it is true on any (used so a Ctrl-C stops all ranks together)."""
    if not env.distributed:
        return flag
    return all_reduce_sum([1.0 if flag else 0.0], env)[0] > 0


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """Rank 0's decision, on every rank (early stopping)."""
    if not env.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=env.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()
