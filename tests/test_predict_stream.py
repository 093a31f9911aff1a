"""`svqcast predict --init-times`: streamed region writes, resume after a kill, torchrun ranks,
scores while forecasting (issue 26, item 3). The bundled zoo model on the bundled March 2019
sample: a real model and a real input, small enough for a few seconds per run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests._cli import run_cli
from tests._predict_fixtures import SAMPLE

SVQCAST = Path(sys.executable).with_name("svqcast")
RANGE = "2019-03-02T00:2019-03-04T06:3h"  # 19 initialisations: 10 regions of 2, the last one short


def _open(path: Path) -> Any:
    import xarray as xr

    return xr.open_zarr(path).load()


def _same_store(a: Path, b: Path) -> None:
    """Values and coordinates identical, attributes too but for the history's time stamp."""
    da, db = _open(a), _open(b)
    assert sorted(map(str, da.variables)) == sorted(map(str, db.variables))
    for name in da.variables:
        assert np.array_equal(da[name].values, db[name].values), name
    drop = {"history"}
    assert {k: v for k, v in da.attrs.items() if k not in drop} == {k: v for k, v in db.attrs.items() if k not in drop}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}


def test_init_times_parsing() -> None:
    from svqcast.errors import UsageError
    from svqcast.forecast.stream import parse_init_times

    assert parse_init_times("2019-03-02T00:00:2019-03-02T12:00:6h") == [
        "2019-03-02T00:00:00", "2019-03-02T06:00:00", "2019-03-02T12:00:00"]
    assert len(parse_init_times("2019-03-02:2019-03-05:1d")) == 4
    assert parse_init_times("2019-03-02T00, 2019-03-03T00") == ["2019-03-02T00", "2019-03-03T00"]
    assert parse_init_times("30:40:5") == ["30", "35", "40"]
    for bad in ("2019-03-02T00:2019-03-02T12:0h", "2019-03-02:2019-03-05:xyz"):
        with pytest.raises(UsageError):
            parse_init_times(bad)


def test_end_before_start_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "f.zarr"
    code, stdout, err = run_cli(["predict", SAMPLE, "-o", out, "--init-times", "2019-03-05T00:2019-03-02T00:6h"],
                                capsys)
    assert code == 2 and "--init-times" in err and "end is before the start" in err
    assert len(err.strip().splitlines()) == 1 and not list(tmp_path.iterdir())


def test_refusals_before_compute(tmp_path: Path, capsys: Any) -> None:
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "f.nc", "--init-times", RANGE], capsys)
    assert code == 2 and "zarr" in err
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "f.zarr", "--init-times", RANGE,
                            "--init-time", "2019-03-02T00"], capsys)
    assert code == 2 and "not both" in err
    # the first initialisation without 24 h of input history is named, before anything is written
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "f.zarr", "--init-times",
                            "2019-03-01T12:2019-03-02T12:6h"], capsys)
    assert code == 3 and "2019-03-01T12:00:00" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "other.zarr").mkdir()
    code, _, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "other.zarr", "--init-times", RANGE], capsys)
    assert code == 2 and "not a store of this request" in err
    assert not list(tmp_path.glob("f.zarr*")) and not list((tmp_path / "other.zarr").iterdir())


def test_store_equals_one_shot_forecast_and_scores_equal_score(tmp_path: Path, capsys: Any) -> None:
    from svqcast.forecast.forecaster import load_model
    from svqcast.forecast.stream import parse_init_times
    from svqcast.verify.scoring import score_forecast

    out = tmp_path / "f.zarr"
    code, stdout, err = run_cli(["predict", SAMPLE, "-o", out, "--init-times", RANGE, "--batch-size", "2",
                                 "--score-against", SAMPLE, "--format", "json"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert (report["inits"], report["computed"], report["skipped"], report["regions"]) == (19, 19, 0, 10)
    assert report["forecasts_per_second"] > 0 and not (out / ".svqcast-regions").exists()
    ref = load_model(None).predict(str(SAMPLE), init_time=parse_init_times(RANGE))
    got = _open(out)
    for name in ("t2m", "time", "valid_time", "lead_time", "lat", "lon"):
        assert np.array_equal(ref[name].values, got[name].values), name
    expect = score_forecast(out, SAMPLE)
    rows, want = report["scores"]["variables"]["t2m"], expect["variables"]["t2m"]
    for a, b in zip(rows["per_lead"] + [rows["overall"]], want["per_lead"] + [want["overall"]], strict=True):
        for key in ("rmse", "mae", "bias"):
            assert abs(a[key] - b[key]) < 1e-10, key
        assert a["ci"]["rmse"] == pytest.approx(b["ci"]["rmse"], abs=1e-10) and a["n"] == b["n"]
    pers = rows["references"]["persistence"]["overall"]["rmse"]
    assert abs(pers - want["references"]["persistence"]["overall"]["rmse"]) < 1e-10
    code, _, err = run_cli(["score", out, "--truth", SAMPLE, "--format", "json"], capsys)
    assert code == 0, err
    # a rerun of the finished request computes nothing; another request is refused in one line
    code, stdout, _ = run_cli(["predict", SAMPLE, "-o", out, "--init-times", RANGE, "--batch-size", "2",
                               "--format", "json"], capsys)
    assert code == 0 and (json.loads(stdout)["computed"], json.loads(stdout)["skipped"]) == (0, 19)
    code, _, err = run_cli(["predict", SAMPLE, "-o", out, "--init-times", RANGE, "--batch-size", "2",
                            "--steps", "6"], capsys)
    assert code == 2 and "steps" in err and len(err.strip().splitlines()) == 1


def _cli(args: list[Any], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([str(SVQCAST), *map(str, args)], env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def test_killed_run_resumes_to_the_same_store(tmp_path: Path) -> None:
    from svqcast.api import predict_many

    args = ["predict", SAMPLE, "--init-times", RANGE, "--batch-size", "2", "--format", "json"]
    whole = _cli([*args, "-o", tmp_path / "whole.zarr"])
    killed = _cli([*args, "-o", tmp_path / "part.zarr"])
    marker = tmp_path / "part.zarr" / ".svqcast-regions" / "region-000002.done"
    deadline = time.monotonic() + 120
    while not marker.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGINT)
    assert killed.wait(60) != 0, "the run finished before it could be interrupted"
    assert whole.wait(120) == 0, whole.stderr.read() if whole.stderr else ""
    done = len(list((tmp_path / "part.zarr" / ".svqcast-regions").glob("region-*.done")))
    assert 3 <= done < 10
    report = predict_many(SAMPLE, tmp_path / "part.zarr", RANGE, batch_size=2, history="")
    assert report["skipped"] >= 6 and report["computed"] + report["skipped"] == 19
    assert report["computed"] == 19 - 2 * done  # finished regions are never computed again
    _same_store(tmp_path / "part.zarr", tmp_path / "whole.zarr")


def test_two_torchrun_ranks_write_the_store_of_one_process(tmp_path: Path) -> None:
    args = ["predict", SAMPLE, "--init-times", RANGE, "--batch-size", "2", "--format", "json",
            "--score-against", SAMPLE]
    one = subprocess.run([str(SVQCAST), *map(str, args), "-o", tmp_path / "one.zarr"], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(SVQCAST), *map(str, args), "-o", tmp_path / "two.zarr"], env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr
    _same_store(tmp_path / "one.zarr", tmp_path / "two.zarr")
    a, b = json.loads(one.stdout), json.loads(two.stdout)  # only rank 0 reports
    assert (b["ranks"], b["computed"]) == (2, 19)
    assert a["scores"]["variables"]["t2m"]["overall"] == b["scores"]["variables"]["t2m"]["overall"]


def test_a_truth_without_the_forecast_variable_leaves_no_store(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    with xr.open_dataset(SAMPLE) as ds:
        ds.rename({"t2m": "sst"}).to_netcdf(tmp_path / "other.nc")
    code, _out, err = run_cli(["predict", SAMPLE, "-o", tmp_path / "s.zarr", "--init-times", RANGE,
                               "--score-against", tmp_path / "other.nc"], capsys)
    assert code in (2, 3) and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.zarr").exists()
