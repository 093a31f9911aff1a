"""A non-finite loss stops training at once and keeps the last good checkpoints: exit 3
naming the sample when the data holds NaN/inf, exit 1 when the optimisation diverged;
and `evaluate` verifies a checkpoint's weights like `predict` does (one load path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_standins import SyntheticWindows, TinyNet, one_thread, tiny_cfg

from svqcast.errors import DataError, SvqcastError
from svqcast.training.loop import train
from svqcast.training.runlog import read_metrics
from svqcast.training.state import STATE_NAME

SVQCAST = str(Path(sys.executable).parent / "svqcast")
TINY = [
    "--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2",
    "--set", "model.mlp_ratio=2.0", "--set", "train.batch_size=2", "--set", "train.val_batch_size=8",
    "--set", "train.max_val_steps=1", "--set", "train.max_steps_per_epoch=3", "--set", "train.epochs=1",
]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


class _NaNAt(SyntheticWindows):
    """Sample `bad` holds a NaN once `armed` is set (data that went bad between runs)."""

    armed = False
    bad = 5

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        if type(self).armed and i == type(self).bad:
            x = x.clone()
            x[0, 0, 2, 3] = float("nan")
        return x, y


class _Exploding(TinyNet):
    """Finite for `after` training forwards, then its output blows up (divergence)."""

    calls = 0
    after = 10**9

    def forward(self, x, return_aux=False):
        out = super().forward(x, return_aux)
        if self.training:
            type(self).calls += 1
            if type(self).calls > type(self).after:
                out.pred = out.pred * float("inf")
        return out


def _files(run: Path) -> dict[str, bytes]:
    names = ["last/model.safetensors", "best/model.safetensors", STATE_NAME, "metrics.jsonl"]
    return {n: (run / n).read_bytes() for n in names}


def _assert_finite_checkpoint(run: Path) -> None:
    from safetensors.torch import load_file

    for sub in ("best", "last"):
        assert all(torch.isfinite(t).all() for t in load_file(str(run / sub / "model.safetensors")).values())


def test_nan_sample_stops_with_data_error_naming_it(tmp_path) -> None:
    cfg, run = tiny_cfg(epochs=3), tmp_path / "r"
    data = (_NaNAt(16), SyntheticWindows(6, offset=100))
    _NaNAt.armed = False
    train(cfg, run_dir=run, datasets=data, model_fn=TinyNet, progress="none", max_epochs=1)
    before = _files(run)
    _NaNAt.armed = True
    try:
        with pytest.raises(DataError, match=r"training sample 5 of 'synthetic' holds NaN or inf") as info:
            train(None, run_dir=run, resume="auto", datasets=data, model_fn=TinyNet, progress="none")
    finally:
        _NaNAt.armed = False
    assert info.value.exit_code == 3 and "\n" not in str(info.value)
    assert _files(run) == before  # last good checkpoints, state and metrics untouched
    assert len(read_metrics(run)) == 1
    _assert_finite_checkpoint(run)


def test_divergence_stops_with_exit_1_keeping_last_good_epoch(tmp_path) -> None:
    cfg, run = tiny_cfg(epochs=3), tmp_path / "r"
    data = (SyntheticWindows(16), SyntheticWindows(6, offset=100))
    _Exploding.calls, _Exploding.after = 0, 6  # 4 steps per epoch: blows up at step 3 of epoch 2
    with pytest.raises(SvqcastError, match="training diverged") as info:
        train(cfg, run_dir=run, datasets=data, model_fn=_Exploding, progress="none")
    assert type(info.value) is SvqcastError and info.value.exit_code == 1
    assert "step 7 (epoch 2)" in str(info.value)  # stopped at the first non-finite loss
    assert [r["epoch"] for r in read_metrics(run)] == [0]
    state = torch.load(run / STATE_NAME, weights_only=True)
    assert state["progress"]["epoch"] == 1 and state["progress"]["step"] == 4
    _assert_finite_checkpoint(run)


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(SVQCAST_DATA_DIR=str(tmp_path.parent / "train-fail-data"), OMP_NUM_THREADS="1", NO_COLOR="1")
    env.pop("SVQCAST_DEBUG", None)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([SVQCAST, *args], capture_output=True, text=True, env=env, timeout=300)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_cli_huge_lr_diverges_exit_1(tmp_path) -> None:
    """`train.lr=inf` is refused by the config schema (exit 2); a finite lr far too large
    makes the weights overflow at run time, which is the loop's divergence (exit 1)."""
    run = tmp_path / "run"
    proc = _cli(["train", "--preset", "era5-uk-t2m_gsta", "--run-dir", str(run), "--progress", "none", *TINY,
                 "--set", "train.lr=1e30", "--set", "train.scheduler=none"], _env(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert "training diverged" in _one_line(proc.stderr)
    assert not (run / "last").exists() and not (run / STATE_NAME).exists()  # no NaN weights written


def _poison_store(root: Path) -> int:
    """Put a NaN into the training store of the embedded sample (keeping its manifest
    consistent, as a store written by a tool that let NaN through would be) and return
    the index of the first training sample of epoch 1, whose last input frame it hits."""
    import zarr
    from torch.utils.data import DistributedSampler

    from svqcast.data import get_split_dataset
    from svqcast.data.storedir import MANIFEST, prepared_dir
    from svqcast.fsutil import sha256_file

    ds = get_split_dataset("era5-uk-t2m", "train", t_in=12, t_out=12, root=root)
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=42, drop_last=True)
    sampler.set_epoch(0)
    first = next(iter(sampler))
    store = prepared_dir("era5-uk-t2m", root)
    data = zarr.open_array(str(store / "store.zarr" / "data"), mode="r+")
    data[int(ds.centres[first]), 0, 5, 7] = np.float32("nan")  # train is the store's first range
    manifest = json.loads((store / MANIFEST).read_text())
    manifest["files"] = {k: {"sha256": sha256_file(store / k), "bytes": (store / k).stat().st_size}
                         for k in manifest["files"]}
    (store / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return first


def test_cli_nan_in_data_exit_3_names_sample(tmp_path) -> None:
    root = tmp_path / "data"
    env = _env(tmp_path)
    env["SVQCAST_DATA_DIR"] = str(root)
    first = _poison_store(root)
    run = tmp_path / "run"
    proc = _cli(["train", "--preset", "era5-uk-t2m_gsta", "--run-dir", str(run), "--progress", "none", *TINY], env)
    assert proc.returncode == 3, proc.stderr
    assert f"training sample {first} of 'era5-uk-t2m' holds NaN or inf" in _one_line(proc.stderr)
    assert not (run / "last").exists() and not (run / STATE_NAME).exists()


def test_evaluate_verifies_weights_sha256_like_predict(tmp_path) -> None:
    """A checkpoint whose weights no longer match its config.json's sha256 is refused by
    `evaluate` (checkpoint dir and run dir) exactly as by `predict`: exit 3, one line."""
    from _predict_fixtures import SAMPLE, make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "run" / "best")
    weights = ckpt / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0x01  # a flipped bit in the tensor data: still a loadable file
    weights.write_bytes(bytes(blob))
    env = _env(tmp_path)
    for args in (["evaluate", str(ckpt)], ["evaluate", str(tmp_path / "run")],
                 ["predict", str(SAMPLE), "-o", str(tmp_path / "x.nc"), "--model", str(ckpt)]):
        proc = _cli(args, env)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "sha256" in _one_line(proc.stderr), args
    assert not (tmp_path / "x.nc").exists()
