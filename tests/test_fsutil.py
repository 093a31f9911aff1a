"""Atomic writes: all or nothing, and final files get ordinary permissions."""

from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path

import pytest

from svqcast.errors import Interrupted, SvqcastError, UsageError
from svqcast.fsutil import (
    OutputExistsError,
    atomic_dir,
    atomic_path,
    atomic_write_text,
    check_output,
    classify_write_error,
    deferred_signals,
    sha256_file,
)


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


# --------------------------------------------------------------------------- issue 12: the shared mechanism

def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix in (".tmp", ".old", ".part"))


def test_special_files_are_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for target in (fifo, link):
        with pytest.raises(UsageError, match="FIFO"):
            check_output(target, overwrite=True)
        with pytest.raises(UsageError, match="FIFO"):
            with atomic_path(target, overwrite=True) as tmp:
                tmp.write_text("x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()
    assert _leftovers(tmp_path) == []


def test_overwriting_a_symlink_replaces_the_link_never_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert not link.is_symlink() and link.read_text() == "new" and real.read_text() == "old"


def test_dev_null_is_a_discard_never_replaced(tmp_path: Path) -> None:
    assert check_output(os.devnull, overwrite=False) == Path(os.devnull)
    with atomic_path(os.devnull) as tmp:
        tmp.write_text("discarded")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode) and not tmp.exists()


def test_check_output_refusals(tmp_path: Path) -> None:
    src = tmp_path / "in.nc"
    src.write_text("input")
    with pytest.raises(OutputExistsError, match="`overwrite`"):
        check_output(src, overwrite=False)
    with pytest.raises(UsageError, match="overwrite the input"):
        check_output(src, overwrite=True, inputs=[src])
    alias = tmp_path / "alias.nc"
    alias.symlink_to(src)
    with pytest.raises(UsageError, match="overwrite the input"):
        check_output(alias, overwrite=True, inputs=[src])
    with pytest.raises(UsageError, match="overwrite the input"):  # a directory output holding an input
        check_output(tmp_path, overwrite=True, inputs=[src], kind="dir")
    with pytest.raises(UsageError, match="directory"):
        check_output(tmp_path, overwrite=True)
    with pytest.raises(UsageError, match="regular file"):
        check_output(src, overwrite=True, kind="dir")
    with pytest.raises(UsageError, match="does not exist"):
        check_output(tmp_path / "no" / "out.nc", overwrite=False)
    with pytest.raises(UsageError):
        check_output("/proc/svqcast-out.nc", overwrite=False)
    assert check_output(tmp_path / "new.nc", overwrite=False, inputs=[src]) == tmp_path / "new.nc"
    assert _leftovers(tmp_path) == []


def test_atomic_dir_overwrite_leaves_no_old_and_refuses_files(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    for value in ("1", "2", "3"):
        with atomic_dir(target, overwrite=True) as tmp:
            (tmp / "x").write_text(value)
    assert (target / "x").read_text() == "3" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    afile = tmp_path / "afile"
    afile.write_text("keep")
    with pytest.raises(UsageError, match="not a directory"):
        with atomic_dir(afile, overwrite=True) as tmp:
            (tmp / "x").write_text("1")
    assert afile.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ckpt"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_write_is_deferred_then_interrupts(tmp_path: Path, signum: int, code: int) -> None:
    target = tmp_path / "out.txt"
    target.write_text("before")
    old_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(Interrupted) as info:
            with atomic_path(target) as tmp:
                tmp.write_text("half")
                os.kill(os.getpid(), signum)  # lands here, acted on after the write block
                tmp.write_text("whole")  # still runs: the signal was deferred
    finally:
        signal.signal(signal.SIGTERM, old_term)
    assert info.value.exit_code == code and target.read_text() == "before" and _leftovers(tmp_path) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_custom_handler_gets_the_signal_after_the_write_commits(tmp_path: Path) -> None:
    got: list[int] = []
    old = signal.signal(signal.SIGINT, lambda s, f: got.append(s))
    try:
        with atomic_path(tmp_path / "ok.txt") as tmp:
            tmp.write_text("done")
            os.kill(os.getpid(), signal.SIGINT)
        assert got == [signal.SIGINT] and (tmp_path / "ok.txt").read_text() == "done"
        with deferred_signals(), deferred_signals():  # nested blocks share one deferral
            os.kill(os.getpid(), signal.SIGINT)
        assert got == [signal.SIGINT, signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old)


def test_write_errors_are_classified(tmp_path: Path) -> None:
    full = classify_write_error(OSError(errno.ENOSPC, "No space left on device"), tmp_path / "x")
    assert type(full) is SvqcastError and "disk full" in str(full)
    ro = classify_write_error(OSError(errno.EROFS, "Read-only file system"), tmp_path / "x")
    assert isinstance(ro, UsageError) and "read-only" in str(ro)
    assert classify_write_error(KeyError("bug"), tmp_path / "x") is None
    with pytest.raises(SvqcastError, match="disk full"):
        with atomic_path(tmp_path / "y"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert _leftovers(tmp_path) == []


@pytest.fixture()
def tiny_fs(tmp_path: Path):
    """A 64 KiB tmpfs (needs root and mount rights; skipped otherwise)."""
    import subprocess

    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)  # lazy: a leaked handle must not pin it


def test_a_real_full_disk_is_one_line_and_no_leftovers(tiny_fs: Path) -> None:
    with pytest.raises(SvqcastError, match="disk full") as info:
        with atomic_path(tiny_fs / "big.bin") as tmp:
            tmp.write_bytes(os.urandom(1 << 20))
    assert "\n" not in str(info.value) and list(tiny_fs.iterdir()) == []


def test_a_pending_signal_stops_the_next_nested_write(tmp_path: Path) -> None:
    """A directory built from many files stops at the next file, not at the end."""
    from svqcast.fsutil import check_interrupted

    written = []
    with pytest.raises(Interrupted):
        with atomic_dir(tmp_path / "store") as tmp:
            for i in range(5):
                check_interrupted()
                with atomic_path(tmp / f"{i}.nc") as part:
                    part.write_text(str(i))
                    written.append(i)
                    if i == 1:
                        os.kill(os.getpid(), signal.SIGINT)
    assert written == [0, 1] and list(tmp_path.iterdir()) == []


def test_check_input_refuses_what_would_block(tmp_path: Path) -> None:
    from svqcast.fsutil import check_input

    os.mkfifo(tmp_path / "pipe.nc")
    (tmp_path / "link.nc").symlink_to(tmp_path / "pipe.nc")
    for bad, kind in ((tmp_path / "pipe.nc", "FIFO"), (tmp_path / "link.nc", "FIFO"), (Path(os.devnull), "device")):
        with pytest.raises(UsageError, match=kind):
            check_input(bad)
    (tmp_path / "ok.nc").write_text("x")
    assert check_input(tmp_path / "ok.nc") == tmp_path / "ok.nc"
    assert check_input(tmp_path / "missing.nc") == tmp_path / "missing.nc"  # the reader names it
