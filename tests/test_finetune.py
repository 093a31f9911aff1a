"""Fine-tuning through the CLI: `train --init-from` (with --strict, --freeze, --keep-stats).

The parent is the bundled default model; the children train two optimizer steps on user
datasets prepared here from the embedded ERA5 sample (same grid), once with one channel (every
tensor loaded) and once with two (the input and output layers start fresh).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli
from safetensors.numpy import load_file

from svqcast.data.samples import SAMPLES_DIR

SAMPLE = SAMPLES_DIR / "era5_uk_t2m_2019-03.nc"
QUICK = ["--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=2", "--set", "train.max_val_steps=1",
         "--progress", "none", "--preset", "era5-uk-t2m_gsta_svq_24h"]
PARENT = "era5-uk-t2m_gsta_svq"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("ft")
    with xr.open_dataset(SAMPLE) as ds:
        one = ds.load()
    two = one.assign(t2m_copy=one["t2m"] + 1.0)
    two["t2m_copy"].attrs = dict(one["t2m"].attrs)
    one.to_netcdf(base / "one.nc")
    two.to_netcdf(base / "two.nc")
    return base


def _prepare(root: Path, name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(root / "data"))
    if not (root / "data" / name).exists():
        code, _, err = run_cli(["prepare", root / f"{name}.nc", "--name", name, "--t-in", "25", "--t-out", "12"],
                               capsys)
        assert code == 0, err


def _weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(str(run / "last" / "model.safetensors"))


def test_same_grid_loads_everything_and_freeze_keeps_the_encoder(root: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(root, "one", monkeypatch, capsys)
    run = tmp_path / "ft"
    code, _, err = run_cli(["train", "--dataset", "one", *QUICK, "--init-from", PARENT, "--freeze", "encoder",
                            "--max-epochs", "1", "--run-dir", run, "--progress", "plain"], capsys)
    assert code == 0, err
    assert "fine-tune from era5-uk-t2m_gsta_svq" in err and "new: none" in err
    meta = json.loads((run / "last" / "config.json").read_text())
    ft = meta["provenance"]["fine_tuned_from"]
    assert ft["new"] == [] and ft["dropped"] == [] and ft["frozen"] == ["encoder"] and ft["loaded"] > 50
    from svqcast.zoo.hub import resolve_checkpoint

    parent = load_file(str(Path(resolve_checkpoint(PARENT)) / "model.safetensors"))
    child = _weights(run)
    enc = [k for k in parent if k.startswith("enc.") and "running" not in k and "num_batches" not in k]
    assert enc and all(np.array_equal(parent[k], child[k]) for k in enc)  # frozen: bit-identical
    assert any(not np.array_equal(parent[k], child[k]) for k in parent if k.startswith("hid."))  # trained
    assert "fine-tuned from: `era5-uk-t2m_gsta_svq`" in (run / "last" / "README.md").read_text()
    # resuming continues this run (its own weights and epoch count), not the parent
    code, _, err = run_cli(["train", "--resume", run, "--max-epochs", "2", "--progress", "none"], capsys)
    assert code == 0, err
    state = json.loads((run / "last" / "config.json").read_text())["provenance"]["fine_tuned_from"]
    assert state["parent"] == PARENT
    assert len([line for line in (run / "metrics.csv").read_text().splitlines()[1:] if line.strip()]) >= 2


def test_another_channel_count_starts_the_edges_fresh(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    _prepare(root, "two", monkeypatch, capsys)
    code, _, err = run_cli(["train", "--dataset", "two", *QUICK, "--init-from", PARENT, "--max-epochs", "1",
                            "--run-dir", tmp_path / "ft2"], capsys)
    assert code == 0, err
    ft = json.loads((tmp_path / "ft2" / "last" / "config.json").read_text())["provenance"]["fine_tuned_from"]
    assert ft["new"] and all(k.split(".")[0] in ("enc", "dec") for k in ft["new"]) and ft["loaded"] > 40
    code, _, err = run_cli(["train", "--dataset", "two", *QUICK, "--init-from", PARENT, "--strict",
                            "--max-epochs", "1", "--run-dir", tmp_path / "strict"], capsys)
    assert code == 2 and "first difference: enc." in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "strict").exists()


@pytest.mark.parametrize(("make", "args", "code", "needle"), [
    ("text", [], 3, ""),
    ("pickle", [], 3, ""),
    (None, ["--freeze", "wings"], 2, "choose among encoder, translator, quantizer, decoder"),
])
def test_bad_parents_are_one_line_and_leave_no_run(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], make: str | None,
                                                   args: list[str], code: int, needle: str) -> None:
    _prepare(root, "one", monkeypatch, capsys)
    parent = PARENT
    if make == "text":
        (tmp_path / "notes.txt").write_text("not a model")
        parent = str(tmp_path / "notes.txt")
    elif make == "pickle":
        import pickle

        (tmp_path / "model.pt").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
        parent = str(tmp_path / "model.pt")
    got, _, err = run_cli(["train", "--dataset", "one", *QUICK, "--init-from", parent, *args, "--max-epochs", "1",
                           "--run-dir", tmp_path / "run"], capsys)
    assert got in ((code,) if make is None else (2, 3)) and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_an_unreachable_hub_parent_is_exit_4_fast(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    import time

    _prepare(root, "one", monkeypatch, capsys)
    with socket.socket() as s:  # a port nothing listens on: the Hub is unreachable, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.perf_counter()
    code, _, err = run_cli(["train", "--dataset", "one", *QUICK, "--init-from", "hf://org/nothing@v404",
                            "--max-epochs", "1", "--run-dir", tmp_path / "run"], capsys)
    assert code == 4 and len(err.strip().splitlines()) == 1, err
    assert time.perf_counter() - t0 < 15 and not (tmp_path / "run").exists()
