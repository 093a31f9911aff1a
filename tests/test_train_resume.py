"""Resume is exact: 4 epochs in one go == 2 + resume + 2 (weights and metrics), on the
real small preset and on a stand-in with dropout; a mid-epoch interrupt resumes exactly;
early stopping follows the official rule."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from _train_standins import SyntheticWindows, TinyNet, one_thread, tiny_cfg
from safetensors.torch import load_file

from svqcast.training.loop import train
from svqcast.training.runlog import read_metrics
from svqcast.training.state import STATE_NAME, EarlyStopping

TIMING = {"seconds", "samples_per_s"}


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def _weights(path):
    return load_file(str(path / "model.safetensors"))


def _same_weights(a, b) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _metrics(run):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(run)]


def _data():
    return SyntheticWindows(16), SyntheticWindows(6, offset=100)


def test_resume_exact_standin_with_dropout(tmp_path) -> None:
    cfg = tiny_cfg(epochs=4)
    a = train(cfg, run_dir=tmp_path / "a", datasets=_data(), model_fn=TinyNet, progress="none")
    b = train(cfg, run_dir=tmp_path / "b", datasets=_data(), model_fn=TinyNet, progress="none", max_epochs=2)
    assert len(read_metrics(b)) == 2
    train(None, run_dir=tmp_path / "b", resume="auto", datasets=_data(), model_fn=TinyNet, progress="none")
    _same_weights(a / "last", b / "last")
    _same_weights(a / "best", b / "best")
    assert _metrics(a) == _metrics(b)
    assert len(_metrics(a)) == 4


class _InterruptingNet(TinyNet):
    """Sends SIGINT to its own process on the n-th training forward (a real Ctrl-C)."""

    calls = 0
    at = -1

    def forward(self, x, return_aux=False):
        if self.training:
            type(self).calls += 1
            if type(self).calls == type(self).at:
                os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x, return_aux)


def test_mid_epoch_interrupt_resumes_exactly(tmp_path) -> None:
    cfg = tiny_cfg(epochs=3)
    ref = train(cfg, run_dir=tmp_path / "ref", datasets=_data(), model_fn=TinyNet, progress="none")
    _InterruptingNet.calls, _InterruptingNet.at = 0, 6  # 4 steps per epoch: step 2 of epoch 2
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir=run, datasets=_data(), model_fn=_InterruptingNet, progress="none")
    state = torch.load(run / STATE_NAME, weights_only=True)
    assert state["progress"]["epoch"] == 1 and state["progress"]["batch_in_epoch"] == 2
    assert state["progress"]["step"] == 6
    train(None, run_dir=run, resume="auto", datasets=_data(), model_fn=TinyNet, progress="none")
    _same_weights(ref / "last", run / "last")
    assert _metrics(ref) == _metrics(run)


def test_new_run_refuses_existing_run_dir(tmp_path) -> None:
    from svqcast.errors import UsageError

    cfg = tiny_cfg(epochs=1)
    train(cfg, run_dir=tmp_path / "r", datasets=_data(), model_fn=TinyNet, progress="none")
    with pytest.raises(UsageError, match="`resume` auto"):
        train(cfg, run_dir=tmp_path / "r", datasets=_data(), model_fn=TinyNet, progress="none")


def test_early_stopping_rule() -> None:
    es = EarlyStopping(patience=2)
    assert es.update(1.0, 0)  # first value is best
    assert not es.update(1.5, 1) and es.bad_epochs == 1
    assert es.update(1.0, 2) and es.bad_epochs == 1 and es.best_epoch == 2  # tie: best/ updated, counter kept
    assert es.update(0.5, 3) and es.bad_epochs == 0  # strict improvement resets
    assert not es.update(0.7, 4) and not es.should_stop
    assert not es.update(0.6, 5) and es.should_stop  # 2 epochs strictly above 0.5
    assert EarlyStopping(patience=0).should_stop is False


class _Flipped(SyntheticWindows):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x, -y  # fitting the training targets makes validation worse


def test_loop_stops_early_on_validation(tmp_path) -> None:
    cfg = tiny_cfg(epochs=20, patience=2, warmup_epochs=0, scheduler="none", lr=3e-2)
    data = (SyntheticWindows(16), _Flipped(6, offset=0))
    run = train(cfg, run_dir=tmp_path / "r", datasets=data, model_fn=TinyNet, progress="none")
    rows = read_metrics(run)
    assert len(rows) < 20
    best = min(r["val_loss"] for r in rows)
    tail = rows[-2:]
    assert all(r["val_loss"] > best for r in tail)  # the last `patience` epochs were worse
    state = torch.load(run / STATE_NAME, weights_only=True)
    assert state["progress"]["finished"] and "early stopping" in state["progress"]["stop_reason"]
    # best/ holds the weights of the best epoch, last/ those of the final one
    import json

    meta = json.loads((run / "best" / "config.json").read_text())
    assert meta["provenance"]["val_loss"] == best
    assert meta["data_spec"] == {}  # the stand-in has no spec


def test_real_preset_resume_exact(tmp_path, monkeypatch) -> None:
    """The small era5-uk-t2m preset, shrunk further with --set style overrides."""
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    over = {
        "model.hid_T": 16, "model.N_T": 2, "model.mlp_ratio": 2.0, "model.hid_S": 8,
        "train.batch_size": 2, "train.val_batch_size": 4, "train.max_steps_per_epoch": 2,
        "train.max_val_steps": 1, "train.epochs": 4, "train.warmup_epochs": 1,
    }
    kw = dict(progress="none", deterministic=True)
    a = train("era5-uk-t2m_gsta_svq", over, run_dir=tmp_path / "a", **kw)
    b = train("era5-uk-t2m_gsta_svq", over, run_dir=tmp_path / "b", max_epochs=2, **kw)
    train(None, run_dir=tmp_path / "b", resume="auto", progress="none")
    _same_weights(a / "last", b / "last")
    assert _metrics(a) == _metrics(b)
    meta = __import__("json").loads((a / "last" / "config.json").read_text())
    assert meta["data_spec"]["dataset"] == "era5-uk-t2m"
    assert meta["provenance"]["seed"] == 42 and meta["provenance"]["data_hash"]


def test_bf16_rich_progress_and_csv(tmp_path, capsys) -> None:
    cfg = tiny_cfg(epochs=2, precision="bf16")
    from svqcast.cli.progress import RichProgress

    run = train(cfg, run_dir=tmp_path / "r", datasets=_data(), model_fn=TinyNet, progress=RichProgress())
    rows = read_metrics(run)
    assert len(rows) == 2 and all(r["train_loss"] == r["train_loss"] for r in rows)  # finite, not NaN
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "train_loss" in err  # Rich writes to stderr
    import csv

    with open(run / "metrics.csv") as fh:
        table = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in table] == [0, 1]
    assert set(table[0]) == {"epoch", "step", "lr", "train_loss", "train_aux_loss", "val_loss",
                             "best_val_loss", "is_best", "seconds", "samples_per_s"}
    assert float(table[0]["train_aux_loss"]) > 0  # the stand-in's aux loss reached the loop


@pytest.mark.parametrize(
    "key,value,match",
    [("scheduler", "step", "train.scheduler"), ("loss", "l3", "train.loss"),
     ("precision", "fp16", "train.precision"), ("optimizer", "sgd", "train.optimizer")],
)
def test_bad_choices_are_usage_errors(tmp_path, key, value, match) -> None:
    from svqcast.errors import UsageError

    with pytest.raises(UsageError, match=match):
        train(tiny_cfg(**{key: value}), run_dir=tmp_path / "r", datasets=_data(), model_fn=TinyNet, progress="none")


def test_tensorboard_needs_its_extra(tmp_path) -> None:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        from svqcast.errors import MissingExtraError

        with pytest.raises(MissingExtraError, match=r"svqcast\[tensorboard\]"):
            train(tiny_cfg(tensorboard=True), run_dir=tmp_path / "r", datasets=_data(), model_fn=TinyNet,
                  progress="none")
    else:  # pragma: no cover
        run = train(tiny_cfg(tensorboard=True, epochs=1), run_dir=tmp_path / "r", datasets=_data(),
                    model_fn=TinyNet, progress="none")
        assert any((run / "tensorboard").iterdir())


def test_loader_workers_persist_across_epochs_and_change_nothing(tmp_path, monkeypatch) -> None:
    """With train.num_workers > 0 each split's worker pool starts once per run (not once
    per epoch), and the weights equal those of a run without workers."""
    from torch.utils.data import dataloader

    starts = []
    original = dataloader._MultiProcessingDataLoaderIter.__init__

    def spy(self, loader):
        starts.append(loader)
        original(self, loader)

    monkeypatch.setattr(dataloader._MultiProcessingDataLoaderIter, "__init__", spy)
    plain = train(tiny_cfg(epochs=3), run_dir=tmp_path / "a", datasets=_data(), model_fn=TinyNet, progress="none")
    assert starts == []
    workers = train(tiny_cfg(epochs=3, num_workers=1), run_dir=tmp_path / "b", datasets=_data(), model_fn=TinyNet,
                    progress="none")
    assert len(starts) == 2  # one pool for training, one for validation, over 3 epochs
    _same_weights(plain / "last", workers / "last")
    assert _metrics(plain) == _metrics(workers)


def test_host_syncs_only_at_log_points(tmp_path, monkeypatch) -> None:
    """40 steps per epoch: the running losses reach the host at 10 log points and at the
    end of the epoch, not after every step."""
    from svqcast.training import loop

    calls = []
    original = loop._sync_and_check

    def spy(t, sums, checked):
        calls.append(t.progress.batch_in_epoch)
        return original(t, sums, checked)

    monkeypatch.setattr(loop, "_sync_and_check", spy)
    cfg = tiny_cfg(epochs=1, batch_size=1)
    train(cfg, run_dir=tmp_path / "r", datasets=(SyntheticWindows(40), SyntheticWindows(6, offset=100)),
          model_fn=TinyNet, progress="none")
    assert calls == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 40]
