"""Fast paths for training and inference: bf16 autocast, channels_last, torch.compile.

The training loop and `svqcast predict` call three functions and know nothing else:

* `prepare_model(model, precision, channels_last, device)`: puts the convolutional weights
  in channels_last memory format where that was measured to be faster, never casts
  weights (fp32 master weights: autocast computes in bf16 from fp32 parameters, the
  optimizer updates fp32).
* `autocast_context(device, precision)`: `torch.autocast(bfloat16)` for `"bf16"`, a no-op
  for `"32"` (so fp32 stays bit-for-bit what it was). The loss and metrics are computed
  outside it, in fp32, by the caller (`pred.float()`).
* `compile_model(net, enabled)`: `torch.compile`, off by default (the first call pays the
  compilation, see docs/training.md).

Why a table instead of always channels_last: it is a layout, not a numerical change, but
its speed depends on the operator mix and on the hardware. `benchmarks/train_speed.py`
(`families` part) measures every translator family with and without it, in fp32 and bf16;
docs/benchmarks.md has the table. In fp32, "auto" never switches it on, so the default
fp32 path stays exactly what it was (channels_last changes the convolution kernels, hence
the float rounding); `on` opts in. Under bf16 on hardware with native bf16, NHWC is
oneDNN's and cuDNN's preferred layout for bf16 convolutions, so "auto" uses it for the
convolutional families (not measured by this project: its benchmark machine has no native
bf16); on hardware without native bf16 the set is what the families benchmark measured.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import nn

from svqcast.errors import UsageError

PRECISIONS = ("32", "bf16")
CHANNELS_LAST_CHOICES = ("auto", "on", "off")

#: Translator families for which "auto" turns channels_last on, by (precision, native bf16).
_CONV_FAMILIES = frozenset({"gsta", "tau", "van", "moganet", "convnext", "hornet", "convmixer", "incepu", "poolformer"})
CHANNELS_LAST_WINS: dict[tuple[str, bool], frozenset[str]] = {
    ("bf16", True): _CONV_FAMILIES,
    ("bf16", False): frozenset({"incepu", "swin", "vit", "poolformer", "uniformer", "mlpmixer"}),  # docs/benchmarks.md
    ("32", True): frozenset(),  # fp32 default path stays unchanged
    ("32", False): frozenset(),
}


def check_precision(precision: str) -> str:
    """The precision as a canonical string, or a UsageError naming the choices."""
    value = {"fp32": "32", "float32": "32", "32-true": "32", "bfloat16": "bf16", "bf16-mixed": "bf16"}.get(
        str(precision).lower(), str(precision).lower()
    )
    if value not in PRECISIONS:
        raise UsageError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}; use 32 or bf16")
    return value


def native_bf16(device: torch.device | str) -> bool:
    """Whether `device` computes bf16 natively: a CUDA GPU that supports it, or a CPU with
    avx512_bf16 / AMX (oneDNN's bf16 kernels). Elsewhere bf16 is emulated and slower."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if dev.type == "cpu":
        with contextlib.suppress(Exception):
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def autocast_context(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on `device` for precision "bf16"; nothing for "32"."""
    if check_precision(precision) == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def use_channels_last(model: nn.Module, precision: str, setting: str | bool, device: torch.device | str) -> bool:
    """Decide channels_last: "on"/"off" (or a bool) as given; "auto" from the measured table."""
    if isinstance(setting, bool):
        return setting
    choice = str(setting).lower()
    if choice in ("true", "1", "yes"):
        choice = "on"
    elif choice in ("false", "0", "no"):
        choice = "off"
    if choice not in CHANNELS_LAST_CHOICES:
        raise UsageError(f"channels_last '{setting}' is not one of {', '.join(CHANNELS_LAST_CHOICES)}")
    if choice != "auto":
        return choice == "on"
    family = str(getattr(model, "translator_name", "") or "")
    return family in CHANNELS_LAST_WINS[(check_precision(precision), native_bf16(device))]


def prepare_model(
    model: nn.Module, precision: str = "32", channels_last: str | bool = "auto", device: torch.device | str = "cpu"
) -> nn.Module:
    """Make `model` ready for `precision` on `device`, in place; returns it.

    Weights stay fp32 (master weights). bf16 on hardware without native bf16 works but is
    much slower than fp32: a warning says so once. channels_last is applied per the table
    above (or as forced), which changes strides only, never values.
    """
    prec = check_precision(precision)
    if prec == "bf16" and not native_bf16(device):
        warnings.warn(
            f"precision bf16 on {torch.device(device).type}: this hardware has no native bf16 "
            "(CPU without avx512_bf16/AMX, or an old GPU), so bf16 is emulated and slower than fp32; "
            "use precision 32 here",
            RuntimeWarning,
            stacklevel=2,
        )
    if use_channels_last(model, prec, channels_last, device):
        # Module.to takes memory_format (documented) but torch's overloads omit it
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def compile_model(net: nn.Module, enabled: bool, *, mode: str | None = None) -> nn.Module:
    """`torch.compile(net)` when enabled (the caller keeps the original module for
    `state_dict`, so checkpoints never carry `_orig_mod.` prefixes); `net` otherwise."""
    if not enabled:
        return net
    if not hasattr(torch, "compile"):
        raise UsageError("`compile` needs torch >= 2.0; upgrade torch or drop `compile`")
    return torch.compile(net, mode=mode)  # type: ignore[return-value]


def configure_forecaster(
    fc: Any, *, batch_size: int | None = None, compile: bool = False, channels_last: str | bool = "auto"
) -> Any:
    """Inference settings of a `Forecaster`, in place: how many initialisations go through
    one network call (the roll-out advances all of them together), the layout of its
    network (fp32: "auto" keeps the default layout, so forecasts stay bit-identical), and
    optionally `torch.compile`. Returns `fc`."""
    if batch_size is not None:
        if int(batch_size) < 1:
            raise UsageError(f"`batch_size` must be at least 1, got {batch_size}")
        fc.batch_size = int(batch_size)
    param = next(iter(fc.net.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    prepare_model(fc.net, "32", channels_last, device)
    fc.net = compile_model(fc.net, compile)
    return fc
