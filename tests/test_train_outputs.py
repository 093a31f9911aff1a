"""The loop with the output-length adaptations of the spec (KTH 10 -> 20 autoregressive,
KittiCaltech 10 -> 1), on the embedded real KTH clips, and `evaluate` on video data (SSIM
and PSNR on clipped predictions, checked against scikit-image)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _train_standins import one_thread

import svqcast
from svqcast.training.runlog import read_metrics

skimage_metrics = pytest.importorskip("skimage.metrics")


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path_factory.getbasetemp() / "kth-data"))
    with one_thread():
        yield


def _over(out_frames: int) -> dict:
    return {
        "model.in_shape": [10, 1, 32, 32], "model.out_frames": out_frames, "model.hid_S": 8,
        "model.hid_T": 16, "model.N_T": 2, "data.dataset": "kth-walking", "train.batch_size": 2,
        "train.max_steps_per_epoch": 2, "train.max_val_steps": 1, "train.warmup_epochs": 0,
    }


@pytest.mark.parametrize("out_frames", [20, 1])
def test_train_and_evaluate_with_output_adaptation(tmp_path, out_frames) -> None:
    run = svqcast.train("kth_incepu_svq", _over(out_frames), run_dir=tmp_path / "run", max_epochs=1,
                        progress="none")
    row = read_metrics(run)[0]
    assert row["step"] == 2 and np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    res = svqcast.evaluate(run)  # the API function (its module is svqcast.verify.evaluation)
    assert res["kind"] == "video" and res["lead_times"] == list(range(1, out_frames + 1))
    model = res["scores"]["model"]
    assert {"mse", "mae", "ssim", "psnr"} <= set(model)

    # independent recomputation: OpenSTL per-frame sums, SSIM (skimage) and PSNR on clipped predictions
    from svqcast.data import get_split_dataset
    from svqcast.zoo.checkpoint import load_checkpoint

    net, _ = load_checkpoint(run / "best")
    ds = get_split_dataset("kth-walking", "test", t_in=10, t_out=out_frames)
    assert res["samples"] == len(ds)
    sq = ab = ssim = psnr = 0.0
    frames = 0
    with torch.no_grad():
        for i in range(len(ds)):
            x, y = ds[i]
            p = net(x[None])[0].double().numpy()
            t = y.double().numpy()
            assert p.shape == t.shape == (out_frames, 1, 32, 32)
            pc = np.clip(p, 0, 1)
            for f in range(out_frames):
                sq += ((p[f] - t[f]) ** 2).sum()
                ab += np.abs(p[f] - t[f]).sum()
                ssim += skimage_metrics.structural_similarity(pc[f, 0], t[f, 0], data_range=2.0)
                psnr += 20 * np.log10(1 / np.sqrt(((pc[f] - t[f]) ** 2).mean()))
                frames += 1
    assert model["mse"] == pytest.approx(sq / frames, rel=1e-5)
    assert model["mae"] == pytest.approx(ab / frames, rel=1e-5)
    assert model["ssim"] == pytest.approx(ssim / frames, rel=1e-5)
    assert model["psnr"] == pytest.approx(psnr / frames, rel=1e-5)
    assert callable(svqcast.train)
