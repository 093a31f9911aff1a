"""`svqcast prepare PATH --name NAME` on bad input: one line, exit 2 or 3, nothing left behind.

Each case writes a file that is wrong in one way, runs `prepare` through the CLI on a fresh
data root and checks the exit code, the single stderr line (it names the problem) and that
neither the user catalog nor any dataset folder was created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import _own_data_files as files
import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import cli

from tests._stores import data_chunks


def _no_time(p: Path) -> list[str]:
    xr.Dataset({"t2m": (("lat", "lon"), np.zeros((6, 8), "f4"))}).to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]


def _shuffled(p: Path) -> list[str]:
    t = files.six_hourly(80)
    t[[10, 11]] = t[[11, 10]]
    files.dataset(t).to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]


def _duplicated(p: Path) -> list[str]:
    t = files.six_hourly(80)
    t[20] = t[19]
    files.dataset(t).to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]


def _gap(p: Path) -> list[str]:
    t = np.delete(files.six_hourly(80), 30)
    files.dataset(t).to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]


def _short(p: Path) -> list[str]:
    files.dataset(files.six_hourly(40)).to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]  # default 12 -> 12: val holds 6 steps, a window needs 24


def _short_split(p: Path) -> list[str]:
    files.dataset(files.six_hourly(200)).to_netcdf(p / "in.nc")
    return [str(p / "in.nc"), "--t-in", "4", "--t-out", "4", "--split", "train=2001-01-01:2001-02-10",
            "--split", "val=2001-02-11:2001-02-11", "--split", "test=2001-02-12:2001-02-20"]


def _missing_variable(p: Path) -> list[str]:
    files.dataset(files.six_hourly(80)).to_netcdf(p / "in.nc")
    return [str(p / "in.nc"), "--variables", "msl"]


def _unsupported(p: Path) -> list[str]:
    (p / "in.xyz").write_bytes(b"\x00" * 100)
    return [str(p / "in.xyz")]


def _unitless_time(p: Path) -> list[str]:
    ds = files.dataset(files.six_hourly(80)).assign_coords(time=np.arange(80.0))
    ds.to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]


def _truncated(p: Path) -> list[str]:
    files.dataset(files.six_hourly(80)).to_netcdf(p / "full.nc")
    (p / "in.nc").write_bytes((p / "full.nc").read_bytes()[:2000])
    return [str(p / "in.nc")]


def _fill_values(p: Path) -> list[str]:
    ds = files.dataset(files.six_hourly(80))
    ds["t2m"][40, 2, 3] = np.nan
    ds.to_netcdf(p / "in.nc")
    return [str(p / "in.nc"), "--t-in", "4", "--t-out", "4"]


def _levels(p: Path) -> list[str]:
    t = files.six_hourly(80)
    ds = xr.Dataset({"t": (("time", "level", "lat", "lon"), np.zeros((80, 3, 6, 8), "f4"))},
                    coords={"time": t, "level": [500, 850, 1000], "lat": np.arange(6.0), "lon": np.arange(8.0)})
    ds.to_netcdf(p / "in.nc")
    return [str(p / "in.nc")]


def _wrong_level(p: Path) -> list[str]:
    return [*_levels(p), "--level", "700"]


def _bad_frames(p: Path) -> list[str]:
    np.save(p / "in.npy", np.zeros((20, 8), np.uint8))
    return [str(p / "in.npy")]


def _unreachable(p: Path) -> list[str]:
    return ["http://127.0.0.1:1/store.zarr"]


def _fifo(p: Path) -> list[str]:
    import os

    os.mkfifo(p / "pipe.nc")
    return [str(p / "pipe.nc")]


CASES: list[tuple[str, Callable[[Path], list[str]], int, str]] = [
    ("no time dimension", _no_time, 3, "no time dimension"),
    ("non-monotonic time", _shuffled, 3, "not increasing"),
    ("duplicated time", _duplicated, 3, "2001-01-05T18:00:00 appears more than once"),
    ("gap named", _gap, 3, "2001-01-08T12:00:00 is missing"),
    ("too few steps for a window", _short, 3, "split 'val' has 6 time steps but one window needs 24"),
    ("too few steps in a given split", _short_split, 3, "split 'val' has 4 time steps but one window needs 8"),
    ("missing variable names the others", _missing_variable, 3, "msl not found (available: t2m)"),
    ("unsupported format", _unsupported, 2, "unsupported format '.xyz'"),
    ("numeric time without units", _unitless_time, 3, "numeric without date units"),
    ("truncated file", _truncated, 3, "cannot read as netcdf"),
    ("missing values", _fill_values, 3, "is missing at 2001-01-11T00:00:00"),
    ("several levels need --levels", _levels, 2, "has 3 levels (500, 850, 1000); choose them with --levels"),
    ("a level that is not there", _wrong_level, 3, "level 700 is not in 't' (levels: 500, 850, 1000)"),
    ("frames of the wrong rank", _bad_frames, 3, "expected (T, H, W) or (T, H, W, C)"),
    ("unreachable zarr URL", _unreachable, 4, "unreachable while opening"),
    ("a FIFO is not read", _fifo, 2, "FIFO"),
]


@pytest.mark.parametrize("make,code,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys,
                                                  make: Callable[[Path], list[str]], code: int, message: str) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(root))
    src = tmp_path / "src"
    src.mkdir()
    args = make(src)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    got, _, err = cli(["prepare", *args[:1], "--name", "mine", *args[1:]], capsys)
    assert got == code, err
    errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.strip().endswith(errors[0]) and "Traceback" not in err
    assert message in errors[0]
    assert not root.exists()  # neither the user catalog nor a dataset folder
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # input untouched, no .idx


def test_existing_name_needs_force_and_the_catalog_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(root))
    files.dataset(files.six_hourly(80)).to_netcdf(tmp_path / "a.nc")
    args = ["prepare", str(tmp_path / "a.nc"), "--name", "mine", "--t-in", "4", "--t-out", "4"]
    assert cli(args, capsys)[0] == 0
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, _, err = cli(args, capsys)
    assert code == 2 and "already exists" in err and "--force" in err
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot
    code, _, err = cli(["prepare", str(tmp_path / "a.nc"), "--name", "era5-uk-t2m"], capsys)
    assert code == 2 and "catalog dataset" in err
    code, _, err = cli([*args, "--force", "--t-in", "2"], capsys)
    assert code == 0, err


def test_tampered_store_is_refused_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Issue 12 class 5: a rewritten split or stats.json is caught when the store is opened."""
    from svqcast.data import get_split_dataset
    from svqcast.errors import DataError

    root = tmp_path / "root"
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(root))
    files.dataset(files.six_hourly(80)).to_netcdf(tmp_path / "a.nc")
    assert cli(["prepare", str(tmp_path / "a.nc"), "--name", "mine", "--t-in", "4", "--t-out", "4"], capsys)[0] == 0
    store = root / "mine" / "prepared"
    assert len(get_split_dataset("mine", "test")) > 0
    stats = (store / "stats.json").read_text()
    (store / "stats.json").write_text(stats.replace('"mean": [', '"mean": [1').replace(" ", "", 1))
    with pytest.raises(DataError, match=r"stats.json: .*re-run `svqcast prepare PATH --name mine --force`"):
        get_split_dataset("mine", "train", verify=True)
    (store / "stats.json").write_text(stats)
    chunks = data_chunks(store)
    last, first = chunks[-1], chunks[0]  # test frames, train frames
    good = last.read_bytes()
    data = bytearray(good)
    data[-10] ^= 0xFF  # same size, one flipped byte: the sha256 (small store) catches it
    last.write_bytes(bytes(data))
    rel = last.relative_to(store).as_posix()
    with pytest.raises(DataError, match=f"{rel}: sha256 does not match"):
        get_split_dataset("mine", "test")
    code, _, err = cli(["datasets", "info", "mine", "--verify"], capsys)
    assert code == 3 and f"{rel}: sha256 does not match" in err and "--force" in err
    last.write_bytes(good)
    first.write_bytes(first.read_bytes()[:-1])  # sizes are checked on every open
    with pytest.raises(DataError, match=f"{first.relative_to(store).as_posix()}: size .* differs from the manifest"):
        get_split_dataset("mine", "val")
    (store / "manifest.json").unlink()
    with pytest.raises(DataError, match="store in .* is missing"):
        get_split_dataset("mine", "test")


@pytest.mark.parametrize("signum,code", [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_prepare_leaves_nothing(tmp_path: Path, signum: int, code: int) -> None:
    """A signal during the write phase (held there by the SVQCAST_TEST_SLOW_WRITE hook): exit
    130/143 with one line, no store, no catalog entry, not even the data root it created."""
    import os
    import signal
    import subprocess
    import sys
    import time

    np.save(tmp_path / "frames.npy", files.frames_uint8())
    root = tmp_path / "root"
    env = {**os.environ, "SVQCAST_TEST_SLOW_WRITE": "60", "SVQCAST_DATA_DIR": str(root)}
    cmd = [sys.executable, "-c", "from svqcast.cli.main import run; run()", "prepare", str(tmp_path / "frames.npy"),
           "--name", "mine", "--t-in", "4", "--t-out", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (root.exists() and any(root.rglob("*.tmp"))) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("error: interrupted by") and "Traceback" not in err.decode()
    assert not root.exists()
