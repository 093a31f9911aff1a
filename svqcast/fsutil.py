"""Safe outputs: nothing svqcast writes is ever half-written, nothing that is not ours is replaced.

Every command that writes follows the same two steps (docs/reliability.md):

1. `check_output` before any compute: refuse an existing target without `--overwrite`, a
   special file (device, FIFO, socket), an output that is also an input, an unwritable
   directory -- all one-line `UsageError`s (exit 2).
2. `atomic_path` / `atomic_dir` for the write itself: a temp entry next to the target, renamed
   over it only on success, with SIGINT/SIGTERM deferred meanwhile (`deferred_signals`); on an
   error or a signal the temp entry is removed and, for a signal, `Interrupted` (exit 130/143)
   is raised after the cleanup.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from svqcast.errors import Interrupted, SvqcastError, UsageError

__all__ = [
    "DEVNULL",
    "Interrupted",
    "OutputExistsError",
    "atomic_dir",
    "atomic_path",
    "atomic_write_text",
    "check_input",
    "check_interrupted",
    "check_output",
    "deferred_signals",
    "raise_interrupted",
    "sha256_file",
]

#: The one special file svqcast accepts as an output: writes to it are discarded, never replaced.
DEVNULL = Path(os.devnull)
#: Test hook: seconds to linger inside the write phase so tests can signal it (docs/reliability.md).
SLOW_WRITE_ENV = "SVQCAST_TEST_SLOW_WRITE"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class OutputExistsError(UsageError, FileExistsError):
    """The target exists and `overwrite` was not given (still a FileExistsError for old callers)."""

    exit_code = 2

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- signals


def raise_interrupted(signum: int, frame: Any = None) -> None:
    """A signal handler that turns SIGINT/SIGTERM into `Interrupted` (the CLI installs it for
    SIGTERM, so a terminated command still cleans up and prints one line)."""
    raise Interrupted(signum)


def _interrupts(handler: Any) -> bool:
    """True when the handler that a deferred signal goes back to would end the program."""
    return handler in (signal.default_int_handler, signal.SIG_DFL, raise_interrupted, None)


class _Deferral:
    """Signals caught while a write is in progress, and the handlers they belong to."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.old: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def interrupting(self) -> int | None:
        """The first pending signal whose own handler would stop the program, if any."""
        for signum in self.pending:
            if _interrupts(self.old.get(signum)):
                return signum
        return None


_active: list[_Deferral] = []
_finishing: list[bool] = []


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """Writes inside this block complete even when a signal is already pending: for the second
    half of a pair that must change together (a store swapped in, then its catalog record)."""
    _finishing.append(True)
    try:
        yield
    finally:
        _finishing.pop()


@contextlib.contextmanager
def deferred_signals() -> Iterator[_Deferral]:
    """Hold SIGINT/SIGTERM until the block ends, then act on them.

    A signal landing inside a C library's write (HDF5, zarr) can deadlock or leave a torn file;
    here it only sets a flag. At the end the original handler gets the signal: a custom one
    (training's graceful-stop flag) is called, a default one becomes `Interrupted`. Nested blocks
    share the outermost deferral; outside the main thread signals cannot be caught and this is a
    no-op.
    """
    if _active:  # nested: a pending signal stops the outer write before this one starts
        if not _finishing:
            check_interrupted()
        yield _active[-1]
        return
    state = _Deferral()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    for sig in _SIGNALS:
        state.old[sig] = signal.signal(sig, state.handler)
    _active.append(state)
    try:
        yield state
    except BaseException as exc:
        _restore(state)
        signum = state.interrupting()
        if signum is not None and not isinstance(exc, Interrupted):
            raise Interrupted(signum) from None
        raise
    _restore(state)
    _deliver(state)


def check_interrupted() -> None:
    """Raise `Interrupted` now if a deferred SIGINT/SIGTERM is waiting; long loops inside a
    write block (many files, hashing) call this so Ctrl-C does not wait for the whole block."""
    if _active and (signum := _active[-1].interrupting()) is not None:
        raise Interrupted(signum)


def _restore(state: _Deferral) -> None:
    _active.remove(state)
    for sig, old in state.old.items():
        signal.signal(sig, old)


def _deliver(state: _Deferral) -> None:
    for signum in dict.fromkeys(state.pending):
        old = state.old.get(signum)
        if _interrupts(old):
            raise Interrupted(signum)
        if callable(old):
            old(signum, None)


def _linger(state: _Deferral) -> None:
    """The SVQCAST_TEST_SLOW_WRITE hook: stay in the write phase until the delay passes or a
    signal arrives, so interrupt tests can hit the write reliably."""
    try:
        delay = float(os.environ.get(SLOW_WRITE_ENV, "0") or 0)
    except ValueError:
        return
    end = time.monotonic() + delay
    while time.monotonic() < end and state.interrupting() is None:
        time.sleep(0.02)


# --------------------------------------------------------------------------- classification


def _describe(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _disk_full(path: Path) -> bool:
    """No block left for unprivileged writers on a real file system (/proc has no blocks at all)."""
    with contextlib.suppress(OSError):
        st = os.statvfs(path)
        return st.f_blocks > 0 and st.f_bavail == 0
    return False


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def classify_write_error(exc: BaseException, path: Path) -> SvqcastError | None:
    """One-line error for a failed write (disk full, permission, read-only), else None.

    Some writers hide ENOSPC behind their own text ("NetCDF: HDF error"), so a full file
    system is also recognised from its free space.
    """
    if isinstance(exc, SvqcastError) or not isinstance(exc, Exception):
        return None
    code = getattr(exc, "errno", None)
    # HDF5 reports a file it cannot create on a full disk as EACCES: free space decides; third-party
    # serialisers (safetensors, torch.save, onnx) keep the errno only in their message text
    hidden = code is None or code in (errno.EACCES, errno.EPERM)
    said = code is None and any(t in str(exc) for t in (os.strerror(errno.ENOSPC), "os error 28", "Errno 28"))
    if code in (errno.ENOSPC, errno.EDQUOT) or said or (hidden and _disk_full(_existing_parent(path))):
        return SvqcastError(f"disk full at {path}; free some space (or choose another place) and run again")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = os.strerror(code).lower()
        return UsageError(f"cannot write {path}: {reason}; choose an output in a writable directory")
    if isinstance(exc, OSError) and code is not None:
        return SvqcastError(f"cannot write {path}: {os.strerror(code).lower()}")
    return None


def _existing_kind(path: Path) -> tuple[Path, int | None]:
    """(resolved path, st_mode or None when nothing is there); a dangling symlink is refused."""
    resolved = Path(os.path.realpath(path))
    if os.path.lexists(path) and not resolved.exists():
        raise UsageError(f"output {path} is a symlink to nothing ({resolved}); remove it or choose another path")
    try:
        return resolved, os.stat(resolved).st_mode
    except FileNotFoundError:
        return resolved, None
    except OSError as exc:
        raise UsageError(f"cannot use output {path}: {exc.strerror}") from None


def _is_devnull(resolved: Path) -> bool:
    return resolved == DEVNULL


def _probe_writable(directory: Path, target: Path) -> None:
    """Create and remove a temp file: the one test that also catches /proc and read-only mounts
    (os.access answers yes to root almost everywhere)."""
    try:
        with deferred_signals():  # a Ctrl-C between create and unlink must not strand the probe
            fd, probe = tempfile.mkstemp(prefix=".svqcast-probe.", dir=directory)
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        err = classify_write_error(exc, target)
        if not isinstance(err, SvqcastError) or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            err = UsageError(f"cannot write {target}: {reason} in {directory}; choose another output location")
        raise err from None


def check_input(path: str | os.PathLike[str], what: str = "input") -> Path:
    """Refuse a FIFO, device or socket as input (exit 2): reading one blocks or never ends.
    `/dev/null` is refused too (it reads as an empty file). Missing paths and directories pass
    (the reader names what is wrong with them)."""
    path = Path(path)
    with contextlib.suppress(OSError):
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UsageError(f"{what} {path} is {_describe(mode)}, not a regular file; give the file itself")
    return path


def _refuse_inputs(resolved: Path, inputs: Iterable[Any], target: Path, kind: str) -> None:
    for item in inputs:
        if item is None or not str(item) or "://" in str(item):
            continue
        src = Path(os.path.realpath(item))
        same = src == resolved or (src.exists() and resolved.exists() and os.path.samefile(src, resolved))
        inside = kind == "dir" and resolved in src.parents
        if same or inside:
            raise UsageError(f"output {target} would overwrite the input {item}; choose another output path")


def check_output(
    target: str | os.PathLike[str],
    *,
    overwrite: bool,
    inputs: Iterable[Any] = (),
    kind: str = "file",
) -> Path:
    """Refuse, before any compute, an output that cannot or must not be written (exit 2).

    `kind` is "file" or "dir" (what the command writes there). Existing entries of the other
    kind and special files are never replaced; `/dev/null` is accepted as "discard" for files.
    Returns `target` as a Path.
    """
    target = Path(target)
    resolved, mode = _existing_kind(target)
    if kind == "file" and _is_devnull(resolved):
        return target
    if mode is not None:
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UsageError(f"output {target} is {_describe(mode)}; svqcast only replaces regular files")
        wanted = stat.S_ISREG if kind == "file" else stat.S_ISDIR
        if not wanted(mode):
            hint = "give a file name inside it" if kind == "file" else "remove it or choose a directory name"
            raise UsageError(f"output {target} is {_describe(mode)}; {hint}")
        if not overwrite:
            raise OutputExistsError(f"output {target} already exists; pass `overwrite` to replace it")
    _refuse_inputs(resolved, inputs, target, kind)
    parent = resolved.parent
    while kind == "dir" and not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"output directory {target.parent} does not exist; create it first (mkdir -p {target.parent})")
    _probe_writable(parent, target)
    return target


# --------------------------------------------------------------------------- atomic writes


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries, and so do some writers (safetensors
    writes 0600); give every published file the mode an ordinary `open()` or `mkdir()` would
    have, so outputs are readable like any other file (executable bits are kept)."""
    mask = _umask()
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)
    if not directory:
        return
    for root, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                os.chmod(full, (0o777 if st.st_mode & 0o111 else 0o666) & ~mask)


def _fail(exc: BaseException, target: Path) -> None:
    """Re-raise a write failure as its one-line class when it has one."""
    err = classify_write_error(exc, target)
    if err is not None:
        raise err from None


def _resolve_file_target(target: Path, overwrite: bool) -> Path:
    resolved, mode = _existing_kind(target)
    if mode is None or _is_devnull(resolved):
        return resolved
    if not stat.S_ISREG(mode):
        raise UsageError(f"output {target} is {_describe(mode)}; svqcast only replaces regular files")
    if not overwrite:
        raise OutputExistsError(f"output {target} already exists; pass `overwrite` to replace it")
    return resolved


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, overwrite: bool = True, suffix: str = ".tmp"
) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it over `target` only on success.

    `suffix` ends the temp name, for writers that pick their format from it (".tmp.gif").
    An overwritten symlink is replaced by the new file: the file it named is never touched
    (it may be someone else's, or an input). A link to anything but a regular file is refused;
    `/dev/null` discards the output. Signals are deferred for the whole block and end it with
    `Interrupted` after the temp file is gone.
    """
    resolved = _resolve_file_target(Path(target), overwrite)
    discard = _is_devnull(resolved)
    if not discard and os.path.islink(target):
        resolved = Path(os.path.abspath(target))  # write in the link's place, not through it
    with deferred_signals() as state:
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{resolved.name}.", suffix=suffix,
                                       dir=None if discard else resolved.parent)
        except OSError as exc:
            _fail(exc, Path(target))
            raise
        os.close(fd)
        tmp_path = Path(tmp)
        try:
            yield tmp_path
            _linger(state)
            if not _finishing and (signum := state.interrupting()) is not None:
                raise Interrupted(signum, str(target))
            if discard:
                tmp_path.unlink(missing_ok=True)
                return
            if tmp_path.exists():
                _publish_mode(tmp_path, directory=False)
            os.replace(tmp_path, resolved)
        except BaseException as exc:
            tmp_path.unlink(missing_ok=True)
            _fail(exc, Path(target))
            raise


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _resolve_dir_target(target: Path, overwrite: bool) -> Path:
    resolved, mode = _existing_kind(target)
    if mode is None:
        return resolved
    if not stat.S_ISDIR(mode):
        raise UsageError(f"output {target} is {_describe(mode)}, not a directory; remove it or choose another name")
    if not overwrite:
        raise OutputExistsError(f"{target} already exists; pass `overwrite` to replace it")
    return resolved


def _swap_in(tmp: Path, resolved: Path) -> None:
    """Move the finished directory into place; the old one goes to a unique sibling that is
    removed at once, so no `.old` survives even when two writers race."""
    if not resolved.exists():
        os.replace(tmp, resolved)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{resolved.name}.", suffix=".old", dir=resolved.parent))
    os.replace(resolved, old / "x")
    try:
        os.replace(tmp, resolved)
    except BaseException:
        os.replace(old / "x", resolved)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a sibling temp dir and move it into place at the end.

    On any failure or signal the temp dir is removed, so a crashed or interrupted write leaves
    no partial output directory behind; an existing non-directory is never replaced.
    """
    target = Path(target)
    resolved = _resolve_dir_target(target, overwrite)
    with deferred_signals() as state:
        try:
            resolved.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{resolved.name}.", suffix=".tmp", dir=resolved.parent))
        except OSError as exc:
            _fail(exc, target)
            raise
        try:
            yield tmp
            _linger(state)
            if not _finishing and (signum := state.interrupting()) is not None:
                raise Interrupted(signum, str(target))
            _publish_mode(tmp, directory=True)
            _resolve_dir_target(target, overwrite)  # something may have appeared meanwhile
            _swap_in(tmp, resolved)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            _fail(exc, target)
            raise
