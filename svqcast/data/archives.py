"""Unpacking downloaded archives (zip, tar) into a dataset's raw folder, safely.

Member names are confined to the target (no absolute paths, no `..`), clashes are refused,
and the extraction is atomic: a failure leaves the target as it was.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from svqcast.errors import DataError
from svqcast.fsutil import atomic_dir, check_interrupted, classify_write_error, deferred_signals

CHUNK = 1 << 16  # bytes per copy
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or re.match(r"^[A-Za-z]:", name) or ".." in p.parts:
        raise DataError(f"{archive}: refusing unsafe member {name!r} (it would escape the target folder)")
    return tuple(x for x in p.parts if x not in ("", "."))


def _strip_common(paths: list[tuple[str, ...]]) -> int:
    """How many leading folders every member shares (the upstream prefix to flatten)."""
    if not paths:
        return 0
    k = 0
    while all(len(p) > k + 1 for p in paths) and len({p[k] for p in paths}) == 1:
        k += 1
    return k


def extract_archive(archive: str | os.PathLike[str], target: str | os.PathLike[str], *,
                    keep: Callable[[str], bool] | None = None) -> list[Path]:
    """Extract a zip or tar into `target` (created or merged into), verified and atomic.

    The archive is fully read and CRC-checked into a sibling temp dir first; only then are
    its files moved into `target`. `keep(relative_path)` can drop members (e.g. unselected
    years)."""
    archive, target = Path(archive), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.extract"
    shutil.rmtree(staging, ignore_errors=True)
    with atomic_dir(staging) as tmp:
        if zipfile.is_zipfile(archive):
            members = _extract_zip(archive, tmp, keep)
        elif _is_tar(archive):
            members = _extract_tar(archive, tmp, keep)
        else:
            raise DataError(f"{archive}: not a zip or tar archive (corrupt or truncated download)")
    return _move_into(staging, members, target)


def _move_into(staging: Path, members: list[str], target: Path) -> list[Path]:
    """Move verified members from `staging` into `target`; signals wait until all are moved
    (or, on an error, until the ones moved are taken back out), so `raw/` is never half-filled."""
    out: list[Path] = []
    with deferred_signals():
        try:
            for rel in members:
                dst = target / rel
                if dst.is_dir():
                    raise DataError(f"{target}: archive member {rel!r} clashes with the folder {dst}")
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, dst)
                out.append(dst)
        except BaseException:
            for dst in out:
                dst.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _extract_zip(archive: Path, tmp: Path, keep: Callable[[str], bool] | None) -> list[str]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: corrupt zip ({exc})") from None
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        for i in infos:
            if (i.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"{archive}: refusing symlink member {i.filename!r}")
        # zipfile checks each member's CRC when its stream ends
        members = [(i.filename, lambda i=i: zf.open(i)) for i in infos]
        return _copy_members(archive, tmp, members, keep, (zipfile.BadZipFile, zlib.error, OSError, EOFError))


def _extract_tar(archive: Path, tmp: Path, keep: Callable[[str], bool] | None) -> list[str]:
    try:
        tf = tarfile.open(archive)
        infos = tf.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{archive}: corrupt tar ({exc})") from None
    with tf:
        for m in infos:
            if m.issym() or m.islnk() or m.isdev():
                raise DataError(f"{archive}: refusing link/device member {m.name!r}")
        members = [(m.name, lambda m=m: tf.extractfile(m)) for m in infos if m.isfile()]
        return _copy_members(archive, tmp, members, keep, (tarfile.TarError, OSError, EOFError))


def _copy_members(archive: Path, tmp: Path, members: Sequence[tuple[str, Callable[..., Any]]],
                  keep: Callable[[str], bool] | None, errors: tuple[type[BaseException], ...]) -> list[str]:
    """Copy archive members into `tmp`: names checked, common top folders stripped,
    unwanted members skipped; returns the relative paths written."""
    parts = [_safe_parts(name, archive) for name, _ in members]
    if not parts:
        raise DataError(f"{archive}: the archive holds no files (empty or truncated download)")
    _refuse_clashes(archive, [name for name, _ in members], parts)
    strip = _strip_common(parts)
    written = []
    for (name, opener), p in zip(members, parts, strict=True):
        rel = "/".join(p[strip:])
        if keep is not None and not keep(rel):
            continue
        check_interrupted()  # Ctrl-C stops a long extraction at the next member
        dst = tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            with opener() as src, open(dst, "wb") as fh:
                shutil.copyfileobj(src, fh, CHUNK)
        except errors as exc:
            if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
                raise (classify_write_error(exc, dst) or exc) from None  # the disk, not the archive
            raise DataError(f"{archive}: corrupt member {name!r} ({exc})") from None
        written.append(rel)
    if not written:
        raise DataError(f"{archive}: none of its {len(parts)} files matches the selection (`years`, `variables`)")
    return written


def _refuse_clashes(archive: Path, names: list[str], parts: list[tuple[str, ...]]) -> None:
    """Two members with one name, or a member that is also another member's folder (`a` and
    `a/b`): which one would win is arbitrary, so the archive is refused (exit 3)."""
    seen: dict[tuple[str, ...], str] = {}
    for name, p in zip(names, parts, strict=True):
        if p in seen:
            raise DataError(f"{archive}: member {name!r} appears twice; the archive is malformed")
        seen[p] = name
    folders = {p[:k] for p in parts for k in range(1, len(p))}
    for p, name in seen.items():
        if p in folders:
            raise DataError(f"{archive}: member {name!r} is both a file and a folder of other members; "
                            "the archive is malformed")
