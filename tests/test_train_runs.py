"""Runs belong to one preset and one dataset: default run directories never collide across
datasets, and `--resume` refuses to continue a run with another preset, dataset or data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _cli import run_cli

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
