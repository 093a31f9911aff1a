"""Parted builds for batch systems: `prepare ... --parts I/N`, then `prepare --finalise NAME`.

Each part is a separate process (a batch job), run in any order. It plans the whole store,
writes the metadata and only its own blocks (a contiguous run of the chunk-aligned blocks)
into its own directory, atomically, with `part.json`: its blocks' partial statistics, what
finishing needs, and a fingerprint of everything the options decide (the store's layout and
the preparation's settings). A part killed mid-write leaves nothing; running it again
builds it whole.

    ROOT/NAME/parts/part-0002-of-0003/store.zarr   metadata + part 2's chunks
    ROOT/NAME/parts/part-0002-of-0003/part.json

`finalise` checks that all N parts exist with one fingerprint, assembles the store by hard
links (no data copy; a copy where links are not possible) in a temporary directory, merges
the statistics in block order (the same bits as a single run), writes stats.json and the
manifest, swaps the store in atomically and only then removes the parts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from svqcast.data.blocks import Block, BlockResult
from svqcast.data.build import FinishInfo, StorePlan, finish, run_plan, scan_chunk
from svqcast.data.dask_run import Scheduler
from svqcast.data.store import STORE
from svqcast.data.storedir import dataset_dir, is_prepared, prepared_dir, read_json, store_files
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import atomic_dir
from svqcast.progress import Progress

PARTS = "parts"
PART_JSON = "part.json"
_PART_DIR = re.compile(r"^part-(\d{4})-of-(\d{4})$")


def parse_parts(text: str) -> tuple[int, int]:
    """`I/N` with 1 <= I <= N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m:
        raise UsageError(f"`parts` {text!r}: write I/N, e.g. 2/3 for the second of three parts")
    i, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= 9999 or not 1 <= i <= n:
        raise UsageError(f"`parts` {text}: the part number must be between 1 and N (here {n}), and N at most 9999")
    return i, n


def parts_dir(name: str, root: str | os.PathLike[str] | None) -> Path:
    return dataset_dir(name, root) / PARTS


def part_blocks(blocks: list[Block], i: int, n: int) -> list[Block]:
    """Part I of N: a contiguous run of blocks, sizes differing by at most one block."""
    if n > len(blocks):
        raise UsageError(f"`parts` {i}/{n}: the store has {len(blocks)} block{'s' * (len(blocks) != 1)}; "
                         f"use at most {len(blocks)} parts")
    lo, hi = (len(blocks) * k // n for k in (i - 1, i))
    return blocks[lo:hi]


def fingerprint(store: Path, info: FinishInfo, n: int, extra: dict[str, Any]) -> str:
    """What must agree between parts: the store's metadata and small arrays (layout, splits,
    times, grid), the finishing settings, the number of parts and `extra` (a user record)."""
    h = hashlib.sha256(json.dumps({"info": info.to_json(), "n": n, "extra": extra}, sort_keys=True,
                                  default=str).encode())
    for rel in store_files(store):
        if not rel.startswith("data/c/"):
            h.update(rel.encode())
            h.update((store / rel).read_bytes())
    return h.hexdigest()


def _existing(name: str, root: str | os.PathLike[str] | None) -> dict[tuple[int, int], dict[str, Any]]:
    out: dict[tuple[int, int], dict[str, Any]] = {}
    base = parts_dir(name, root)
    for p in sorted(base.iterdir()) if base.is_dir() else []:
        m = _PART_DIR.match(p.name)
        if m and (p / PART_JSON).is_file():
            out[(int(m.group(1)), int(m.group(2)))] = read_json(p / PART_JSON, "a part record",
                                                                f"remove {p} and run that part again")
    return out


def build_part(plan: StorePlan, target: Path, part: tuple[int, int], *, extra: dict[str, Any] | None = None,
               force: bool = False, scheduler: Scheduler | None = None, progress: Progress | None = None,
               say: Callable[[str], None] | None = None) -> Path:
    """Write part `part` = (I, N) of `plan` for the store that will live in `target`."""
    say = say or (lambda _m: None)
    name, root = plan.info.name, target.parent.parent
    i, n = part
    if is_prepared(target) and not force:
        raise UsageError(f"{name} is already prepared in {target}; pass `force` to build it again in parts")
    blocks = part_blocks(plan.blocks, i, n)
    out = parts_dir(name, root) / f"part-{i:04d}-of-{n:04d}"
    with atomic_dir(out, overwrite=True) as tmp:
        store = plan.create(tmp)
        print_ = fingerprint(store, plan.info, n, extra or {})
        for (j, m), rec in _existing(name, root).items():
            if (j, m) != (i, n) and rec.get("fingerprint") != print_:
                raise UsageError(f"part {i}/{n} of {name} differs from part {j}/{m} already built (other options, "
                                 f"inputs or part count); run every part with the same command, or remove "
                                 f"{parts_dir(name, root)}")
        results = run_plan(plan, store, blocks, scheduler, progress, say)
        record = {"fingerprint": print_, "part": [i, n], "target": target.name, "info": plan.info.to_json(),
                  "extra": extra or {}, "blocks": [r.to_json() for r in results], "chunk": scan_chunk(plan.blocks)}
        (tmp / PART_JSON).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    say(f"wrote part {i}/{n} of {name} ({sum(b.stop - b.start for b in blocks)} frames) in {out}")
    return out


def _check_parts(name: str, root: str | os.PathLike[str] | None) -> tuple[int, dict[int, dict[str, Any]]]:
    found = _existing(name, root)
    if not found:
        raise DataError(f"{name}: no parts to finalise in {parts_dir(name, root)}; run `svqcast prepare ... "
                        "--parts I/N` for every part first")
    counts = {m for _j, m in found}
    if len(counts) > 1:
        raise UsageError(f"{name}: parts of different part counts ({', '.join(map(str, sorted(counts)))}) in "
                         f"{parts_dir(name, root)}; keep one set of parts")
    n = counts.pop()
    missing = [i for i in range(1, n + 1) if (i, n) not in found]
    if missing:
        raise DataError(f"{name}: part{'s' * (len(missing) > 1)} {', '.join(f'{i}/{n}' for i in missing)} "
                        f"missing in {parts_dir(name, root)}; run `svqcast prepare ... --parts I/{n}` for "
                        f"{'them' if len(missing) > 1 else 'it'}, then finalise again")
    prints = {rec.get("fingerprint") for rec in found.values()}
    if len(prints) != 1:
        raise UsageError(f"{name}: the parts were built with different options or inputs; rebuild them with one "
                         f"command, after removing {parts_dir(name, root)}")
    return n, {i: found[(i, n)] for i in range(1, n + 1)}


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy) every file of `src` into `dst`, keeping what `dst` already has."""
    for rel in store_files(src):
        out = dst / rel
        if out.exists():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src / rel, out)
        except OSError:
            shutil.copy2(src / rel, out)


def finalise(name: str, root: str | os.PathLike[str] | None = None, *,
             say: Callable[[str], None] | None = None) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Merge the N parts of `name` into its prepared store; (store directory, manifest, the
    parts' `extra`: a user dataset's catalog record, registered by the caller)."""
    say = say or (lambda _m: None)
    n, records = _check_parts(name, root)
    first = records[1]
    base = parts_dir(name, root)
    try:
        info = FinishInfo.from_json(first["info"])
        results = [BlockResult.from_json(b) for rec in records.values() for b in rec["blocks"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise DataError(f"{base}: a part.json is damaged (edited or truncated); remove the parts and run them "
                        "again") from None
    target = prepared_dir(name, root, bool(info.manifest.get("official_validation")))
    with atomic_dir(target, overwrite=True) as tmp:
        for i in range(1, n + 1):
            _link_tree(base / f"part-{i:04d}-of-{n:04d}" / STORE, tmp / STORE)
        manifest = finish(tmp, info, results, int(first.get("chunk", 512)), say)
    shutil.rmtree(base, ignore_errors=True)
    say(f"finalised {name} from {n} parts in {target}")
    return target, manifest, dict(first.get("extra") or {})


__all__ = ["PARTS", "build_part", "finalise", "fingerprint", "parse_parts", "part_blocks", "parts_dir"]
