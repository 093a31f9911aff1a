"""Preparation past one process (issue: scale): the same store from every scheduler, parts in any
order then `--finalise`, a part killed mid-write, and the bad inputs of the parted build."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from svqcast.data.blocks import BlockResult, merge_stats, moments
from svqcast.data.dask_run import Scheduler
from svqcast.data.loading import get_split_dataset
from svqcast.data.store import open_split
from svqcast.data.userprep import prepare_path
from tests._cli import run_cli
from tests._own_data_files import dataset, six_hourly

FRAMES = 1200  # 8 x 16 cells: 64 frames a chunk, 256 a block -> 5 blocks


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six-hourly t2m with one land cell (NaN at every step: masked, exercising the missing scan)."""
    path = tmp_path_factory.mktemp("src") / "t2m.nc"
    ds = dataset(six_hourly(FRAMES), shape=(8, 16))
    ds["t2m"][:, 0, 0] = np.nan
    ds.to_netcdf(path)
    return path


def _digests(prepared: Path) -> dict[str, str]:
    files = json.loads((prepared / "manifest.json").read_text())["files"]
    return {k: v["sha256"] for k, v in files.items()}


@pytest.fixture(scope="module")
def single(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("single")
    return prepare_path(str(source), "t2m", root=root)


def test_store_is_one_chunked_zarr_with_splits_as_time_ranges(single: Path, source: Path) -> None:
    import xarray as xr
    import zarr

    assert {p.name for p in single.iterdir()} == {"store.zarr", "stats.json", "manifest.json"}
    data = zarr.open_array(str(single / "store.zarr" / "data"), mode="r")
    assert data.chunks == (64, 1, 8, 16) and data.shape == (FRAMES, 1, 8, 16)
    splits = zarr.open_group(str(single / "store.zarr"), mode="r").attrs["splits"]
    assert splits["train"][0] == 0 and splits["train"][1] == splits["val"][0] and splits["test"][1] == FRAMES
    with xr.open_dataset(source) as src, open_split(single, "val") as val:
        a, b = splits["val"]
        np.testing.assert_array_equal(val["data"].values[:, 0], src["t2m"].values[a:b])
        np.testing.assert_array_equal(val["time"].values, src["time"].values[a:b])
    # the statistics: float64 mean / std over the training range, land left out
    with xr.open_dataset(source) as src:
        train = src["t2m"].values[:splits["train"][1]].astype(np.float64)
    stats = json.loads((single / "stats.json").read_text())
    assert stats["mean"][0] == pytest.approx(np.nanmean(train), rel=1e-13)
    assert stats["std"][0] == pytest.approx(np.nanstd(train), rel=1e-12)
    assert stats["count_per_channel"] == int(np.isfinite(train).sum()) and stats["mask"]


def test_parallel_merge_equals_one_pass_in_float64() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(1e4, 3.0, (97, 2, 5, 7))  # a large mean: a naive sum of squares would lose digits
    values[3, 1, 2, 2] = np.nan
    pieces = [BlockResult(k, *(v.tolist() for v in moments(values[a:b])))
              for k, (a, b) in enumerate([(0, 10), (10, 11), (11, 60), (60, 97)])]
    mean, std, count = merge_stats(pieces[::-1])  # order of arrival does not matter
    np.testing.assert_allclose(mean, np.nanmean(values, axis=(0, 2, 3)), rtol=1e-15)
    np.testing.assert_allclose(std, np.nanstd(values, axis=(0, 2, 3)), rtol=1e-11)
    assert count == [97 * 35, 97 * 35 - 1]


def test_threads_and_a_two_worker_cluster_build_the_identical_store(source: Path, single: Path,
                                                                    tmp_path: Path) -> None:
    threads = prepare_path(str(source), "t2m", root=tmp_path / "threads", scheduler=Scheduler(kind="threads"))
    cluster = prepare_path(str(source), "t2m", root=tmp_path / "cluster", scheduler=Scheduler(workers=2))
    assert _digests(threads) == _digests(single)  # every chunk, the metadata and stats.json: same bytes
    assert _digests(cluster) == _digests(single)


def test_parts_in_any_order_then_finalise_equal_one_run(source: Path, single: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    for part in ("2/3", "3/3", "1/3"):
        code, out, err = run_cli(["prepare", source, "--name", "t2m", "--root", root, "--parts", part], capsys)
        assert code == 0, err
        assert f"part {part} written" in out
    assert not (root / "t2m" / "prepared").exists()  # nothing usable before the finalise
    code, _out, err = run_cli(["prepare", "--finalise", "t2m", "--root", root, "--format", "json"], capsys)
    assert code == 0, err
    assert _digests(root / "t2m" / "prepared") == _digests(single)
    assert not (root / "t2m" / "parts").exists()
    ds = get_split_dataset("t2m", "train", root=root)  # registered: usable like any dataset
    assert len(ds) > 0 and np.isfinite(ds[0][0].numpy()).all()


_SLOW_WRITES = """
import sys, time
import svqcast.data.blocks as blocks
original = blocks.write_frames
def slow(*args):
    time.sleep(0.4)
    return original(*args)
blocks.write_frames = slow
from svqcast.cli import main
main.run(sys.argv[1:])
"""


def test_a_part_killed_mid_write_leaves_nothing_and_a_rerun_completes(source: Path, single: Path,
                                                                      tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    parts = root / "t2m" / "parts"
    args = ["prepare", str(source), "--name", "t2m", "--root", str(root), "--parts", "1/2"]
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITES, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(parts.glob(".part-0001-of-0002.*/store.zarr/data/c")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the part is writing its chunks into its temporary directory
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)  # what a batch system sends at the time limit
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert not parts.exists() or not any(parts.iterdir())  # no partial part, no temporary leftovers
    for part in ("1/2", "2/2"):  # the rerun of the killed part completes it
        code, _out, err = run_cli(["prepare", source, "--name", "t2m", "--root", root, "--parts", part], capsys)
        assert code == 0, err
    code, _out, err = run_cli(["prepare", "--finalise", "t2m", "--root", root], capsys)
    assert code == 0, err
    assert _digests(root / "t2m" / "prepared") == _digests(single)


@pytest.mark.parametrize("parts", ["0/3", "4/3", "1/0", "two/3"])
def test_bad_part_numbers_are_one_line_usage_errors(source: Path, tmp_path: Path, parts: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    code, _out, err = run_cli(["prepare", source, "--name", "t2m", "--root", root, "--parts", parts], capsys)
    assert code == 2 and "--parts" in err and len(err.strip().splitlines()) == 1, err
    assert not root.exists()


def test_finalise_names_the_missing_part_and_refuses_mixed_options(source: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    base = ["prepare", source, "--name", "t2m", "--root", root]
    assert run_cli([*base, "--parts", "1/3"], capsys)[0] == 0
    assert run_cli([*base, "--parts", "3/3"], capsys)[0] == 0
    code, _out, err = run_cli(["prepare", "--finalise", "t2m", "--root", root], capsys)
    assert code == 3 and "part 2/3 missing" in err and len(err.strip().splitlines()) == 1, err
    assert not (root / "t2m" / "prepared").exists()
    # part 2 with other splits: a different store layout, refused before anything is written
    code, _out, err = run_cli([*base, "--parts", "2/3", "--split", "train=2001-01-01:2001-06-30",
                               "--split", "val=2001-07-01:2001-08-31", "--split", "test=2001-09-01:2001-10-27"], capsys)
    assert code == 2 and "differs from part" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (root / "t2m" / "parts").iterdir()) == ["part-0001-of-0003", "part-0003-of-0003"]
    code, _out, err = run_cli(["prepare", "--finalise", "nothing", "--root", root], capsys)
    assert code == 3 and "no parts to finalise" in err


def test_an_unreachable_scheduler_is_exit_4_within_seconds(source: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "root"
    t0 = time.monotonic()
    code, _out, err = run_cli(["prepare", source, "--name", "t2m", "--root", root,
                               "--scheduler", f"tcp://127.0.0.1:{port}"], capsys)
    assert code == 4 and f"127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - t0 < 20
    assert not (root / "t2m").exists()


def test_a_store_of_the_previous_format_is_refused_with_the_rebuild_command(single: Path, tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(single.parent.parent, root)
    manifest = json.loads((root / "t2m" / "prepared" / "manifest.json").read_text())
    manifest["store_version"] = 1
    (root / "t2m" / "prepared" / "manifest.json").write_text(json.dumps(manifest))
    code, _out, err = run_cli(["datasets", "info", "t2m", "--root", root, "--verify"], capsys)
    assert code == 3 and "store format 1" in err and "svqcast prepare PATH --name t2m --force" in err, err


def test_a_catalog_dataset_in_parts_and_on_a_cluster_equals_one_run(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The same mechanisms for a catalog builder (the embedded ERA5 sample): its reader travels to
    dask workers, and its parts finalise into the store of one run."""
    from svqcast.data.prepare import prepare

    one = prepare("era5-uk-t2m", tmp_path / "one")
    cluster = prepare("era5-uk-t2m", tmp_path / "cluster", scheduler=Scheduler(workers=2))
    assert _digests(cluster) == _digests(one)
    root = tmp_path / "parts"
    for part in ("2/2", "1/2"):
        code, _out, err = run_cli(["prepare", "era5-uk-t2m", "--root", root, "--parts", part], capsys)
        assert code == 0, err
    code, _out, err = run_cli(["prepare", "--finalise", "era5-uk-t2m", "--root", root], capsys)
    assert code == 0, err
    assert _digests(root / "era5-uk-t2m" / "prepared") == _digests(one)
    assert len(get_split_dataset("era5-uk-t2m", "test", root=root)) == len(
        get_split_dataset("era5-uk-t2m", "test", root=tmp_path / "one")) > 0


def test_window_reads_through_the_chunk_cache_equal_direct_reads(single: Path) -> None:
    import pickle

    import zarr

    from svqcast.data.store import Frames, read_meta

    meta = read_meta(single / "store.zarr", "val")
    frames = Frames(single / "store.zarr", meta.start, meta.stop)
    direct = np.asarray(zarr.open_array(str(single / "store.zarr" / "data"), mode="r")[meta.start:meta.stop])
    rng = np.random.default_rng(1)
    for a in [*rng.integers(0, len(frames) - 40, 30), 62, 63, 64, 127]:  # across chunk boundaries too
        window = np.arange(a, a + 37)
        np.testing.assert_array_equal(frames.read(window), direct[window])
        np.testing.assert_array_equal(frames.read(window[::4]), direct[window[::4]])
    assert frames._cache and "_cache" not in pickle.loads(pickle.dumps(frames)).__dict__
    np.testing.assert_array_equal(frames.read_range(0, len(frames)), direct)  # a long read bypasses it


def test_a_damaged_part_record_is_one_line(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert run_cli(["prepare", source, "--name", "t2m", "--root", root, "--parts", "1/1"], capsys)[0] == 0
    record = root / "t2m" / "parts" / "part-0001-of-0001" / "part.json"
    raw = json.loads(record.read_text())
    del raw["blocks"][0]["m2"]
    record.write_text(json.dumps(raw))
    code, _out, err = run_cli(["prepare", "--finalise", "t2m", "--root", root], capsys)
    assert code == 3 and "part.json is damaged" in err and len(err.strip().splitlines()) == 1, err
    assert not (root / "t2m" / "prepared").exists()


def test_blocks_follow_the_inputs_own_chunking_when_it_is_known(tmp_path: Path) -> None:
    from svqcast.data.blocks import plan_blocks
    from svqcast.sources.opener import open_source

    assert [b.stop - b.start for b in plan_blocks(200, 8, 32)][:2] == [32, 32]
    assert [b.stop - b.start for b in plan_blocks(200, 8, 32, align=64)] == [64, 64, 64, 8]
    assert [b.stop - b.start for b in plan_blocks(200, 8, 32, align=16)][:2] == [32, 32]  # already whole
    assert [b.stop - b.start for b in plan_blocks(200, 8, 32, align=1000)][:2] == [32, 32]  # too long to follow
    ds = dataset(six_hourly(300), shape=(8, 16))
    ds.to_netcdf(tmp_path / "chunked.nc", encoding={"t2m": {"chunksizes": (50, 8, 16)}})
    assert open_source(str(tmp_path / "chunked.nc")).frames.time_chunk == 50
    ds.to_netcdf(tmp_path / "plain.nc")
    assert open_source(str(tmp_path / "plain.nc")).frames.time_chunk is None


@pytest.mark.parametrize(("extra", "needle"), [
    (["--workers", "0"], "--workers"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    (["--scheduler", "ftp://host:21"], "dask scheduler address"),
    (["--finalise", "t2m"], "--finalise NAME merges parts"),
])
def test_bad_scale_options_are_one_line_and_leave_nothing(source: Path, tmp_path: Path, extra: list[str],
                                                          needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    before = source.read_bytes()
    code, _out, err = run_cli(["prepare", source, "--name", "t2m", "--root", root, *extra], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not root.exists() and source.read_bytes() == before
