"""Runs belong to one preset and one dataset: default run directories never collide across
datasets, and `--resume` refuses to continue a run with another preset, dataset or data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

from svqcast.data.store import open_split

TINY = ["--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2", "--set", "model.mlp_ratio=2.0",
        "--set", "train.batch_size=4", "--set", "train.max_steps_per_epoch=2", "--set", "train.max_val_steps=1",
        "--set", "model.in_shape=[2,1,6,5]", "--set", "model.out_frames=2", "--progress", "none"]


def _clip(path: Path, seed: int) -> Path:
    np.save(path, np.random.default_rng(seed).integers(0, 255, (40, 6, 5), dtype=np.uint8))
    return path


@pytest.fixture()
def two_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    for name, seed in (("one", 1), ("two", 2)):
        code, _, err = run_cli(["prepare", _clip(tmp_path / f"{name}.npy", seed), "--name", name, "--t-in", "2",
                                "--t-out", "2"], capsys)
        assert code == 0, err
    return tmp_path


def _train(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta", *args, *TINY, "--max-epochs", "1",
                            "--format", "json"], capsys)
    return code, err


def test_default_run_directories_follow_the_dataset(two_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("one", "two"):
        code, err = _train(["--dataset", name], capsys)
        assert code == 0, err
    runs = sorted(p.name for p in (two_datasets / "runs").iterdir())
    assert runs == ["era5-uk-t2m_gsta-one", "era5-uk-t2m_gsta-two"]
    stored = json.loads((two_datasets / "runs" / "era5-uk-t2m_gsta-two" / "config.json").read_text())
    assert stored["data"]["dataset"] == "two"


def test_resume_refuses_another_dataset_or_preset(two_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = two_datasets / "r"
    code, err = _train(["--dataset", "one", "--run-dir", run], capsys)
    assert code == 0, err
    before = sorted(p.name for p in run.rglob("*"))
    code, _, err = run_cli(["train", "--resume", run, "--dataset", "two", *TINY], capsys)
    assert code == 2 and "dataset 'one', not 'two'" in err and len(err.strip().splitlines()) == 1, err
    code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta_svq", "--dataset", "one", "--run-dir", run,
                            "--resume", "auto", *TINY], capsys)
    assert code == 2 and "preset 'era5-uk-t2m_gsta', not 'era5-uk-t2m_gsta_svq'" in err, err
    assert sorted(p.name for p in run.rglob("*")) == before


def test_resume_refuses_data_prepared_again(two_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = two_datasets / "r"
    code, err = _train(["--dataset", "one", "--run-dir", run], capsys)
    assert code == 0, err
    code, _, err = run_cli(["prepare", _clip(two_datasets / "other.npy", 9), "--name", "one", "--force", "--t-in", "2",
                            "--t-out", "2"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["train", "--resume", run, *TINY, "--max-epochs", "2"], capsys)
    assert code == 2 and "prepared again since" in err, err


def test_cards_of_user_runs_name_the_run_its_weights_and_its_best_epoch(two_datasets: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    run = two_datasets / "r"
    code, _, err = run_cli(["train", "--preset", "era5-uk-t2m_gsta", "--dataset", "one", "--run-dir", run, *TINY,
                            "--max-epochs", "2", "--format", "json"], capsys)
    assert code == 0, err
    for which in ("best", "last"):
        card = (run / which / "README.md").read_text()
        meta = json.loads((run / which / "config.json").read_text())
        epoch = meta["provenance"]["epoch"]
        assert epoch in (1, 2) and f"epoch {epoch}," in card and "epoch 3" not in card
        assert f"weights sha256: `{meta['weights_sha256']}`" in card
        assert f"--model {run}" in card and "--model era5-uk-t2m_gsta" not in card
        assert f"# {run} (one)" in card
    code, out, err = run_cli(["evaluate", run], capsys)
    assert code == 0, err
    assert " ".join(out.split()).startswith(f"{run} (preset era5-uk-t2m_gsta) on one/test")


def test_activation_memory_is_measured_and_scales_with_the_input() -> None:
    import torch

    from svqcast.training.memory import activation_bytes

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(16, 8, 3, padding=1))
    weights = sum(p.numel() * 4 for p in net.parameters() if p.dim() > 1)  # conv kernels are saved, once
    one = activation_bytes(lambda: net(torch.zeros(1, 3, 32, 32)))
    four = activation_bytes(lambda: net(torch.zeros(4, 3, 32, 32)))
    # hand count: the input (3 x 32 x 32) and the ReLU output (16 x 32 x 32) float32, per sample
    assert one - weights == 4 * (3 + 16) * 32 * 32 and four - weights == 4 * (one - weights)


def test_a_run_that_would_not_fit_is_refused_with_a_batch_that_fits(two_datasets: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import re

    monkeypatch.setenv("SVQCAST_MEMORY_LIMIT_BYTES", "3000000")
    run = two_datasets / "tight"
    args = ["train", "--preset", "era5-uk-t2m_gsta", "--dataset", "one", "--run-dir", run, *TINY]
    code, _, err = run_cli([*args, "--set", "train.batch_size=64"], capsys)
    assert code == 2 and "more than the" in err and len(err.strip().splitlines()) == 1, err
    assert not run.exists()
    fits = int(re.search(r"train.batch_size=(\d+)", err).group(1))
    code, _, err = run_cli([*args, "--set", f"train.batch_size={fits}", "--max-epochs", "1"], capsys)
    assert code == 0, err


def _two_scenes(path: Path) -> Path:
    rng = np.random.default_rng(0)
    calm = np.clip(60 + rng.normal(0, 2, (40, 12, 16)), 0, 255)
    bright = np.clip(200 + rng.normal(0, 2, (40, 12, 16)), 0, 255)
    np.save(path, np.concatenate([calm, bright]).astype(np.uint8))  # a scene cut before frame 40
    return path


def test_scene_cuts_are_found_and_no_window_straddles_one(two_datasets: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.data import get_split_dataset

    clip = _two_scenes(two_datasets / "scenes.npy")
    code, _, err = run_cli(["prepare", clip, "--name", "scenes", "--t-in", "2", "--t-out", "2"], capsys)
    assert code == 0 and "1 scene cut(s) before frame(s) 40" in err, err
    ds = get_split_dataset("scenes", "train")  # frames 0..55: the cut at 40 is inside
    for i in range(len(ds)):
        _, target = ds.times(i)
        inputs, _ = ds.times(i)
        frames = np.concatenate([inputs, target])
        assert frames.max() < 40 or frames.min() >= 40, frames
    code, _, err = run_cli(["prepare", clip, "--name", "across", "--t-in", "2", "--t-out", "2", "--allow-cuts"],
                           capsys)
    assert code == 0, err
    assert len(get_split_dataset("across", "train")) == len(ds) + 3  # the three windows across the cut


def test_resize_area_averages_frame_data(two_datasets: Path, capsys: pytest.CaptureFixture[str]) -> None:

    frames = np.zeros((40, 12, 16), dtype=np.uint8)
    frames[:, :6, :] = 200  # the top half bright: a 2x2 average keeps it exactly
    np.save(two_datasets / "big.npy", frames)
    code, _, err = run_cli(["prepare", two_datasets / "big.npy", "--name", "small", "--t-in", "2", "--t-out", "2",
                            "--resize", "6x8"], capsys)
    assert code == 0, err
    with open_split(two_datasets / "data" / "small" / "prepared", "train") as ds:
        values = np.asarray(ds["data"].values)
    assert values.shape[-2:] == (6, 8) and np.allclose(values[:, 0, :3], 200 / 255) and np.allclose(values[:, 0, 3:], 0)
    code, _, err = run_cli(["prepare", two_datasets / "big.npy", "--name", "x", "--resize", "24x8"], capsys)
    assert code == 2 and "no larger than the frames' 12x16" in err
