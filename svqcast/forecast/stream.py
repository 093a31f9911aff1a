"""Forecasts at scale: `svqcast predict --init-times`, batch by batch into one zarr store.

Memory stays flat in the number of initialisations: the input is read one batch at a time,
each batch's forecast goes into its own region of a store created once with the full shape
(`svqcast.forecast.regionstore`), and nothing accumulates but a few numbers per batch. A run
that stops (a kill, a crash, a full disk) resumes on the same command: finished regions are
never computed again. Under `torchrun` the batches are dealt round-robin to the ranks (batch
k to rank k % WORLD_SIZE), the same partition as one process so the arithmetic is identical;
rank 0 checks and creates the store, the ranks meet at gloo barriers, rank 0 finalises.

A caller scores while forecasting through `StreamHooks` (svqcast.verify.streamscore): each
batch's payload is saved beside its completion marker, so a resumed run still scores all.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svqcast._version import __version__
from svqcast.errors import MismatchError, SvqcastError, UsageError
from svqcast.forecast import regionstore as rs
from svqcast.forecast.inputs import select_inits
from svqcast.forecast.run import PredictRequest, _load, _trained_on, refuse_repeated_init_times
from svqcast.forecast.writer import apply_layout, check_layout, step_unit
from svqcast.progress import Progress, counted
from svqcast.sources.coords import parse_coords
from svqcast.sources.lexicon import parse_var_map
from svqcast.sources.opener import open_dataset

Payload = Mapping[str, np.ndarray]
_RANGE = re.compile(r"^(?P<a>\d{4}-\d\d-\d\d(?:[T ][\d:.]+)?):(?P<b>\d{4}-\d\d-\d\d(?:[T ][\d:.]+)?):(?P<s>\w+)$")
_FRAMES = re.compile(r"^(?P<a>\d+):(?P<b>\d+):(?P<s>\d+)$")


@dataclass
class StreamHooks:
    """`on_batch(k, out)`: called with region k's forecast (layout applied) before its marker;
    what it returns is saved with the marker. `on_finish(payloads)`: on rank 0 once the store is
    complete, with every region's saved payload; its result goes into the report."""

    on_batch: Callable[[int, Any], Payload | None] | None = None
    on_finish: Callable[[Iterator[tuple[int, dict[str, np.ndarray]]]], dict[str, Any]] | None = None


def parse_init_times(text: str) -> list[str]:
    """`START:END:STEP` (inclusive end; ISO times and a step like 6h or 1d, or frame indices) or
    a comma-separated list -> the initialisation times, as text."""
    import pandas as pd

    text = text.strip()
    if (m := _FRAMES.match(text)) is not None:
        a, b, s = int(m["a"]), int(m["b"]), int(m["s"])
        _refuse_range(a > b, s <= 0, text)
        return [str(i) for i in range(a, b + 1, s)]
    if (m := _RANGE.match(text)) is not None:
        try:
            a, b, s = pd.Timestamp(m["a"]), pd.Timestamp(m["b"]), pd.Timedelta(re.sub(r"d$", "D", m["s"]))
        except (ValueError, TypeError):
            raise UsageError(f"`init_times` {text}: give START:END:STEP as ISO times and a step such as 6h or "
                             "1d (e.g. 2019-03-02T00:2019-03-31T00:6h)") from None
        _refuse_range(b < a, s <= pd.Timedelta(0), text)
        return [t.isoformat() for t in pd.date_range(a, b, freq=s)]
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or any(t.count(":") > 2 and "T" not in t for t in items):
        raise UsageError(f"`init_times` {text}: give START:END:STEP (e.g. 2019-03-02T00:2019-03-31T00:6h) "
                         "or a comma-separated list of times")
    return items


def _refuse_range(backwards: bool, bad_step: bool, text: str) -> None:
    if backwards:
        raise UsageError(f"`init_times` {text}: the end is before the start")
    if bad_step:
        raise UsageError(f"`init_times` {text}: the step must be positive")


@dataclass
class _Shard:
    """This process's place among torchrun's ranks (one rank without torchrun)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> _Shard:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return cls(int(os.environ.get("RANK", "0")), world)

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def from_rank0(self, fn: Callable[[], Any]) -> Any:
        """Rank 0 runs `fn`; every rank gets its result, or raises the error it raised."""
        result: list[Any] = [None, None]
        if self.rank == 0:
            try:
                result[0] = fn()
            except SvqcastError as exc:
                result[1] = exc
        if self.world > 1:
            import torch.distributed as dist

            dist.broadcast_object_list(result, src=0)
        if result[1] is not None:
            raise result[1]
        return result[0]

    def total(self, value: int) -> int:
        if self.world <= 1:
            return value
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value)
        return int(sum(gathered))


def _fingerprint(req: PredictRequest, fc: Any, inits: np.ndarray, n_steps: int, var_map: Any) -> dict[str, Any]:
    """What must match for a rerun to resume into a store (the same arithmetic, the same regions)."""
    return {
        "model": fc.ref, "weights_sha256": str(fc.meta.get("weights_sha256") or ""),
        **rs.input_identity(req.input),
        "init_times_sha256": hashlib.sha256(np.asarray(inits).astype(np.int64).tobytes()).hexdigest(),
        "init_times": int(inits.size), "first_init": str(inits[0])[:19], "last_init": str(inits[-1])[:19],
        "steps": int(n_steps), "layout": req.layout, "batch_size": int(req.batch_size or 8),
        "var_map": dict(var_map), "coords": dict(parse_coords(req.coords)), "svqcast": __version__,
    }


def _prepare(req: PredictRequest) -> tuple[Any, dict[str, str]]:
    """Every refusal that needs no model: the options, the output path."""
    if req.output is None:
        raise UsageError("missing `output` STORE.zarr (or pass `check` to validate only)")
    rs.refuse_non_zarr(req.output)
    if req.steps is not None and req.lead_time is not None:
        raise UsageError("give either `steps` or `lead_time`, not both")
    if req.members is not None:
        raise UsageError("`init_times` writes deterministic forecasts; make ensembles with `init_time`")
    if not req.init_time:
        raise UsageError("`init_times` names no initialisation")
    if not req.batch_size or req.batch_size < 1:
        raise UsageError(f"`batch_size` must be at least 1, got {req.batch_size}")
    refuse_repeated_init_times(list(req.init_time))
    parse_coords(req.coords)
    if not req.check and not req.overwrite:
        path = Path(req.output)
        if path.exists() and rs.read_request(path) is None:
            rs.store_state(path, {}, overwrite=False)  # names what is there, and refuses it
    return req, parse_var_map(req.var_map)


@dataclass
class _Input:
    """The input, opened once for the whole run: lazily, so each batch reads only its own frames.
    Opening a file per batch (decoding its time axis, guessing its coordinates) cost as much as
    the batch's forecast on a small model."""

    source: Any
    coords: Mapping[str, str] | None

    @classmethod
    def open(cls, req: PredictRequest) -> _Input:
        if isinstance(req.input, (str, os.PathLike)):
            return cls(open_dataset(req.input, parse_coords(req.coords)), None)  # coordinates named once
        return cls(req.input, parse_coords(req.coords))


def _batch(fc: Any, src: _Input, req: PredictRequest, texts: list[str], n_steps: int, var_map: Any) -> Any:
    """One batch's forecast in the output layout (its input read now, not before)."""
    prep = fc.check(src.source, init_time=texts, var_map=var_map, coords=src.coords)
    ds = fc.predict(None, steps=n_steps, history=req.history, prepared=prep)
    return apply_layout(ds, req.layout)


def predict_stream(req: PredictRequest, hooks: StreamHooks | None = None,
                   progress: Progress | None = None) -> dict[str, Any]:
    """Forecast every initialisation of `req.init_time` batch by batch into the zarr store
    `req.output`, resuming a partial store of the same request; the report `svqcast predict`
    prints (on rank 0: `computed`, `skipped`, forecasts per second, and `scores` from `hooks`)."""
    hooks = hooks or StreamHooks()
    t0 = time.perf_counter()
    req, var_map = _prepare(req)
    fc = _load(req)
    n_steps = fc.resolve_steps(req.steps, req.lead_time)
    texts = list(req.init_time)
    size = int(req.batch_size or 8)
    try:
        inits = select_inits(req.input, fc.spec, init_time=texts, var_map=var_map, coords=parse_coords(req.coords))
        prep = fc.check(req.input, init_time=texts[:size], var_map=var_map, coords=parse_coords(req.coords))
    except MismatchError as exc:
        raise MismatchError(f"{_trained_on(fc, req.model)}; {exc}") from None
    check_layout(req.layout, latlon=fc.spec.dims[0] in ("lat", "latitude"), calendar=prep.time_coord,
                 n_init=len(texts), fixed_step=step_unit(fc.spec) is None)
    report: dict[str, Any] = {**prep.report(), "init_times": [texts[0], texts[-1]], "model": fc.ref,
                              "steps": n_steps, "autoregressive": n_steps > fc.t_out, "batch_size": size}
    if req.check:
        return {**report, "inits": len(texts)}
    shard = _Shard.from_env()
    src = _Input.open(req)
    path = Path(str(req.output))
    request = _fingerprint(req, fc, inits, n_steps, var_map)
    state = shard.from_rank0(lambda: rs.store_state(path, request, overwrite=req.overwrite))
    slices = [slice(i, min(i + size, len(texts))) for i in range(0, len(texts), size)]
    tick = counted(progress if shard.rank == 0 else None, "predict", len(texts), "forecasting initialisations")
    computed = 0
    if state == "absent":
        made = shard.from_rank0(lambda: _create(fc, src, req, texts, slices[0], n_steps, var_map, inits, size,
                                                     request, hooks))
        computed += made if shard.rank == 0 else 0
    shard.barrier()
    done = rs.done_regions(path) if state != "complete" else set(range(len(slices)))
    mine = [k for k in range(len(slices)) if k % shard.world == shard.rank]
    count = 0
    for k in mine:
        if k not in done:
            out = _batch(fc, src, req, texts[slices[k]], n_steps, var_map)
            out.attrs["svqcast_input"] = str(req.input)
            rs.write_region(path, out, slices[k].start)
            rs.mark_region(path, k, hooks.on_batch(k, out) if hooks.on_batch else None)
            computed += slices[k].stop - slices[k].start
        count += slices[k].stop - slices[k].start
        tick(count * shard.world)
    computed = shard.total(computed)
    shard.barrier()
    scores = shard.from_rank0(lambda: _finish(path, state, len(slices), hooks))
    secs = time.perf_counter() - t0
    report.update(rank=shard.rank, ranks=shard.world, output=str(path), layout=req.layout, format="zarr",
                  inits=len(texts), computed=computed, skipped=len(texts) - computed, regions=len(slices),
                  seconds=round(secs, 3), forecasts_per_second=round(computed / secs, 3) if secs > 0 else None)
    if scores is not None:
        report["scores"] = scores
    return report


def _create(fc: Any, src: _Input, req: PredictRequest, texts: list[str], first: slice, n_steps: int,
            var_map: Any, inits: np.ndarray, size: int, request: Mapping[str, Any], hooks: StreamHooks) -> int:
    """Rank 0: forecast region 0, create the store from it, mark it; the number computed. The
    first batch is scored before the store exists, so a truth that does not fit the forecast
    (`score_against` without its variables, another grid) leaves nothing behind."""
    out = _batch(fc, src, req, texts[first], n_steps, var_map)
    out.attrs["svqcast_input"] = str(req.input)
    payload = hooks.on_batch(0, out) if hooks.on_batch else None
    path = Path(str(req.output))
    rs.create_store(path, out, np.asarray(inits), size, request, overwrite=req.overwrite)
    rs.mark_region(path, 0, payload)
    return first.stop - first.start


def _finish(path: Path, state: str, regions: int, hooks: StreamHooks) -> dict[str, Any] | None:
    """Rank 0, every rank done: collect the payloads, then finalise the store."""
    if state == "complete":
        return None
    missing = sorted(set(range(regions)) - rs.done_regions(path))
    if missing:
        raise UsageError(f"{path}: regions {missing[:5]} are not written; rerun the same command to finish")
    result = hooks.on_finish(rs.payloads(path, regions)) if hooks.on_finish else None
    rs.finalise(path)
    return result


__all__ = ["StreamHooks", "parse_init_times", "predict_stream"]
