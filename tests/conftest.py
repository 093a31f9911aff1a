"""Suite-wide settings and the one place that finds the optional shared real-data samples.

One intra-op thread per process: on a shared 2-core machine (CI, a laptop running other
work) two OpenMP threads can stall each other by orders of magnitude, and the tiny tensors
of the unit tests gain nothing from a second thread. The environment variable reaches the
CLI subprocesses that end-to-end tests start.

Optional shared samples. Everything the suite needs lives in the repository (``tests/data``
and the shipped samples in ``svqcast/data/samples``). A few tests additionally check the
full-size real files that those small copies were cut from; they live outside the
repository, in a directory holding ``data/`` (and ``reference/``). It is found as

1. the environment variable ``SVQCAST_TEST_SHARED`` naming that directory (the value
   ``none`` forces its absence, to check that a plain clone passes), else
2. a folder ``shared`` beside the repository checkout, if it exists.

Tests that need it carry ``@pytest.mark.needs_shared`` or take the ``shared_data``
fixture; without it they skip with :data:`SHARED_REASON`, and the end of the run says how
many did.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# Every test runs on temporary roots, set before svqcast is imported: prepared datasets, the model
# cache, the Hugging Face cache and matplotlib's font cache never touch the user's real ones
# (~/.local/share/svqcast, ~/.cache), and `pytest_sessionfinish` checks that they did not.
_SANDBOX = Path(tempfile.mkdtemp(prefix="svqcast-tests-"))
for _var, _sub in {"SVQCAST_DATA_DIR": "data", "SVQCAST_CACHE_DIR": "cache", "HF_HOME": "hf-home",
                   "MPLCONFIGDIR": "matplotlib", "XDG_CACHE_HOME": "xdg-cache"}.items():
    os.environ[_var] = str(_SANDBOX / _sub)
REAL_ROOTS = (Path.home() / ".local" / "share" / "svqcast", Path.home() / ".cache")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

SHARED_ENV = "SVQCAST_TEST_SHARED"
TESTS_DIR = Path(__file__).resolve().parent
SHARED_REASON = (
    f"needs the shared real-data samples: set {SHARED_ENV}=<dir holding data/> "
    "or place the shared folder beside the repository"
)
_SHARED_KEY = pytest.StashKey["Path | None"]()


def locate_shared() -> Path | None:
    """The directory holding the shared ``data/`` folder, or None when there is none.

    An explicit ``SVQCAST_TEST_SHARED`` that names no such directory is a mistake worth
    stopping for (a typo would otherwise silently skip tests), hence the UsageError."""
    value = os.environ.get(SHARED_ENV, "").strip()
    if value.lower() == "none":
        return None
    if value:
        root = Path(value).expanduser().resolve()
        if not (root / "data").is_dir():
            raise pytest.UsageError(f"{SHARED_ENV}={value} has no data/ folder; point it at the shared "
                                    f"directory or set {SHARED_ENV}=none")
        return root
    beside = TESTS_DIR.parent.parent / "shared"
    return beside if (beside / "data").is_dir() else None


_ROOTS_KEY = pytest.StashKey["dict[str, tuple[int, int]]"]()


def _snapshot() -> dict[str, tuple[int, int]]:
    """Every file and folder under the user's real roots, with its size and mtime."""
    out: dict[str, tuple[int, int]] = {}
    for root in REAL_ROOTS:
        for p in [root, *root.rglob("*")] if root.exists() else []:
            try:
                st = p.lstat()
            except OSError:
                continue
            out[str(p)] = (st.st_size, st.st_mtime_ns)
    return out


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"needs_shared: {SHARED_REASON} (skipped otherwise)")
    config.stash[_SHARED_KEY] = locate_shared()
    config.stash[_ROOTS_KEY] = _snapshot()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any test wrote into the user's real data root or caches."""
    before = session.config.stash.get(_ROOTS_KEY, None)
    shutil.rmtree(_SANDBOX, ignore_errors=True)
    if before is None:
        return
    after = _snapshot()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if changed:
        session.config.stash[_ROOTS_KEY] = {}
        print(f"\nthe tests changed the user's real roots ({len(changed)} entries, first: {changed[:3]})")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _shared_root(config: pytest.Config) -> Path | None:
    return config.stash.get(_SHARED_KEY, None)


def pytest_report_header(config: pytest.Config) -> str:
    root = _shared_root(config)
    return f"shared samples: {root}" if root else f"shared samples: not found ({SHARED_ENV} unset or none)"


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_shared") and _shared_root(item.config) is None:
        pytest.skip(SHARED_REASON)


@pytest.fixture(scope="session")
def shared_data(pytestconfig: pytest.Config) -> Path:
    """The shared ``data/`` directory; the test skips (visibly, counted) without it."""
    root = _shared_root(pytestconfig)
    if root is None:
        pytest.skip(SHARED_REASON)
    return root / "data"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """Say how many tests the absence of the shared samples skipped, so it is never silent."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if SHARED_REASON in str(r.longrepr)]
    if skipped:
        terminalreporter.write_sep("-", f"{len(skipped)} skipped: {SHARED_REASON}", yellow=True)
    elif _shared_root(config) is not None:
        terminalreporter.write_line(f"shared samples: {_shared_root(config)} (tests that need them ran)")
