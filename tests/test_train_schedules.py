"""Learning-rate schedules against hand-computed tables, checked inside the real loop.

The lr column of metrics.csv is the rate of each epoch's first step, and a global
optimizer hook records lr and beta1 of every single step, so the tests see what Adam
actually used, not just what the schedule object says.
"""

from __future__ import annotations

import math

import pytest
from _train_standins import SyntheticWindows, TinyNet, one_thread, tiny_cfg
from torch.optim.optimizer import register_optimizer_step_pre_hook

from svqcast.training.loop import train
from svqcast.training.runlog import read_metrics
from svqcast.training.schedules import cosine_warmup_lr

# lr = 5e-3, epochs = 6, warmup 2 epochs from 1e-5, floor 1e-6 (timm, warmup_prefix=False):
#   e0: warmup start                                  1e-5
#   e1: 1e-5 + 1 * (5e-3 - 1e-5) / 2                  = 0.002505
#   e2: 1e-6 + 0.5 * 4.999e-3 * (1 + cos 60deg = 1.5)  = 0.00375025
#   e3: 1e-6 + 0.5 * 4.999e-3 * (1 + cos 90deg = 1)    = 0.0025005
#   e4: 1e-6 + 0.5 * 4.999e-3 * (1 + cos 120deg = .5)  = 0.00125075
#   e5: 1e-6 + 0.5 * 4.999e-3 * (1 - sqrt(3)/2)        = 0.000334869... + 1e-6 = 0.00033586950
#   e6 (past the cycle): lr_min                        1e-6
COSINE_TABLE = [1e-5, 0.002505, 0.00375025, 0.0025005, 0.00125075, 0.00033586950, 1e-6]


@pytest.fixture(autouse=True)
def _one_thread():
    with one_thread():
        yield


def test_cosine_closed_form_matches_hand_table() -> None:
    got = [cosine_warmup_lr(e, base_lr=5e-3, epochs=6, warmup_epochs=2) for e in range(7)]
    assert got == pytest.approx(COSINE_TABLE, rel=1e-8, abs=1e-12)


def test_cosine_without_warmup_starts_at_peak() -> None:
    assert cosine_warmup_lr(0, base_lr=1e-3, epochs=10, warmup_epochs=0) == pytest.approx(1e-3)


@pytest.fixture
def step_recorder():
    """Records (lr, beta1) of every Adam step, before it is taken."""
    seen: list[tuple[float, float]] = []

    def hook(opt, args, kwargs):
        g = opt.param_groups[0]
        seen.append((float(g["lr"]), float(g["betas"][0])))

    handle = register_optimizer_step_pre_hook(hook)
    yield seen
    handle.remove()


def test_cosine_in_loop_is_stepped_at_epoch_start(tmp_path, step_recorder) -> None:
    cfg = tiny_cfg(epochs=6, warmup_epochs=2, lr=5e-3, batch_size=4, patience=0)
    data = (SyntheticWindows(8), SyntheticWindows(4, offset=100))
    run = train(cfg, run_dir=tmp_path / "run", datasets=data, model_fn=TinyNet, progress="none")
    rows = read_metrics(run)
    assert [r["lr"] for r in rows] == pytest.approx(COSINE_TABLE[:6], rel=1e-8)
    # 2 steps per epoch, each at its epoch's rate; beta1 stays at Adam's 0.9
    per_step = [lr for lr, _ in step_recorder]
    assert per_step == pytest.approx([v for v in COSINE_TABLE[:6] for _ in range(2)], rel=1e-8)
    assert {b for _, b in step_recorder} == {0.9}


def _onecycle_by_hand(k: int) -> tuple[float, float]:
    """OneCycleLR(max_lr=1e-2, total_steps=20), defaults pct_start 0.3, div 25, cos anneal,
    final_div_factor 1e4, beta1 0.95 -> 0.85 -> 0.95. Phase 1 ends at step 0.3*20-1 = 5,
    phase 2 at step 19. anneal(a, b, p) = b + (a - b)/2 (1 + cos(pi p))."""
    lo, hi, end = 1e-2 / 25, 1e-2, 1e-2 / 25 / 1e4

    def anneal(a: float, b: float, p: float) -> float:
        return b + (a - b) / 2 * (1 + math.cos(math.pi * p))

    if k <= 5:
        p = k / 5
        return anneal(lo, hi, p), anneal(0.95, 0.85, p)
    p = (k - 5) / 14
    return anneal(hi, end, p), anneal(0.85, 0.95, p)


def test_onecycle_per_step_with_beta1(tmp_path, step_recorder) -> None:
    # hand anchors: step 0 = 1e-2/25, step 1 (cos 36deg = (1+sqrt5)/4) = 0.0013167184,
    # step 5 = peak 1e-2 with beta1 0.85, step 12 = midpoint of phase 2, step 19 = 4e-8
    anchors = {0: (4e-4, 0.95), 1: (0.0013167184, 0.94045085), 5: (1e-2, 0.85),
               12: (0.00500002, 0.90), 19: (4e-8, 0.95)}
    for k, (lr, b1) in anchors.items():
        assert _onecycle_by_hand(k) == pytest.approx((lr, b1), rel=1e-7)

    cfg = tiny_cfg(epochs=4, scheduler="onecycle", lr=1e-2, batch_size=4, patience=0)
    data = (SyntheticWindows(20), SyntheticWindows(4, offset=100))  # 5 steps per epoch
    run = train(cfg, run_dir=tmp_path / "run", datasets=data, model_fn=TinyNet, progress="none")
    assert len(step_recorder) == 20
    for k, (lr, b1) in enumerate(step_recorder):
        want_lr, want_b1 = _onecycle_by_hand(k)
        assert lr == pytest.approx(want_lr, rel=1e-9), k
        assert b1 == pytest.approx(want_b1, rel=1e-9), k
    assert [r["lr"] for r in read_metrics(run)] == pytest.approx(
        [_onecycle_by_hand(5 * e)[0] for e in range(4)], rel=1e-9
    )
