"""Atomic writes: all or nothing, and final files get ordinary permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from svqcast.fsutil import atomic_dir, atomic_path, atomic_write_text, sha256_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_file_has_umask_mode_and_no_leftovers(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert _mode(tmp_path / "a.txt") == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_failed_write_leaves_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "b.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["b.txt"]


def test_atomic_dir_mode_overwrite_and_failure(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    old = os.umask(0o022)
    try:
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(old)
    assert _mode(target) == 0o755
    with pytest.raises(FileExistsError):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("2")
    with atomic_dir(target, overwrite=True) as tmp:
        (tmp / "x").write_text("3")
    assert (target / "x").read_text() == "3"
    with pytest.raises(KeyError):
        with atomic_dir(tmp_path / "never") as tmp:
            (tmp / "x").write_text("4")
            raise KeyError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_sha256_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(3_000_001)
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob", chunk=1 << 16) == hashlib.sha256(data).hexdigest()
