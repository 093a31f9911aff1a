"""SVQ code-usage diagnostics collected while `svqcast evaluate` runs the model.

`QuantizerProbe` hooks every quantizer of a model: it averages the diagnostics the model
returns with each batch and, for SVQ-like quantizers, computes code-usage statistics of their
weights on the latents of the first batch (docs/evaluation.md, "SVQ diagnostics").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from svqcast.models.quantizers.base import Quantizer
from svqcast.models.quantizers.diagnostics import HasCodeWeights, svq_diagnostics

#: SVQ latents captured for code-usage diagnostics: the first batch, and at most this many
#: weight entries (tokens x N) of it, i.e. the first latent frames (the paper's Fig. 5/6
#: statistics are per-batch statistics as well)
DIAG_BATCHES = 1
DIAG_MAX_ENTRIES = 1 << 25


class QuantizerProbe:
    """Collects SVQ diagnostics: the diagnostics the model returns with each batch (mean
    over batches) and, for SVQ-like quantizers, code-usage statistics of their weights."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.quantizers = [m for m in model.modules() if isinstance(m, Quantizer)]
        self.latents: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(self.quantizers))}
        self.batches = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.handles = []
        for i, q in enumerate(self.quantizers):
            self.handles.append(q.register_forward_pre_hook(self._hook(i)))

    def _hook(self, i: int) -> Any:
        def fn(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if self.batches < DIAG_BATCHES and isinstance(module, HasCodeWeights):
                z = args[0].detach()
                per_frame = int(z[0].numel() // z.shape[1]) * int(module.codebook_size)
                frames = max(1, DIAG_MAX_ENTRIES // max(per_frame, 1))
                self.latents[i].append(z[:frames])

        return fn

    def after_batch(self, diagnostics: Mapping[str, Any]) -> None:
        self.batches += 1
        for key, value in diagnostics.items():
            try:
                v = float(torch.as_tensor(value).float().mean())
            except (TypeError, ValueError):
                continue
            self.sums[key] = self.sums.get(key, 0.0) + v
            self.counts[key] = self.counts.get(key, 0) + 1

    def report(self) -> dict[str, Any] | None:
        for h in self.handles:
            h.remove()
        if not self.quantizers:
            return None
        out: dict[str, Any] = {
            "quantizers": [type(q).__name__ for q in self.quantizers],
            "model_diagnostics": {k: self.sums[k] / self.counts[k] for k in self.sums},
        }

        for i, q in enumerate(self.quantizers):
            zs = self.latents[i]
            if not zs or not isinstance(q, HasCodeWeights):
                continue
            stats = [svq_diagnostics(q, z) for z in zs]
            keys = stats[0].keys()
            out[f"code_usage_{i}" if len(self.quantizers) > 1 else "code_usage"] = {
                k: float(np.mean([s[k] for s in stats])) for k in keys
            }
        return out


__all__ = ["DIAG_BATCHES", "DIAG_MAX_ENTRIES", "QuantizerProbe"]
