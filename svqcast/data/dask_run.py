"""Run a preparation's blocks as a dask graph: in this process, on a local cluster, or on a
cluster someone else started. svqcast has no scheduler of its own.

    Scheduler()                      dask's synchronous scheduler: one process, one thread
    Scheduler(kind="threads")        dask's local threaded scheduler
    Scheduler(workers=N)             a `dask.distributed.LocalCluster` of N one-thread processes
    Scheduler(address="tcp://h:p")   an existing `dask.distributed` cluster (`dask scheduler` ...)

Every way runs the same tasks (`svqcast.data.blocks.write_block`) and merges their results in
block order, so the store and its statistics do not depend on the choice (tested).
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from svqcast.errors import NetworkError, UsageError

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Scheduler:
    """Where the blocks run (see the module docstring)."""

    kind: str = "sync"  # sync | threads
    workers: int | None = None
    address: str | None = None

    def check(self) -> Scheduler:
        if self.workers is not None and self.address is not None:
            raise UsageError("give either `workers` (a local cluster) or `scheduler` (an existing one), not both")
        if self.workers is not None and not 1 <= self.workers <= 1024:
            raise UsageError(f"`workers` {self.workers}: use 1 to 1024 worker processes")
        if self.address is not None and not self.address.strip():
            raise UsageError("`scheduler` is empty: give the address of a dask scheduler, e.g. tcp://host:8786")
        if self.kind not in ("sync", "threads"):
            raise UsageError(f"unknown local scheduler {self.kind!r}: use sync or threads")
        return self

    def probe(self) -> Scheduler:
        """Refuse an unreachable `scheduler` address in seconds, before any input is read: a plain
        TCP connection to its host and port (the dask client connects again later)."""
        if self.address is None:
            return self
        parts = urlsplit(self.address if "://" in self.address else f"tcp://{self.address}")
        try:
            host, port = parts.hostname, parts.port or 8786
        except ValueError:
            host, port = None, None
        if not host or parts.scheme not in ("tcp", "tls", "ws", "wss"):
            raise UsageError(f"`scheduler` {self.address!r}: give a dask scheduler address, e.g. tcp://host:8786")
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise NetworkError(f"cannot reach the dask scheduler at {self.address} within {CONNECT_TIMEOUT_S} s "
                               f"({exc.strerror or type(exc).__name__}); start it (`dask scheduler`) or check "
                               "the address") from None
        return self

    def describe(self) -> str:
        if self.address is not None:
            return f"dask cluster at {self.address}"
        if self.workers is not None:
            return f"local dask cluster of {self.workers} worker process{'es' if self.workers > 1 else ''}"
        return "one process" if self.kind == "sync" else "dask threads"


@contextlib.contextmanager
def _client(sched: Scheduler) -> Iterator[Any]:
    """A distributed client for a cluster scheduler; None for the local schedulers."""
    if sched.workers is None and sched.address is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if sched.address is not None:
        try:
            client = Client(sched.address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise NetworkError(f"cannot reach the dask scheduler at {sched.address} within {CONNECT_TIMEOUT_S} s "
                               f"({type(exc).__name__}); start it (`dask scheduler`) or check the address") from None
        with client:
            yield client
        return
    # the workers' scratch space (spill files, locks) lives and dies with this call, not in /tmp for good
    import dask

    with tempfile.TemporaryDirectory(prefix="svqcast-dask-") as scratch, dask.config.set(
            {"temporary-directory": scratch}), LocalCluster(
            n_workers=sched.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            local_directory=scratch) as cluster, Client(cluster) as client:
        yield client


def run_blocks(fn: Callable[[Any], Any], items: Sequence[Any], sched: Scheduler,
               tick: Callable[[int], None] | None = None) -> list[Any]:
    """`[fn(item) for item in items]` as a dask graph on `sched`; `tick(done)` after each task."""
    import dask
    from dask.callbacks import Callback

    tick = tick or (lambda _n: None)
    tasks = [dask.delayed(fn, pure=False)(item, dask_key_name=f"svqcast-block-{k}") for k, item in enumerate(items)]
    with _client(sched) as client:
        if client is None:
            done = [0]

            def count(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
                if isinstance(key, str) and key.startswith("svqcast-block-"):
                    done[0] += 1
                    tick(done[0])

            with Callback(posttask=count):
                return list(dask.compute(*tasks, scheduler=sched.kind))
        from distributed import as_completed

        futures = client.compute(tasks)
        for k, _future in enumerate(as_completed(futures), start=1):
            tick(k)
        return list(client.gather(futures))


__all__ = ["CONNECT_TIMEOUT_S", "Scheduler", "run_blocks"]
