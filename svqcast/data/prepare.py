"""`svqcast prepare DATASET`: raw upstream files -> the standard store (`svqcast.data.storedir`).

One pipeline for every catalog dataset: the entry names its builder (`builder` in
`catalog.toml`, looked up in `svqcast.data.builders.BUILDERS`), the builder returns the splits,
and `svqcast.data.build` writes them into one zarr store with the training-split statistics
and the manifest, whole or in parts (`svqcast.data.parts`). Everything is
deterministic: preparing twice gives byte-identical files (tested). Embedded samples are
prepared from the package on first use. A user's own file (`svqcast prepare PATH --name`)
goes through `svqcast.data.userprep`, which streams through the same store writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from svqcast.data.build import plan_store, write_prepared
from svqcast.data.builders import builder_for
from svqcast.data.catalog import get_entry
from svqcast.data.dask_run import Scheduler
from svqcast.data.downloads import parse_years
from svqcast.data.parts import build_part
from svqcast.data.storedir import is_prepared, prepared_dir, raw_dir, split_names, verify
from svqcast.errors import UsageError
from svqcast.fsutil import atomic_dir
from svqcast.progress import Progress


def prepare(name: str, root: str | os.PathLike[str] | None = None, *, official_validation: bool = False,
            source_dir: str | os.PathLike[str] | None = None, force: bool = False,
            select: dict[str, Any] | None = None, log: Callable[[str], None] | None = None,
            scheduler: Scheduler | None = None, parts: tuple[int, int] | None = None,
            progress: Progress | None = None) -> Path:
    """Prepare `name` into its store directory and return that directory.

    `official_validation=True` writes the official split (no held-out validation: the
    validation loader reads the test split, as OpenSTL does) into `prepared-official/`.
    `select` replaces the catalog's split selection (e.g. other years); it is recorded in
    the manifest. `scheduler` runs the blocks (one process by default; svqcast.data.dask_run);
    `parts` = (I, N) writes only part I of N into ROOT/NAME/parts and returns that part's
    directory (`svqcast.data.parts.finalise` merges them).
    """
    if scheduler is not None:
        scheduler.check().probe()  # an unreachable cluster is refused before any input is read
    entry = get_entry(name, root)
    target = prepared_dir(name, root, official_validation)
    if entry.is_user and (force or official_validation or not is_prepared(target)):
        raise UsageError(f"{name} is a dataset prepared from your own files: rebuild it with "
                         f"`svqcast prepare {entry.source} --name {name} --force`")
    if is_prepared(target) and not force and parts is None:
        verify(target, deep=False)  # an existing store is checked (sizes; digests when small), never trusted
        return target
    src = Path(source_dir) if source_dir is not None else raw_dir(name, root)
    builder = builder_for(entry)
    select = dict(select) if select is not None else (entry.official_select if official_validation else entry.select)
    prep = builder(entry, select, src, official_validation)
    say = log or (lambda _m: None)
    prep.channels, prep.units = prep.channels or entry.channel_names, prep.units or entry.units
    prep.time_kind, prep.normalisation = prep.time_kind or entry.time_kind, prep.normalisation or entry.normalisation
    prep.manifest = {"select": select, **prep.manifest}
    prep.splits = {s: prep.splits[s] for s in split_names(official_validation)}
    # overwrite only when asked (or the old dir lacks its manifest): a concurrent first-use
    # preparation by another process then ends in FileExistsError, which callers accept.
    if parts is not None:
        return build_part(plan_store(name, prep, official_validation), target, parts, force=force,
                          scheduler=scheduler, progress=progress, say=say)
    with atomic_dir(target, overwrite=force or (target.exists() and not is_prepared(target))) as tmp:
        write_prepared(tmp, name, prep, official_validation=official_validation, say=say, progress=progress,
                       scheduler=scheduler)
    say(f"prepared {name} in {target}")
    return target


def parse_split_years(name: str, items: list[str], official_validation: bool = False) -> dict[str, Any]:
    """`["train=2016:2017", "test=2019"]` -> a `select` with those years replaced."""
    entry = get_entry(name)
    base = entry.official_select if official_validation else entry.select
    if "years" not in base:
        raise UsageError(f"`years` applies to WeatherBench datasets, not {name}")
    years = {k: list(v) for k, v in base["years"].items()}
    for item in items:
        split, _, rng = item.partition("=")
        if split not in years or not rng:
            raise UsageError(f"`years` {item!r}: use SPLIT=A:B with SPLIT one of {', '.join(years)}")
        parsed = parse_years(rng)
        assert parsed is not None
        years[split] = list(parsed)
    return {**base, "years": years}
