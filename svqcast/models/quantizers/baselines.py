"""VQ baselines of the paper (Tables 6, 11, 13) behind svqcast's quantizer interface.

The modules come from lucidrains' vector-quantize-pytorch (https://github.com/lucidrains/
vector-quantize-pytorch), an optional extra: `pip install 'svqcast[vq]'`. Importing this
file never imports the library; building a baseline without it raises MissingExtraError.

Settings are the official configs' (`configs/weather/t2m_5_625/ablation_vq/*.py`,
docs/reference/official-behaviour.md §4.1),
not Table 11's where the two differ (VQ codebook 1024 not 512, GRVQ groups 2, RVQ without
stochastic sampling). The official code pinned vector-quantize-pytorch 1.12.5; newer
releases changed some defaults, which we pin back to the 1.12.5 behaviour:

* `rotation_trick=False` for the VectorQuantize family: 1.12.5 used the plain
  straight-through estimator (the rotation trick became the default later);
* `commitment_loss_weight=0.25` for LFQ / ResidualLFQ: the 1.12.5 default (now 0).

Each preset can override any library keyword in `[model.vq_options]`.

The library's Euclidean codebooks run through `fast_codebook.FastCodebook` where their
configuration allows: the same indices, outputs and EMA updates, about 8x less time at the
study's ERA5 size (see that module and `benchmarks/vq_bench.py`).

Input to the library is the token sequence (BT, H'W', C'), as in the official wrapper
(LFQ got the NCHW map there, which it flattens to the same tokens). The auxiliary loss is
the library's loss reduced as the official wrapper reduced it (mean over residual layers
and groups), returned only in training mode: in eval it is exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from svqcast.config_schema import ModelConfig
from svqcast.errors import MissingExtraError, UsageError
from svqcast.models.quantizers.base import Quantizer, QuantizerOutput
from svqcast.models.quantizers.diagnostics import index_perplexity, index_usage
from svqcast.models.quantizers.fast_codebook import install_fast_codebooks
from svqcast.models.quantizers.registry import register_quantizer

#: vq_type -> (library class, the official config's keyword arguments without `dim`)
BASELINE_SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "vq": ("VectorQuantize", {"codebook_size": 1024, "decay": 0.8, "commitment_weight": 1.0}),
    "rvq": ("ResidualVQ", {"num_quantizers": 8, "codebook_size": 1024, "shared_codebook": True}),
    "grvq": (
        "GroupedResidualVQ",
        {"num_quantizers": 8, "codebook_size": 1024, "groups": 2, "shared_codebook": True},
    ),
    "mhvq": (
        "VectorQuantize",
        {"codebook_dim": 32, "heads": 8, "separate_codebook_per_head": False, "codebook_size": 1024},
    ),
    "rfsq": ("ResidualFSQ", {"levels": [8, 5, 5, 3], "num_quantizers": 8}),
    "lfq": ("LFQ", {"codebook_size": 8192, "entropy_loss_weight": 0.1, "diversity_gamma": 1.0}),
    "rlfq": ("ResidualLFQ", {"codebook_size": 256, "num_quantizers": 8}),
}

#: defaults of vector-quantize-pytorch 1.12.5 that later releases changed
_COMPAT_DEFAULTS: dict[str, dict[str, Any]] = {
    "VectorQuantize": {"rotation_trick": False},
    "ResidualVQ": {"rotation_trick": False},
    "GroupedResidualVQ": {"rotation_trick": False},
    "LFQ": {"commitment_loss_weight": 0.25},
    "ResidualLFQ": {"commitment_loss_weight": 0.25},
    "ResidualFSQ": {},
}


def _library() -> Any:
    try:
        import vector_quantize_pytorch
    except ImportError:
        raise MissingExtraError("the VQ baselines", "vq", "vector-quantize-pytorch") from None
    return vector_quantize_pytorch


def _codebook_size(kind: str, kwargs: Mapping[str, Any]) -> int:
    if kind == "rfsq":
        return int(math.prod(int(v) for v in kwargs["levels"]))
    return int(kwargs["codebook_size"])


class VQBaseline(Quantizer):
    """One vector-quantize-pytorch quantizer, tokens in and tokens out.

    The library module is `self.lib`, so its state-dict keys are `lib.<library keys>`.
    """

    def __init__(self, kind: str, dim: int, options: Mapping[str, Any] | None = None,
                 fast: bool = True) -> None:
        super().__init__()
        if kind not in BASELINE_SETTINGS:
            raise UsageError(f"unknown VQ baseline '{kind}'; choose one of {sorted(BASELINE_SETTINGS)}")
        lib = _library()
        cls_name, official = BASELINE_SETTINGS[kind]
        kwargs: dict[str, Any] = {**_COMPAT_DEFAULTS[cls_name], **official, **dict(options or {})}
        kwargs.pop("dim", None)
        self.kind = kind
        self.dim = dim
        self.options = dict(kwargs)
        self.codebook_size = _codebook_size(kind, kwargs)
        try:
            self.lib: nn.Module = getattr(lib, cls_name)(dim=dim, **kwargs)
        except TypeError as exc:
            raise UsageError(f"model.vq_options for '{kind}': {exc}") from None
        self.fast_codebooks = 0
        if fast:  # same numbers as the library's forward, without the (tokens x codes) tensors

            self.fast_codebooks = install_fast_codebooks(self.lib)

    def _run(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> quantized tokens, indices (tokens, layers), loss (scalar, before the eval rule)."""
        out = self.lib(tokens)
        if self.kind == "rfsq":  # (quantized, indices): FSQ has no loss
            quantized, indices = out[0], out[1]
            loss = tokens.new_zeros(())
        else:
            quantized, indices, loss = out[0], out[1], out[2]
            loss = loss.float().mean().to(tokens.dtype)  # mean over layers (and groups)
        if self.kind == "grvq":  # (groups, b, n, q) -> (b, n, groups * q)
            indices = indices.permute(1, 2, 0, 3).reshape(*indices.shape[1:3], -1)
        if self.kind == "mhvq" and not self.options.get("separate_codebook_per_head", False):
            indices = indices.reshape(-1, 1)  # heads share one codebook: pool their choices
        return quantized, indices.reshape(-1, indices.shape[-1] if indices.dim() > 2 else 1), loss

    def forward(self, z: torch.Tensor) -> QuantizerOutput:
        bt, c, h, w = z.shape
        tokens = z.permute(0, 2, 3, 1).reshape(bt, h * w, c)
        quantized, indices, loss = self._run(tokens)
        q = quantized.reshape(bt, h, w, c).permute(0, 3, 1, 2)
        aux = loss if self.training else self.zero_loss(z)
        perp = index_perplexity(indices, self.codebook_size)
        diagnostics = {
            "perplexity": perp.mean().to(z.device),
            "codebook_usage": index_usage(indices, self.codebook_size).mean().to(z.device),
        }
        return QuantizerOutput(q, aux, diagnostics)

    @torch.no_grad()
    def code_indices(self, z: torch.Tensor) -> torch.Tensor:
        """Selected code indices (tokens, layers) for analysis; no EMA update is made."""
        was_training = self.training
        self.eval()
        try:
            bt, c, h, w = z.shape
            return self._run(z.permute(0, 2, 3, 1).reshape(bt, h * w, c))[1]
        finally:
            self.train(was_training)

    def extra_repr(self) -> str:
        return (f"kind={self.kind}, dim={self.dim}, codebook_size={self.codebook_size}, "
                f"fast_codebooks={self.fast_codebooks}")


def _builder(kind: str):
    def build(m: ModelConfig, dim: int) -> Quantizer:
        return VQBaseline(kind, dim, m.vq_options)  # a table: the schema checked it

    build.__name__ = f"build_{kind}"
    return build


for _kind in BASELINE_SETTINGS:
    register_quantizer(_kind)(_builder(_kind))
