"""`torchrun` on CPU (gloo) against one process with the same global batch, after one epoch:
DDP gradient averaging, DistributedSampler sharding of the same permutation, all-reduced
losses, rank-0-only files and output.

* one node, two processes (`--standalone --nproc_per_node 2`) == one process with twice the
  batch, to float rounding (two batches of 2 are not one batch of 4 to the last bit);
* two nodes of one process each, meeting over loopback (`--nnodes 2 --rdzv-backend c10d`) ==
  the one-node two-process run, **bit for bit**: the same two global ranks, shards, seeds and
  gloo sums, only the transport differs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file

SVQCAST = str(Path(sys.executable).parent / "svqcast")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
#: IncepU normalises with GroupNorm (per sample), so per-process batches see the same
#: normalisation as one big batch; BatchNorm translators (gSTA) would not, by design of DDP.
COMMON = [
    "--preset", "era5-uk-t2m_gsta", "--max-epochs", "1", "--progress", "plain", "--deterministic",
    "--set", "model.translator=incepu", "--set", "model.hid_S=8", "--set", "model.hid_T=16",
    "--set", "model.N_T=2", "--set", "train.warmup_epochs=0", "--set", "train.max_steps_per_epoch=3",
    "--set", "train.val_batch_size=8", "--set", "train.device=cpu",
]
TWO_PER_PROCESS = ["--set", "train.batch_size=2"]
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_RANK")
pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")


def _env(data: Path) -> dict[str, str]:
    """A clean launch environment: one thread per process (2 cores here), no leftover
    torchrun variables, a short join timeout so a broken launch fails instead of hanging."""
    env = dict(os.environ, SVQCAST_DATA_DIR=str(data), OMP_NUM_THREADS="1", SVQCAST_DIST_TIMEOUT="120")
    for k in LAUNCH_VARS:
        env.pop(k, None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process with batch 4 and one node with two processes of batch 2, run once for
    both tests (they share a data dir: the embedded sample is prepared by the first)."""
    tmp = tmp_path_factory.mktemp("reference")
    env = _env(tmp / "data")
    single = subprocess.run([SVQCAST, "train", *COMMON, "--run-dir", str(tmp / "one"), "--set", "train.batch_size=4"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([*TORCHRUN, "--standalone", "--nproc_per_node", "2", SVQCAST, "train", *COMMON,
                            "--run-dir", str(tmp / "two"), *TWO_PER_PROCESS],
                           capture_output=True, text=True, env=env, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    return {"one": tmp / "one", "two": tmp / "two", "multi": multi}


def test_two_process_gloo_equals_single_process(reference: dict[str, Any]) -> None:
    one, two, multi = reference["one"], reference["two"], reference["multi"]
    a = load_file(str(one / "last" / "model.safetensors"))
    b = load_file(str(two / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    # the initial weights: the loop seeds, then builds the model
    from svqcast.api import build_model
    from svqcast.training.loop import seed_everything

    seed_everything(42)
    init = build_model("era5-uk-t2m_gsta", {"model.translator": "incepu", "model.hid_S": 8,
                                            "model.hid_T": 16, "model.N_T": 2}).state_dict()
    keys = [k for k in a if a[k].is_floating_point()]
    step_one = torch.cat([(a[k] - init[k]).flatten() for k in keys])
    step_two = torch.cat([(b[k] - init[k]).flatten() for k in keys])
    # 3 Adam steps at lr 5e-3 moved the weights a lot ...
    assert step_one.norm() > 0.5
    # ... and both runs moved them the same way. Adam divides by sqrt(v) + 1e-8, so float
    # rounding differences of gradients near zero are amplified; per element the runs agree
    # far below one step (5e-3), in norm to 0.5 % (measured: 5e-4). Rank-local gradients
    # (no averaging) or different shards would differ by O(1).
    assert (step_one - step_two).abs().max() < 1e-3
    assert (step_one - step_two).norm() / step_one.norm() < 5e-3

    rows_one, rows_two = _rows(one), _rows(two)
    assert len(rows_two) == 1  # rank 0 alone writes
    assert rows_two[0]["step"] == rows_one[0]["step"] == 3
    assert rows_two[0]["train_loss"] == pytest.approx(rows_one[0]["train_loss"], rel=1e-5)
    assert rows_two[0]["val_loss"] == pytest.approx(rows_one[0]["val_loss"], rel=1e-4)  # all 49 val samples
    assert multi.stderr.count("train_loss") == 1  # one epoch line: rank 0 logs, rank 1 is silent
    assert multi.stdout.count("evaluate with:") == 1  # one summary, from rank 0
    meta = json.loads((two / "last" / "config.json").read_text())
    assert meta["provenance"]["world_size"] == 2


def _launch_nodes(tmp: Path, run: Path, env: dict[str, str]) -> tuple[list[int], list[str], list[str], float]:
    """Two torchrun agents, one process each, meeting at a c10d rendezvous on loopback as two
    nodes would; returns their exit codes, stdouts, stderrs and the wall time.

    Each agent runs in its own working directory (nothing may land there) and its own
    session, so a failure kills the agent *and* its worker. Both get the same `--run-dir`:
    the c10d rendezvous gives global rank 0 to whichever agent joins first (`--node-rank` is
    only a hint for it), so which node writes is not known in advance; on a cluster the run
    dir is on a shared filesystem in the same way.
    """
    port = _free_port()
    procs, files = [], []
    t0 = time.perf_counter()
    try:
        for k in (0, 1):
            cwd = tmp / f"node{k}"
            cwd.mkdir()
            out, err = (tmp / f"node{k}.out").open("w"), (tmp / f"node{k}.err").open("w")
            files += [out, err]
            procs.append(subprocess.Popen(
                [*TORCHRUN, "--nnodes", "2", "--nproc_per_node", "1", "--node-rank", str(k),
                 "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"svqcast-test-{port}",
                 "--rdzv-conf", "join_timeout=120", SVQCAST, "train", *COMMON, "--run-dir", str(run), *TWO_PER_PROCESS],
                cwd=cwd, env=env, stdout=out, stderr=err, text=True, start_new_session=True))
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        for f in files:
            f.close()
    seconds = time.perf_counter() - t0
    outs = [(tmp / f"node{k}.out").read_text() for k in (0, 1)]
    errs = [(tmp / f"node{k}.err").read_text() for k in (0, 1)]
    return codes, outs, errs, seconds


def test_two_nodes_over_loopback_equal_one_node(reference: dict[str, Any], tmp_path: Path) -> None:
    """Two single-process nodes == one node with two processes, exactly; one summary, one
    metrics row per epoch, files from rank 0 only. A fresh data dir, shared by both nodes:
    the embedded sample is prepared on first use by rank 0 while the other node waits."""
    run, data = tmp_path / "run", tmp_path / "data"
    codes, outs, errs, seconds = _launch_nodes(tmp_path, run, _env(data))
    print(f"two-node loopback training: {seconds:.1f} s wall")
    assert codes == [0, 0], "\n".join(e[-3000:] for e in errs)

    a = load_file(str(reference["two"] / "last" / "model.safetensors"))
    b = load_file(str(run / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ from the one-node run: {different[:5]}"

    stdout = "".join(outs)
    assert stdout.count("evaluate with:") == 1 and stdout.count("run: ") == 1, stdout
    assert sorted(bool(o.strip()) for o in outs) == [False, True]  # the other node printed nothing
    assert "".join(errs).count("train_loss") == 1  # one epoch line on stderr, from rank 0
    rows, ref_rows = _rows(run), _rows(reference["two"])
    assert len(rows) == 1  # one line per epoch
    for key in ("epoch", "step", "lr", "train_loss", "val_loss"):
        assert rows[0][key] == ref_rows[0][key], key  # the same all-reduced sums
    meta = json.loads((run / "last" / "config.json").read_text())
    assert meta["provenance"]["world_size"] == 2
    assert len(list((data / "era5-uk-t2m").rglob("manifest.json"))) == 1  # one store, prepared on first use
    assert not any((tmp_path / "node0").iterdir()) and not any((tmp_path / "node1").iterdir())


def test_unreachable_rendezvous_is_one_network_error(tmp_path: Path) -> None:
    """Rank 1 of a job whose rank 0 never comes: `svqcast train` exits 4 with one line naming
    the address, after $SVQCAST_DIST_TIMEOUT seconds (not a native stack trace per retry, not
    a 30-minute hang), and prints nothing on stdout."""
    port = _free_port()
    env = dict(_env(tmp_path / "data"), WORLD_SIZE="2", RANK="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1",
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), SVQCAST_DIST_TIMEOUT="2")
    t0 = time.perf_counter()
    res = subprocess.run([SVQCAST, "train", *COMMON, "--run-dir", str(tmp_path / "run")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert time.perf_counter() - t0 < 60
    assert res.returncode == 4, res.stderr
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"error: rank 1 of 2 could not meet the other processes at 127.0.0.1:{port} within 2 s")
    assert not (tmp_path / "run").exists()


def test_launch_environment_that_does_not_add_up_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from svqcast.errors import UsageError
    from svqcast.training.distributed import init_distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(UsageError, match="RANK=2 .* do not fit together"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(UsageError, match="sets MASTER_ADDR and MASTER_PORT"):
        init_distributed("cpu")


def _turns_worker(rank: int, tmp: str) -> None:
    """Rank `rank` of three on two "nodes" (ranks 0 and 1 on one, rank 2 on the other): logs
    the order in which `in_turns` calls it, then what it raises when only rank 0's call fails."""
    from datetime import timedelta

    from svqcast.errors import DataError, SvqcastError
    from svqcast.training.distributed import DistEnv, in_turns

    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=3,
                            timeout=timedelta(seconds=60))
    env = DistEnv(rank=rank, local_rank=(0, 1, 0)[rank], world_size=3, local_world_size=(2, 2, 1)[rank])

    def note() -> int:
        with open(f"{tmp}/order", "a") as f:
            f.write(f"{rank}\n")
        return rank

    assert in_turns(env, note) == rank

    def fail_on_zero() -> None:
        if rank == 0:
            raise DataError("rank 0 cannot prepare")

    try:
        in_turns(env, fail_on_zero)
        outcome = "no error"
    except SvqcastError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    Path(f"{tmp}/outcome{rank}").write_text(outcome)
    dist.destroy_process_group()


def test_in_turns_goes_rank_zero_then_one_per_node_then_the_rest(tmp_path: Path) -> None:
    """Data preparation order across nodes, and a failure on rank 0 stopping every rank with
    one svqcast error instead of leaving the others in a barrier until the timeout."""
    import torch.multiprocessing as mp

    mp.spawn(_turns_worker, args=(str(tmp_path),), nprocs=3, join=True)
    assert (tmp_path / "order").read_text().split() == ["0", "2", "1"]
    assert (tmp_path / "outcome0").read_text() == "DataError: rank 0 cannot prepare"
    for rank in (1, 2):
        assert (tmp_path / f"outcome{rank}").read_text().startswith(
            f"SvqcastError: rank {rank}: another process of the job failed while opening the data")
