"""SIGINT and SIGTERM during the write phase of predict, convert, prepare and download (issue 12,
class 2): exit 130/143 within seconds, one stderr line, nothing left behind.

The test hook SVQCAST_TEST_SLOW_WRITE=SECONDS makes svqcast.fsutil linger inside the write phase
(after the temp file or folder exists, before it is renamed into place), so the signal lands
exactly where a real Ctrl-C used to deadlock HDF5 or leave a `.tmp` behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import xarray as xr
from _predict_fixtures import SAMPLE, make_tiny_checkpoint

WAIT_FOR_WRITE_S = 90.0  # start-up (torch import) and compute before the write phase
EXIT_WITHIN_S = 30.0  # a hang guard, not a timing assert: the exit takes well under a second when idle


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_convert import source_model, write_openstl

    a = tmp_path_factory.mktemp("signal-inputs")
    obs = xr.open_dataset(SAMPLE).load()
    obs.sel(time=slice("2019-03-28T00", "2019-03-29T00")).to_netcdf(a / "in.nc")
    make_tiny_checkpoint(a / "tiny", ds=obs)
    write_openstl(source_model("weatherbench-s-t2m_gsta_svq", "gsta"), a / "good.pth", "plain", "svq")
    with zipfile.ZipFile(a / "frames.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"kth/person01_walking_d1/image_{i:04d}.txt", f"frame {i}")
    return a


def _commands(a: Path, out: Path) -> dict[str, list[str]]:
    from test_convert import TINY

    convert = ["models", "convert", "openstl", str(a / "good.pth"), "--preset", "weatherbench-s-t2m_gsta_svq",
               "-o", str(out / "ck")]
    for item in TINY:
        convert += ["--set", item]
    return {
        "predict": ["predict", str(a / "in.nc"), "-o", str(out / "f.nc"), "--steps", "1", "--model", str(a / "tiny")],
        "convert": convert,
        "prepare": ["prepare", "era5-uk-t2m", "--root", str(out / "data")],
        "download": ["download", "kth", "--root", str(out / "data"), "--from", str(a / "frames.zip")],
    }


def _temp_entries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") and (".tmp" in p.name or ".extract" in p.name)]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["predict", "convert", "prepare", "download"])
def test_signal_in_the_write_phase(command: str, signum: int, code: int, inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, SVQCAST_TEST_SLOW_WRITE="60", SVQCAST_CACHE_DIR=str(tmp_path / "cache"),
               HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("SVQCAST_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-c", "from svqcast.cli.main import run; run()",
                             *_commands(inputs, out)[command]],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_FOR_WRITE_S
        while not _temp_entries(out):
            assert proc.poll() is None, f"{command} ended before writing: {proc.communicate()}"
            assert time.monotonic() < deadline, f"{command} never reached its write phase"
            time.sleep(0.05)
        sent = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=EXIT_WITHIN_S)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, (err, took)
    lines = err.strip().splitlines()  # progress lines (plain, not a terminal) may come first
    assert lines[-1].startswith("error: interrupted by") and "Traceback" not in err, err
    assert sum(line.startswith("error") for line in lines) == 1, err
    assert _temp_entries(out) == [], "a temp file or folder survived"
    assert _files(out) == [], f"{command} left files behind: {_files(out)}"


_SLEEPER = ("import time, sys; from svqcast.cli import main; "
            "main.app.command('sleep-test')(lambda: (print('ready', flush=True), time.sleep(30))); "
            "main.run(['sleep-test'])")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_outside_any_write_is_one_line_too(signum: int, code: int, tmp_path: Path) -> None:
    """Any command, any phase: Ctrl-C or a kill prints one line and exits 128 + signal."""
    proc = subprocess.Popen([sys.executable, "-c", _SLEEPER], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=EXIT_WITHIN_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code and err.strip().startswith("error: interrupted by") and "\n" not in err.strip()


def test_library_warnings_never_reach_stderr(tmp_path: Path) -> None:
    """Even with -W always, a third-party warning raised inside a command stays silent."""
    script = ("import warnings; from svqcast.cli import main; "
              "main.app.command('warn-test')(lambda: warnings.warn('SerializationWarning: library chatter')); "
              "main.run(['warn-test'])")
    res = subprocess.run([sys.executable, "-W", "always", "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stderr == "", res.stderr
