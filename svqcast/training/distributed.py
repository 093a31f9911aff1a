"""Data-parallel training straight from torchrun's environment (nanoGPT style).

``torchrun --nproc_per_node N svqcast train ...`` starts N copies of the same command and
sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and ``LOCAL_WORLD_SIZE``; here we only read
them. There is no process management of our own: without those variables training runs in
one process. Several nodes are several torchrun agents meeting at one rendezvous endpoint
(``--nnodes 2 --rdzv-backend c10d --rdzv-endpoint HOST:PORT``, docs/training.md): the
global ``RANK`` decides the data shard, files and output; ``LOCAL_RANK`` only the GPU.

Backend: NCCL when the device is a GPU, gloo on CPU. Each process sees ``batch_size``
samples per step (the official per-process convention), gradients are averaged by
DistributedDataParallel, and only global rank 0 writes logs and checkpoints.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from svqcast.constants import (
    ENV_LOCAL_RANK,
    ENV_LOCAL_WORLD_SIZE,
    ENV_RANK,
    ENV_WORLD_SIZE,
    debug_enabled,
    dist_timeout,
)
from svqcast.errors import NetworkError, SvqcastError, UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job: `rank` among all processes (data shard, who
    writes), `local_rank` among the `local_world_size` processes of its node (which GPU)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    local_world_size: int = 1

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


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"${name}={raw!r} is not an integer; let torchrun set it") from None


def read_launch() -> tuple[int, int, int, int]:
    """(rank, local_rank, world_size, local_world_size) as the launcher set them, checked:
    a hand-made environment that does not add up is refused before anyone waits for it."""
    world, rank, local = _env_int(ENV_WORLD_SIZE, 1), _env_int(ENV_RANK, 0), _env_int(ENV_LOCAL_RANK, 0)
    local_world = _env_int(ENV_LOCAL_WORLD_SIZE, max(1, local + 1))
    if world < 1 or not 0 <= rank < world or not 0 <= local < local_world or local_world > world:
        raise UsageError(f"this process has RANK={rank} LOCAL_RANK={local} WORLD_SIZE={world} "
                         f"LOCAL_WORLD_SIZE={local_world}, which do not fit together; start it with torchrun")
    return rank, local, world, local_world


def init_distributed(device_preference: str = "auto") -> DistEnv:
    """Read torchrun's variables and join the process group when WORLD_SIZE > 1.

    Joining waits at most $SVQCAST_DIST_TIMEOUT seconds (svqcast.constants.dist_timeout);
    a job whose processes cannot meet (an unreachable address, a node that never started)
    ends with one line naming the address instead of a traceback."""
    rank, local_rank, world_size, local_world = read_launch()
    device = pick_device(device_preference, local_rank)
    if world_size <= 1:
        return DistEnv(device=device)
    if not dist.is_available():
        raise UsageError("this torch build has no torch.distributed; run without torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        if local_world > torch.cuda.device_count():  # NCCL refuses two ranks on one GPU
            raise UsageError(f"{local_world} processes on this node but {torch.cuda.device_count()} GPU(s) "
                             "visible; start `torchrun --nproc_per_node N` with N at most the GPU count")
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        _join(backend, rank, world_size, timedelta(seconds=dist_timeout()))
    return DistEnv(rank, local_rank, world_size, device, backend, local_world)


def _join(backend: str, rank: int, world_size: int, timeout: timedelta) -> None:
    """init_process_group, its failures as svqcast errors: a missing MASTER_ADDR/PORT is a
    launch mistake (exit 2), a peer or address that cannot be reached a network one (exit 4)."""
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    exc, native = _holding_native_stderr(lambda: dist.init_process_group(backend=backend, timeout=timeout))
    if exc is None or debug_enabled():
        os.write(2, native)  # a success's warnings (or everything, debugging) are the user's to see
    if isinstance(exc, ValueError):  # env:// without MASTER_ADDR or MASTER_PORT
        raise UsageError(f"rank {rank} of {world_size} cannot join the job ({' '.join(str(exc).split())[:200]}); "
                         "start svqcast under torchrun, which sets MASTER_ADDR and MASTER_PORT") from exc
    if isinstance(exc, (RuntimeError, TimeoutError, OSError)):  # DistError, DistStoreError, DistNetworkError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
        raise NetworkError(
            f"rank {rank} of {world_size} could not meet the other processes at {where} within "
            f"{timeout.total_seconds():g} s ({first}); check that every node runs the same "
            "`torchrun --nnodes N --rdzv-id ID --rdzv-endpoint HOST:PORT`, that the endpoint is reachable from this "
            "node (GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME name the interface between the nodes) and that no "
            "firewall blocks the port; "
            "$SVQCAST_DIST_TIMEOUT sets the wait"
        ) from exc
    if exc is not None:
        raise exc


def _holding_native_stderr(fn: Callable[[], object]) -> tuple[Exception | None, bytes]:
    """Run `fn` with file descriptor 2 redirected into a temporary file; return what it raised
    and what it wrote there. Why: c10d's C++ side logs every failed connection attempt, with a
    native stack trace, straight to fd 2, which would bury the one-line error of a failed join."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        error: Exception | None = None
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - classified by the caller
            error = exc
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        held.seek(0)
        return error, held.read()


def in_turns(env: DistEnv, fn: Callable[[], T]) -> T:
    """`fn()` on every rank, in three turns separated by barriers: global rank 0, then the
    first process of every other node, then all the rest.

    Why: `fn` may prepare something on first use (an embedded dataset sample). Rank 0 goes
    alone, so on a shared filesystem everyone else finds the result ready; on node-local
    disks, one process per node prepares its node's copy before its neighbours read it. A
    rank whose `fn` fails still takes part in the remaining barriers and the final vote, so
    no rank is left waiting for the timeout: all of them stop, each with one line."""
    if not env.distributed:
        return fn()
    mine = 0 if env.is_main else 1 if env.local_rank == 0 else 2
    done: list[T] = []
    error: Exception | None = None
    for turn in range(3):
        if turn == mine:
            try:
                done.append(fn())
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the barriers
                error = exc
        barrier(env)
    failed = any_rank(error is not None, env)
    if error is not None:
        raise error
    if failed:
        raise SvqcastError(f"rank {env.rank}: another process of the job failed while opening the data; "
                           "its error is in the log of its node")
    return done[0]


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
