"""`svqcast train` through the real CLI in a subprocess: Ctrl-C leaves a resumable state
and exits 130; a bad --set is a usage error (exit 2) naming the key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

SVQCAST = str(Path(sys.executable).parent / "svqcast")
#: a very small model on the embedded ERA5 sample, so steps are quick but an epoch is not
TINY = [
    "--set", "model.hid_S=8", "--set", "model.hid_T=16", "--set", "model.N_T=2",
    "--set", "model.mlp_ratio=2.0", "--set", "train.batch_size=2", "--set", "train.val_batch_size=8",
    "--set", "train.max_val_steps=1",
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    # one prepared copy of the embedded sample for the whole session (tmp_path's parent)
    env.update(SVQCAST_DATA_DIR=str(tmp_path.parent / "train-cli-data"), OMP_NUM_THREADS="1", NO_COLOR="1")
    env.pop("SVQCAST_DEBUG", None)
    return env


def test_bad_set_key_and_type_exit_2(tmp_path) -> None:
    env = _env(tmp_path)
    for item, key in (("train.nope=1", "train.nope"), ("train.max_steps_per_epoch=1.5", "train.max_steps_per_epoch")):
        proc = subprocess.run(
            [SVQCAST, "train", "--preset", "era5-uk-t2m_gsta", "--run-dir", str(tmp_path / "r"), "--set", item],
            capture_output=True, text=True, env=env, timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert key in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing was written


def test_sigint_saves_resumable_state_and_exits_130(tmp_path) -> None:
    run = tmp_path / "run"
    cmd = [SVQCAST, "train", "--preset", "era5-uk-t2m_gsta", "--run-dir", str(run), "--progress", "plain",
           *TINY, "--set", "train.max_steps_per_epoch=20", "--set", "train.epochs=3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(tmp_path))
    seen = []
    deadline = time.monotonic() + 150
    assert proc.stderr is not None
    for line in proc.stderr:  # plain progress: "epoch 1/3 steps: 5/20 ..." once training runs
        seen.append(line)
        if " steps: " in line:
            proc.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(seen)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, "".join(seen) + rest
    assert "interrupted" in rest and "--resume auto" in rest

    state = torch.load(run / "trainer_state.pt", weights_only=True)
    prog = state["progress"]
    assert not prog["finished"] and prog["step"] >= 5 and (prog["batch_in_epoch"] > 0 or prog["epoch"] > 0)
    assert json.loads((run / "config.json").read_text())["train"]["max_steps_per_epoch"] == 20

    # continue it (the stored config is used; no preset needed) and stop after epoch 1
    done = subprocess.run(
        [SVQCAST, "train", "--resume", str(run), "--max-epochs", "1", "--progress", "none", "--format", "json"],
        capture_output=True, text=True, env=_env(tmp_path), timeout=240,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["epochs_done"] == 1 and Path(report["run_dir"]) == run
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0] and rows[0]["step"] == 20
    assert (run / "best" / "model.safetensors").is_file()
