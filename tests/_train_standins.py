"""Tiny stand-ins with the model/dataset interfaces of the contracts (tests only).

They keep the loop's unit tests independent of the real model and data modules, and
tiny: a (B, T, C, H, W) -> (B, T, C, H, W) conv net with dropout (so RNG state matters for
resume) and an auxiliary loss, and a deterministic synthetic window dataset.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from svqcast.models.simvp import ModelOutput

TINY_CFG: dict[str, Any] = {
    "name": "tiny",
    "model": {"in_shape": [3, 1, 8, 8], "out_frames": 3},
    "data": {"dataset": "synthetic", "root": ""},
    "train": {
        "epochs": 4, "batch_size": 4, "val_batch_size": 5, "lr": 1e-2, "optimizer": "adam",
        "weight_decay": 0.0, "scheduler": "cosine", "warmup_epochs": 1, "warmup_lr": 1e-5,
        "min_lr": 1e-6, "final_div_factor": 1e4, "loss": "mae", "aux_loss_weight": 0.5,
        "patience": 10, "clip_grad": 0.0, "seed": 7, "num_workers": 0, "precision": "32",
        "deterministic": True, "device": "cpu", "max_steps_per_epoch": 0, "max_val_steps": 0,
        "tensorboard": False,
    },
}


def tiny_cfg(**train: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(TINY_CFG)
    cfg["train"].update(train)
    return cfg


class TinyNet(nn.Module):
    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__()
        t, c, _, _ = cfg["model"]["in_shape"]
        self.out_frames = cfg["model"]["out_frames"]
        self.conv1 = nn.Conv2d(t * c, 8, 3, padding=1)
        self.drop = nn.Dropout(0.2)
        self.conv2 = nn.Conv2d(8, self.out_frames * c, 3, padding=1)

    def forward_with_aux(self, x: torch.Tensor) -> ModelOutput:
        b, t, c, h, w = x.shape
        z = self.drop(torch.relu(self.conv1(x.reshape(b, t * c, h, w))))
        aux = z.pow(2).mean() * 1e-3 if self.training else z.new_zeros(())
        return ModelOutput(self.conv2(z).reshape(b, self.out_frames, c, h, w), aux)

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | ModelOutput:
        out = self.forward_with_aux(x)
        return out if return_aux else out.pred


class SyntheticWindows(Dataset):
    """Moving sine patterns; (x, y) of shapes (T_in, C, H, W), (T_out, C, H, W)."""

    def __init__(self, n: int, t_in: int = 3, t_out: int = 3, size: int = 8, offset: int = 0) -> None:
        self.n, self.t_in, self.t_out, self.size, self.offset = n, t_in, t_out, size, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(1000 + i + self.offset)
        phase = torch.rand(2, generator=g) * 6.28
        yy, xx = torch.meshgrid(torch.arange(self.size), torch.arange(self.size), indexing="ij")
        frames = [torch.sin(0.7 * xx + 0.5 * yy + phase[0] + 0.4 * k + phase[1])
                  for k in range(self.t_in + self.t_out)]
        clip = torch.stack(frames).unsqueeze(1).float()
        return clip[: self.t_in], clip[self.t_in :]


def one_thread():
    """Context for tests: one intra-op thread. On a shared 2-core machine two OpenMP
    threads per process thrash (measured 6-10x slower than one)."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    return ctx()
