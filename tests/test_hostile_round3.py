"""Hostile inputs against the surfaces the round-3 house rebuilt (readers, catalog, writers,
signals): one case per defect class, each asserting the exit code, one line, inputs unchanged
and nothing left behind. The concurrency cases run several processes for real."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

from svqcast.data.samples import SAMPLES_DIR
from svqcast.data.store import open_split
from svqcast.errors import Interrupted
from tests._stores import data_chunks

SVQCAST = str(Path(sys.executable).parent / "svqcast")
BUNDLED = Path(__file__).resolve().parents[1] / "svqcast" / "zoo" / "bundled" / "era5-uk-t2m_gsta_svq"


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _clip(path: Path, seed: int = 0, n: int = 40) -> Path:
    np.save(path, np.random.default_rng(seed).integers(0, 255, (n, 6, 5), dtype=np.uint8))
    return path


# ---------------------------------------------------------------- 3: literal paths with glob characters


def test_a_path_that_exists_is_used_literally(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    literal = _clip(tmp_path / "a[1].npy", seed=1)
    _clip(tmp_path / "a1.npy", seed=2)  # what the pattern a[1].npy would match
    code, out, err = run_cli(["prepare", literal, "--name", "lit", "--root", tmp_path / "root", "--t-in", "2",
                              "--t-out", "2", "--format", "json"], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "root" / "user-datasets.json").read_text())["datasets"]["lit"]
    (source,) = record["extra"]["source_files"]
    assert source.endswith("a[1].npy")
    digest = hashlib.sha256(literal.read_bytes()).hexdigest()
    assert record["extra"]["source_files"][source]["sha256"] == digest


# ---------------------------------------------------------------- 10: an output that contains its input


def test_export_onto_its_own_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(BUNDLED, run / "best")
    before = _tree(run)
    for target in (run / "best", run):
        code, _, err = run_cli(["models", "export", str(run), "--format", "pt2", "-o", target, "--overwrite"], capsys)
        assert code == 2 and "would overwrite the input" in err and _one_line(err)
        assert _tree(run) == before


def test_prepare_force_of_a_file_inside_the_store_it_replaces(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    args = ["--root", root, "--t-in", "2", "--t-out", "2"]
    assert run_cli(["prepare", _clip(tmp_path / "c.npy"), "--name", "c", *args], capsys)[0] == 0
    inside = _clip(root / "c" / "c2.npy", seed=3)
    before = _tree(root)
    code, _, err = run_cli(["prepare", inside, "--name", "c", "--force", *args], capsys)
    assert code == 2 and "would overwrite the input" in err and _one_line(err)
    assert _tree(root) == before


# ---------------------------------------------------------------- 11: concurrent prepares


def _spawn(args: list[object], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([SVQCAST, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def test_concurrent_prepares_of_different_names_all_land(tmp_path: Path) -> None:
    env = {**os.environ, "SVQCAST_DATA_DIR": str(tmp_path / "root")}
    procs = [_spawn(["prepare", _clip(tmp_path / f"c{i}.npy", seed=i), "--name", f"c{i}", "--t-in", "2",
                     "--t-out", "2"], env) for i in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in results), results
    names = json.loads((tmp_path / "root" / "user-datasets.json").read_text())["datasets"]
    assert sorted(names) == ["c0", "c1", "c2"]


def test_concurrent_prepares_of_one_name_keep_the_winner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "SVQCAST_DATA_DIR": str(tmp_path / "root")}
    procs = [_spawn(["prepare", _clip(tmp_path / f"s{i}.npy", seed=i), "--name", "same", "--t-in", "2",
                     "--t-out", "2"], env) for i in range(2)]
    results = sorted((p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs)
    (ok, _), (lost, err) = results
    assert ok == 0 and lost == 2 and "already exists" in err and "--force" in err
    assert err.strip().splitlines()[-1].startswith("error:")
    code, out, err = run_cli(["datasets", "info", "same", "--root", tmp_path / "root", "--format", "json"], capsys)
    assert code == 0, err
    from svqcast.data.storedir import verify

    verify(tmp_path / "root" / "same" / "prepared", deep=True)  # the winner's store is whole


# ---------------------------------------------------------------- 12: nothing outside the data root


def _catalog_with(root: Path, key: str, **fields: object) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "user-datasets.json").write_text(json.dumps({"format_version": 1, "datasets": {key: {
        "name": key, **fields}}}))


def test_a_catalog_key_that_leaves_the_root_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    _catalog_with(root, "../escaped")
    for argv in (["datasets", "info", "../escaped"], ["evaluate", "era5-uk-t2m_gsta_svq", "--dataset", "../escaped"]):
        code, _, err = run_cli([*argv, "--root", root], capsys)
        assert code in (2, 3) and _one_line(err), err
    assert not (tmp_path / "escaped").exists()
    code, _, err = run_cli(["datasets", "list", "--root", root], capsys)
    assert code == 0 and "skipped" in err and "malformed" in err  # one bad entry does not hide the rest


def test_a_manifest_naming_a_file_outside_the_store_is_refused(tmp_path: Path) -> None:
    from svqcast.data.storedir import verify
    from svqcast.errors import DataError

    store = tmp_path / "store"
    store.mkdir()
    (store / "manifest.json").write_text(json.dumps({"dataset": "x", "files": {"../../../etc/hostname": {
        "bytes": 1, "sha256": "0"}}}))
    with pytest.raises(DataError, match="not a file of the store"):
        verify(store)
    (store / "manifest.json").write_text(json.dumps({"dataset": "x", "files": {"train.nc": {"bytes": "12"}}}))
    with pytest.raises(DataError, match="wrong types"):
        verify(store)


def test_library_only_fields_in_a_user_entry_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    _catalog_with(root, "mine", sample_file="era5_uk_t2m_2019-03.nc", embedded=True)
    code, _, err = run_cli(["datasets", "info", "mine", "--root", root], capsys)
    assert code == 3 and "sample_file" in err and _one_line(err)


# ---------------------------------------------------------------- 14: signals are never swallowed


def test_interrupted_is_no_exception() -> None:
    assert issubclass(Interrupted, BaseException) and not issubclass(Interrupted, Exception)


def test_sigterm_inside_a_reader_that_catches_exceptions_exits_143(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    real_open = xr.open_dataset

    def terminated(path, *args, **kwargs):
        if str(path).endswith("truth.nc"):
            raise Interrupted(signal.SIGTERM)
        return real_open(path, *args, **kwargs)

    forecast = tmp_path / "f.nc"
    assert run_cli(["predict", SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", "-o", forecast, "--init-time",
                    "2019-03-29T00:00", "--lead-time", "3h"], capsys)[0] == 0
    shutil.copy(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", tmp_path / "truth.nc")
    monkeypatch.setattr(xr, "open_dataset", terminated)
    code, _, err = run_cli(["score", forecast, "--truth", tmp_path / "truth.nc", "--plot", tmp_path / "s.png"], capsys)
    assert code == 143 and "SIGTERM" in err and _one_line(err)
    assert not (tmp_path / "s.png").exists()


# ---------------------------------------------------------------- 16 and 18: classification


def test_a_deeply_nested_user_catalog_is_a_data_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "user-datasets.json").write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run_cli(["datasets", "list", "--root", root], capsys)
    assert code == 3 and "user-datasets.json" in err and "internal error" not in err and _one_line(err)


def test_a_user_catalog_that_is_a_directory_is_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    (root / "user-datasets.json").mkdir(parents=True)
    code, _, err = run_cli(["datasets", "list", "--root", root], capsys)
    assert code == 3 and "not a regular file" in err and _one_line(err)


def test_a_fifo_inside_an_input_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    from PIL import Image

    for i in range(6):
        Image.fromarray(np.full((8, 8), i * 10, dtype=np.uint8)).save(folder / f"{i:02d}.png")
    os.mkfifo(folder / "zz.png")
    code, _, err = run_cli(["prepare", folder, "--name", "f", "--root", tmp_path / "root"], capsys)
    assert code == 2 and "zz.png" in err and _one_line(err)
    assert not (tmp_path / "root" / "f").exists()


# ---------------------------------------------------------------- 13: servers that accept and never answer


class _SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never sends a byte (bounded: closes on exit)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.held: list[object] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def __enter__(self) -> _SilentServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        for conn in self.held:
            conn.close()  # type: ignore[attr-defined]
        self.sock.close()


def test_a_silent_zarr_server_fails_in_seconds(tmp_path: Path) -> None:
    import time

    env = {**os.environ, "SVQCAST_NETWORK_TIMEOUT": "2", "SVQCAST_DATA_DIR": str(tmp_path / "root")}
    with _SilentServer() as server:
        t0 = time.monotonic()
        proc = subprocess.run([SVQCAST, "prepare", f"http://127.0.0.1:{server.port}/store.zarr", "--name", "z"],
                              capture_output=True, text=True, env=env, timeout=120)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 4 and "no answer in time" in proc.stderr, proc.stderr
    assert elapsed < 60 and not (tmp_path / "root" / "z").exists()


def test_a_silent_hub_fails_push_in_seconds(tmp_path: Path) -> None:
    import time

    with _SilentServer() as server:
        env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.port}", "HF_TOKEN": "x"}
        t0 = time.monotonic()
        proc = subprocess.run([SVQCAST, "models", "push", str(BUNDLED), "--repo-id", "org/name"],
                              capture_output=True, text=True, env=env, timeout=120)
        elapsed = time.monotonic() - t0
    assert proc.returncode == 4 and "no answer within" in proc.stderr, proc.stderr
    assert elapsed < 30


def test_an_http_500_is_a_server_error_not_unreachable(tmp_path: Path) -> None:
    import http.server
    import threading

    class Failing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
            self.send_response(500)
            self.end_headers()

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "SVQCAST_DATA_DIR": str(tmp_path / "root")}
        proc = subprocess.run([SVQCAST, "prepare", f"http://127.0.0.1:{server.server_port}/s.zarr", "--name", "e"],
                              capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.shutdown()
    assert proc.returncode == 4 and "HTTP 500" in proc.stderr and "unreachable" not in proc.stderr, proc.stderr


# ---------------------------------------------------------------- 16 and 18: more classification


@pytest.mark.parametrize("repo", ["org/..", "org/.git", "org/a--b", "-org/name"])
def test_repo_ids_the_hub_would_refuse_are_usage_errors(repo: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["models", "push", str(BUNDLED), "--repo-id", repo], capsys)
    assert code == 2 and "ORG/NAME" in err and _one_line(err)


def test_an_empty_config_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.toml").write_text("\n")
    code, _, err = run_cli(["models", "describe", tmp_path / "empty.toml"], capsys)
    assert code == 2 and "is empty" in err and _one_line(err)


@pytest.mark.parametrize("array, words", [(np.zeros((0, 4, 4), np.uint8), "holds no values"),
                                          (np.full((40, 6, 5), 7.5, np.float32), "is constant")])
def test_frames_without_information_are_refused_at_prepare(array: np.ndarray, words: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", array)
    code, _, err = run_cli(["prepare", tmp_path / "x.npy", "--name", "x", "--root", tmp_path / "root", "--t-in", "2",
                            "--t-out", "2"], capsys)
    assert code == 3 and words in err and err.strip().splitlines()[-1].startswith("error:")  # after the notes
    assert not (tmp_path / "root").exists() or not any((tmp_path / "root").iterdir())


# ---------------------------------------------------------------- 1, 4, 8, 9: silent wrong numbers at the readers


def _field_file(path: Path, *, lat: np.ndarray | None = None, times: object = None, units: str = "K",
                attrs: dict | None = None, values: np.ndarray | None = None) -> Path:
    import pandas as pd
    import xarray as xr

    lat = np.linspace(40.0, 50.0, 4) if lat is None else lat
    times = pd.date_range("2020-01-01", periods=40, freq="h") if times is None else times
    data = 280.0 + np.random.default_rng(0).normal(size=(40, lat.size, 5)) if values is None else values
    xr.Dataset({"t2m": (("time", "lat", "lon"), data, {"units": units, **(attrs or {})})},
               coords={"time": times, "lat": lat, "lon": np.linspace(0.0, 8.0, 5)}).to_netcdf(path)
    return path


def _prepare_fails(path: Path, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    code, out, err = run_cli(["prepare", path, "--name", "bad", "--root", root, "--t-in", "2", "--t-out", "1"],
                             capsys)
    assert code == 3 and words in err and err.strip().splitlines()[-1].startswith("error:"), err
    assert out == "" and not (root / "bad").exists()


def test_dates_beyond_2261_are_refused_not_wrapped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cftime

    times = [cftime.DatetimeNoLeap(2300 + i, 1, 1) for i in range(40)]
    _prepare_fails(_field_file(tmp_path / "y2300.nc", times=times), "outside 1678..2261", tmp_path, capsys)


def test_pieces_in_different_units_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    folder = tmp_path / "pieces"
    folder.mkdir()
    _field_file(folder / "a.nc", times=pd.date_range("2020-01-01", periods=40, freq="h"))
    warm = 10.0 + np.random.default_rng(1).normal(size=(40, 4, 5))
    _field_file(folder / "b.nc", times=pd.date_range("2020-01-02T16", periods=40, freq="h"), units="degC",
                values=warm)
    _prepare_fails(folder, "convert the files to one unit", tmp_path, capsys)


def test_values_outside_the_declared_valid_range_are_missing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    values = 280.0 + np.random.default_rng(0).normal(size=(40, 4, 5))
    values[7, 1, 2] = 1e20
    path = _field_file(tmp_path / "vr.nc", values=values, attrs={"valid_max": 400.0, "valid_min": 150.0})
    _prepare_fails(path, "missing", tmp_path, capsys)


@pytest.mark.parametrize("lat, words", [(np.array([40.0, np.nan, 45.0, 50.0]), "missing (NaN)"),
                                        (np.array([80.0, 85.0, 90.0, 95.0]), "beyond +-90"),
                                        (np.array([40.0, 45.0, 45.0, 50.0]), "repeats a value"),
                                        (np.array([40.0, 50.0, 45.0, 55.0]), "not monotonic")])
def test_impossible_coordinates_are_refused_at_prepare(lat: np.ndarray, words: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _prepare_fails(_field_file(tmp_path / "grid.nc", lat=lat), words, tmp_path, capsys)


# ---------------------------------------------------------------- 7: evaluate on another dataset


def test_evaluate_on_another_dataset_uses_the_model_s_statistics(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    root = tmp_path / "root"
    sample = xr.open_dataset(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc")
    warm = sample.copy()
    warm["t2m"] = sample["t2m"] + 20.0
    warm["t2m"].attrs = sample["t2m"].attrs
    warm.to_netcdf(tmp_path / "warm.nc")
    sample.isel(lat=slice(0, 16)).to_netcdf(tmp_path / "half.nc")
    for name in ("warm", "half"):
        code, _, err = run_cli(["prepare", tmp_path / f"{name}.nc", "--name", name, "--root", root, "--t-in", "12",
                                "--t-out", "12"], capsys)
        assert code == 0, err
    code, out, err = run_cli(["evaluate", "era5-uk-t2m_gsta_svq", "--dataset", "warm", "--root", root,
                              "--max-batches", "2", "--format", "json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert any("normalised with the checkpoint's statistics" in n for n in result.get("notes", [])), result
    from svqcast.forecast.forecaster import load_network
    from svqcast.verify.evaluation import _open_split

    _, meta, ckpt, _ = load_network("era5-uk-t2m_gsta_svq")
    split = _open_split(ckpt, meta, "warm", "test", root, False)
    store = json.loads((root / "warm" / "prepared" / "stats.json").read_text())
    assert split.ds.spec.mean == meta["data_spec"]["mean"] != store["mean"]  # the model's, not the store's
    x, _ = split.ds[0]
    raw = (x.numpy() * np.asarray(meta["data_spec"]["std"]) + np.asarray(meta["data_spec"]["mean"]))
    assert float(raw.mean()) > 290  # the +20 K copy, seen through the model's own statistics (as predict sees it)
    code, _, err = run_cli(["evaluate", "era5-uk-t2m_gsta_svq", "--dataset", "half", "--root", root], capsys)
    assert code == 2 and "trained on dataset era5-uk-t2m" in err and _one_line(err)


def test_wrong_types_in_stats_json_are_a_data_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert run_cli(["prepare", _field_file(tmp_path / "f.nc"), "--name", "c", "--root", root, "--t-in", "2",
                    "--t-out", "1"], capsys)[0] == 0
    from svqcast.data import get_split_dataset
    from svqcast.errors import DataError

    stats = root / "c" / "prepared" / "stats.json"
    body = json.loads(stats.read_text())
    body["std"] = ["wide"]
    stats.write_text(json.dumps(body))
    manifest = json.loads((root / "c" / "prepared" / "manifest.json").read_text())
    manifest["files"]["stats.json"] = {"bytes": stats.stat().st_size,
                                       "sha256": hashlib.sha256(stats.read_bytes()).hexdigest()}
    (root / "c" / "prepared" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="lists of numbers"):
        get_split_dataset("c", "train", root=root)


# ---------------------------------------------------------------- 2: images at their depth


def _prepared_images(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> np.ndarray:

    root = tmp_path / "root"
    code, _, err = run_cli(["prepare", folder, "--name", "img", "--root", root, "--t-in", "2", "--t-out", "2"], capsys)
    assert code == 0, err
    with open_split(root / "img" / "prepared", "train") as ds:
        return np.asarray(ds["data"].values, dtype=np.float64)  # (T, C, H, W) as stored


def _image_folder(tmp_path: Path, frames: list[object]) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, im in enumerate(frames):
        im.save(folder / f"{i:03d}{'.tif' if im.mode == 'F' else '.png'}")  # type: ignore[attr-defined]
    return folder


def test_sixteen_bit_images_keep_their_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    arrays = [rng.integers(1000, 1004, (6, 5)).astype(np.uint16) for _ in range(40)]
    store = _prepared_images(_image_folder(tmp_path, [Image.fromarray(a) for a in arrays]), tmp_path, capsys)
    np.testing.assert_allclose(store[:, 0] * 65535.0, np.stack(arrays)[:store.shape[0]], atol=0.05)


def test_float_images_are_read_as_floats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    arrays = [np.full((6, 5), 0.25 + 0.01 * i, np.float32) + np.eye(6, 5, dtype=np.float32) * 0.1 for i in range(40)]
    store = _prepared_images(_image_folder(tmp_path, [Image.fromarray(a, mode="F") for a in arrays]), tmp_path, capsys)
    np.testing.assert_allclose(store[:, 0], np.stack(arrays)[:store.shape[0]], atol=1e-6)


def test_palette_images_keep_their_colours(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    frames = []
    for i in range(40):
        im = Image.new("P", (5, 6))
        im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
        im.putdata([(i + k) % 2 for k in range(30)])
        frames.append(im)
    store = _prepared_images(_image_folder(tmp_path, frames), tmp_path, capsys)
    assert store.shape[1] == 3  # red, green, blue: not collapsed to grey
    assert set(np.unique(store[:, 0])) == {0.0, 1.0} and set(np.unique(store[:, 2])) == {0.0}  # red on, no blue


def test_a_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = _image_folder(tmp_path, [Image.new("L", (64, 64)) for _ in range(6)])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 4096 pixels now count as a bomb
    code, _, err = run_cli(["prepare", folder, "--name", "bomb", "--root", tmp_path / "root"], capsys)
    assert code == 3 and "decompression bomb" in err and _one_line(err)


# ---------------------------------------------------------------- 5: duplicated GRIB messages


def test_duplicated_grib_messages_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    eccodes = pytest.importorskip("eccodes")
    sample = xr.open_dataset(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc").isel(time=slice(0, 30))
    lat, lon = sample["lat"].values.astype(float), sample["lon"].values.astype(float)
    template = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    path = tmp_path / "dup.grib"
    with open(path, "wb") as fh:
        for t in [*sample["time"].values, sample["time"].values[5]]:  # one time written twice
            msg = eccodes.codes_clone(template)
            stamp = str(t)
            for key, value in {"Ni": lon.size, "Nj": lat.size, "latitudeOfFirstGridPointInDegrees": lat[0],
                               "latitudeOfLastGridPointInDegrees": lat[-1],
                               "longitudeOfFirstGridPointInDegrees": lon[0] % 360,
                               "longitudeOfLastGridPointInDegrees": lon[-1] % 360,
                               "iDirectionIncrementInDegrees": 0.25, "jDirectionIncrementInDegrees": 0.25,
                               "dataDate": int(stamp[:10].replace("-", "")), "dataTime": int(stamp[11:13]) * 100,
                               "shortName": "2t"}.items():
                eccodes.codes_set(msg, key, value)
            eccodes.codes_set_values(msg, sample["t2m"].sel(time=t).values.astype(np.float64).ravel())
            eccodes.codes_write(msg, fh)
            eccodes.codes_release(msg)
    eccodes.codes_release(template)
    for argv in (["prepare", path, "--name", "g", "--root", tmp_path / "root"],
                 ["predict", path, "-o", tmp_path / "o.nc"]):
        code, _, err = run_cli(argv, capsys)
        assert code == 3 and "two GRIB messages" in err and _one_line(err), err
    assert not (tmp_path / "o.nc").exists() and not (tmp_path / "root" / "g").exists()
    assert not list(tmp_path.glob("*.idx"))


# ---------------------------------------------------------------- 6: units in score


@pytest.fixture(scope="module")
def uk_forecast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from svqcast.cli import main

    path = tmp_path_factory.mktemp("uk") / "f.nc"
    try:
        main.run(["predict", str(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc"), "-o", str(path), "--init-time",
                  "2019-03-29T00:00", "--lead-time", "6h", "--format", "json"])
    except SystemExit as exc:
        assert not exc.code
    return path


@pytest.mark.parametrize("units, words", [("K", "not a plausible"), (None, "no units attribute")])
def test_truth_with_wrong_or_missing_units_is_refused(units: str | None, words: str, uk_forecast: Path,
                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    truth = xr.open_dataset(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc")
    truth["t2m"] = truth["t2m"] - 273.15  # degC values ...
    truth["t2m"].attrs = {} if units is None else {"units": units}  # ... labelled K, or not labelled
    truth.to_netcdf(tmp_path / "truth.nc")
    code, out, err = run_cli(["score", uk_forecast, "--truth", tmp_path / "truth.nc", "--format", "json"], capsys)
    assert code == 3 and words in err and out == "" and _one_line(err), err


def test_a_climatology_in_other_units_is_converted(uk_forecast: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    sample = xr.open_dataset(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc")
    clim = sample.mean("time")  # a static climatology, in K
    clim["t2m"].attrs = {"units": "K"}
    clim.to_netcdf(tmp_path / "clim_k.nc")
    celsius = clim.copy()
    celsius["t2m"] = clim["t2m"] - 273.15
    celsius["t2m"].attrs = {"units": "degC"}
    celsius.to_netcdf(tmp_path / "clim_c.nc")
    accs = []
    for name in ("clim_k.nc", "clim_c.nc"):
        code, out, err = run_cli(["score", uk_forecast, "--truth", SAMPLES_DIR / "era5_uk_t2m_2019-03.nc",
                                  "--climatology", tmp_path / name, "--format", "json"], capsys)
        assert code == 0, err
        accs.append(json.loads(out)["variables"]["t2m"]["overall"]["acc"])
    assert accs[0] == pytest.approx(accs[1], abs=1e-6) and accs[0] < 0.99


# ---------------------------------------------------------------- 17: a full disk is a full disk


@contextlib.contextmanager
def _tmpfs(mnt: Path, size: str):
    """A tiny tmpfs at `mnt` for the block (root only; the test skips where mounting is not allowed)."""
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_prepare_on_a_full_disk_says_disk_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _tmpfs(tmp_path / "full", "12k") as mnt:
        fd = os.open(mnt / "fill", os.O_WRONLY | os.O_CREAT)  # fill the file system to the last block
        try:
            while os.write(fd, b"\0" * 1024):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        code, _, err = run_cli(["prepare", SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", "--name", "full", "--root",
                                mnt / "root"], capsys)
        errors = [line for line in err.splitlines() if line.startswith("error")]
        assert code == 1 and len(errors) == 1 and "disk full" in errors[0] and "permission" not in err, err
        assert sorted(p.name for p in mnt.rglob("*") if p.is_file()) == ["fill"]


# ---------------------------------------------------------------- 16: markup in metadata is text


def test_markup_in_a_dataset_s_metadata_is_printed_as_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    assert run_cli(["prepare", _clip(tmp_path / "c.npy"), "--name", "c", "--root", root, "--t-in", "2",
                    "--t-out", "2"], capsys)[0] == 0
    catalog = root / "user-datasets.json"
    body = json.loads(catalog.read_text())
    body["datasets"]["c"]["title"] = "clip [/] [bold red]x[/bold"
    catalog.write_text(json.dumps(body))
    for argv in (["datasets", "info", "c"], ["datasets", "list"]):
        code, out, err = run_cli([*argv, "--root", root], capsys)
        assert code == 0 and "internal error" not in err, err
    code, out, _ = run_cli(["datasets", "info", "c", "--root", root], capsys)
    assert "clip [/] [bold red]x[/bold" in out


def test_split_bounds_with_times_of_day_and_frames_out_of_range(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    path = _field_file(tmp_path / "f.nc", times=pd.date_range("2020-01-01", periods=40, freq="h"))
    root = tmp_path / "root"
    split = ["--split", "train=2020-01-01T00:00..2020-01-01T23:00", "--split", "val=2020-01-02T00:00:2020-01-02T07:00",
             "--split", "test=2020-01-02T08:00..2020-01-02T15:00"]
    code, out, err = run_cli(["prepare", path, "--name", "t", "--root", root, "--t-in", "2", "--t-out", "1",
                              "--format", "json", *split], capsys)
    assert code == 0, err
    assert json.loads(out)["frames"] == {"train": 24, "val": 8, "test": 8}
    clip = _clip(tmp_path / "c.npy")
    code, _, err = run_cli(["prepare", clip, "--name", "c", "--root", root, "--split", "train=-5:20",
                            "--split", "val=20:30", "--split", "test=30:40"], capsys)
    assert code == 2 and "must lie in 0..40" in err and _one_line(err)


def test_an_npy_output_for_a_lat_lon_forecast_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["predict", SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", "-o", tmp_path / "f.npy"], capsys)
    assert code == 2 and "write .nc or .zarr" in err and _one_line(err) and not (tmp_path / "f.npy").exists()


def test_an_interrupted_force_keeps_store_and_record_paired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """SIGINT after the new store is in place but before its record is written: the record is
    still written (signals wait for it), then the command stops with 130. Never new store + old record."""
    from svqcast.data import userprep

    root = tmp_path / "root"
    args = ["--root", root, "--t-in", "2", "--t-out", "2"]
    assert run_cli(["prepare", _clip(tmp_path / "a.npy", seed=1), "--name", "p", *args], capsys)[0] == 0
    real_register = userprep.register

    def interrupted_register(record: dict, root_: object = None) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # arrives between the store swap and the record
        real_register(record, root_)

    monkeypatch.setattr(userprep, "register", interrupted_register)
    new = _clip(tmp_path / "b.npy", seed=2)
    code, _, err = run_cli(["prepare", new, "--name", "p", "--force", *args], capsys)
    assert code == 130, err
    record = json.loads((root / "user-datasets.json").read_text())["datasets"]["p"]
    manifest = json.loads((root / "p" / "prepared" / "manifest.json").read_text())
    digest = hashlib.sha256(new.read_bytes()).hexdigest()
    assert digest in json.dumps(record) and digest in json.dumps(manifest)  # both the new ones


def test_predict_overwrite_of_a_symlink_replaces_the_link_not_its_target(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "someone_elses.nc"
    other.write_bytes(b"precious")
    link = tmp_path / "link.nc"
    link.symlink_to(other)
    code, _, err = run_cli(["predict", SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", "-o", link, "--lead-time", "2h",
                            "--overwrite"], capsys)
    assert code == 0, err
    assert other.read_bytes() == b"precious" and not link.is_symlink() and link.stat().st_size > 1000


def test_a_serialiser_s_full_disk_is_disk_full(tmp_path: Path) -> None:
    """safetensors, torch.save and onnx keep the errno only in their message: still disk full."""
    from safetensors import SafetensorError

    from svqcast.fsutil import classify_write_error

    for exc in (SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
                RuntimeError("PytorchStreamWriter failed writing file data/0: [Errno 28] No space left on device")):
        err = classify_write_error(exc, tmp_path / "run" / "best")
        assert err is not None and err.exit_code == 1 and str(err).startswith("disk full")
    assert classify_write_error(RuntimeError("shape mismatch"), tmp_path / "x") is None


def test_train_on_a_full_disk_says_disk_full(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with _tmpfs(tmp_path / "small", "120k") as mnt:
        tiny = ["--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2", "--set",
                "model.mlp_ratio=2.0", "--set", "train.batch_size=2", "--set", "train.max_steps_per_epoch=2",
                "--set", "train.max_val_steps=1", "--max-epochs", "1", "--progress", "none"]
        code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta", "--run-dir", mnt / "run", *tiny], capsys)
        errors = [line for line in err.splitlines() if line.startswith("error")]
        assert code == 1 and len(errors) == 1 and "disk full" in errors[0] and "internal error" not in err, err
        assert not [p for p in mnt.rglob("*") if ".tmp" in p.name]


def test_a_coarser_input_with_too_few_frames_names_the_step_first(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import xarray as xr

    sample = xr.open_dataset(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc")
    sample.isel(time=slice(0, 15, 3)).to_netcdf(tmp_path / "3h.nc")  # 5 frames, 3 h apart
    code, _, err = run_cli(["predict", tmp_path / "3h.nc", "-o", tmp_path / "f.nc"], capsys)
    assert code == 3 and "3h apart; the model needs 1h" in err and _one_line(err), err


def test_a_tampered_catalog_store_is_refused_by_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    code, _, err = run_cli(["prepare", "era5-uk-t2m", "--root", root], capsys)
    assert code == 0, err
    victim = data_chunks(root / "era5-uk-t2m" / "prepared")[-1]
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    code, _, err = run_cli(["prepare", "era5-uk-t2m", "--root", root], capsys)
    assert code == 3 and "store.zarr/data/c/" in err and "--force" in err and _one_line(err), err
