"""FLOP counting in the fvcore convention, without fvcore.

Hand-written on purpose: fvcore is unmaintained, traces with the JIT and pulls iopath/yacs; the
paper's Table 12 numbers need its exact convention, which this module reproduces (fvcore is a test oracle).

The paper's Table 12 (and OpenSTL) reports `fvcore.nn.FlopCountAnalysis(model.eval(),
torch.ones(1, T, C, H, W)).total()`. fvcore counts one multiply-add as one flop for
conv / linear / matmul / mm / bmm / addmm / einsum, plus rough costs for a few other ops
(its default handles): batch_norm 2 x numel in eval (5 x numel when training), group_norm
and layer_norm 5 x numel (4 without affine), adaptive_avg_pool2d numel(input),
upsample_nearest2d numel(output), upsample_bilinear2d 4 x numel(output). Everything
else (elementwise ops, softmax, avg_pool2d, pixel_shuffle, ...) is free.

We intercept the same operations at the `torch.nn.functional` / `torch` level with a
`TorchFunctionMode` (which is also where fvcore's JIT trace sees them: `aten::linear`,
`aten::matmul`, `aten::batch_norm` ...). Inputs may live on the meta device, so full-size
models are counted without allocating or computing anything. fvcore is used only by the
tests, as an oracle.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import prod
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _conv(args: tuple, kwargs: dict, out: Any) -> int:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    batch = _shape(x)[0] if x.ndim == w.ndim else 1
    return batch * prod(_shape(w)) * prod(_shape(out)[-(w.ndim - 2) :])


def _linear(args: tuple, kwargs: dict, out: Any) -> int:
    x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
    return prod(_shape(x)) * _shape(w)[0]


def _matmul(args: tuple, kwargs: dict, out: Any) -> int:
    a, b = args[0], args[1] if len(args) > 1 else kwargs["other"]
    if b.ndim == 1:
        return prod(_shape(a))
    return prod(_shape(a)) * _shape(b)[-1]


def _sdpa(args: tuple, kwargs: dict, out: Any) -> int:
    """scaled_dot_product_attention = the two matmuls fvcore counts in the explicit path:
    q @ k^T (batch x L x E x S) and softmax @ v (batch x L x S x Ev)."""
    q, k, v = (args[i] if len(args) > i else kwargs[n] for i, n in enumerate(("query", "key", "value")))
    rows = prod(_shape(q)[:-1])
    return rows * _shape(k)[-2] * (_shape(q)[-1] + _shape(v)[-1])


def _addmm(args: tuple, kwargs: dict, out: Any) -> int:
    a, b = args[1], args[2]
    return prod(_shape(a)) * _shape(b)[-1]


def _einsum(args: tuple, kwargs: dict, out: Any) -> int:
    """fvcore: two equations are bmm; anything else costs numpy's optimal-path FLOP count / 2."""
    equation = args[0]
    operands = args[1:]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    eq = equation.replace(" ", "")
    shapes = [_shape(o) for o in operands]
    letters = sorted(set(c for c in eq if c.isalpha()))
    mapping = {c: chr(ord("a") + i) for i, c in enumerate(letters)}
    canon = "".join(mapping.get(c, c) for c in eq)
    if canon == "abc,abd->acd":
        n, c, t = shapes[0]
        return n * c * t * shapes[1][-1]
    if canon == "abc,adc->adb":
        n, t, g = shapes[0]
        return n * t * g * shapes[1][1]
    path = np.einsum_path(eq, *[np.zeros(s) for s in shapes], optimize="optimal")[1]
    for line in path.split("\n"):
        if "optimized flop" in line.lower():
            return int(float(line.split(":")[-1]) / 2)
    raise RuntimeError(f"cannot count einsum '{equation}'")  # pragma: no cover


def _batch_norm(bound: inspect.BoundArguments) -> int:
    a = bound.arguments
    numel = prod(_shape(a["input"]))
    affine = a.get("weight") is not None
    if a.get("training", False):
        return numel * (5 if affine else 4)
    return numel * (2 if affine else 1)


def _affine_norm(bound: inspect.BoundArguments) -> int:
    a = bound.arguments
    return prod(_shape(a["input"])) * (5 if a.get("weight") is not None else 4)


def _adaptive_pool(bound: inspect.BoundArguments) -> int:
    return prod(_shape(bound.arguments["input"]))


def _interpolate(bound: inspect.BoundArguments, out: Any) -> int:
    mode = bound.arguments.get("mode", "nearest")
    if mode == "nearest" and out.ndim == 4:
        return prod(_shape(out))
    if mode == "bilinear":
        return 4 * prod(_shape(out))
    return 0  # fvcore has no default handle for the other modes


def _string_padding(args: tuple, kwargs: dict) -> bool:
    """conv2d(x, w, b, stride, padding, ...) with padding='same'/'valid'."""
    padding = args[4] if len(args) > 4 else kwargs.get("padding")
    return isinstance(padding, str)


# Builtins take positional tensors; Python-level functionals are bound to their signature.
_POSITIONAL: dict[Any, tuple[str, Callable[[tuple, dict, Any], int]]] = {
    torch.conv1d: ("conv", _conv),
    torch.conv2d: ("conv", _conv),
    torch.conv3d: ("conv", _conv),
    F.linear: ("linear", _linear),
    torch.matmul: ("matmul", _matmul),
    torch.Tensor.matmul: ("matmul", _matmul),
    torch.Tensor.__matmul__: ("matmul", _matmul),
    torch.mm: ("matmul", _matmul),
    torch.Tensor.mm: ("matmul", _matmul),
    torch.bmm: ("bmm", _matmul),
    torch.Tensor.bmm: ("bmm", _matmul),
    torch.addmm: ("addmm", _addmm),
    torch.Tensor.addmm: ("addmm", _addmm),
    torch.einsum: ("einsum", _einsum),
    F.scaled_dot_product_attention: ("matmul", _sdpa),
}
_BOUND: dict[Any, tuple[str, Callable[..., int]]] = {
    F.batch_norm: ("batch_norm", _batch_norm),
    F.group_norm: ("group_norm", _affine_norm),
    F.layer_norm: ("layer_norm", _affine_norm),
    F.instance_norm: ("instance_norm", _affine_norm),
    F.adaptive_avg_pool2d: ("adaptive_avg_pool2d", _adaptive_pool),
}
_SIGNATURES = {fn: inspect.signature(fn) for fn in [*_BOUND, F.interpolate]}


class FlopCountMode(TorchFunctionMode):
    """Accumulates fvcore-convention flops of every op called inside the context.

    `scope` (a list of module names, maintained by hooks) attributes each op to the
    outermost named module being run, for a per-module breakdown.
    """

    def __init__(self, fvcore_quirks: bool = True) -> None:
        super().__init__()
        self.fvcore_quirks = fvcore_quirks
        self.total = 0
        self.by_op: Counter[str] = Counter()
        self.by_module: Counter[str] = Counter()
        self.scope: list[str] = []

    def _add(self, op: str, flops: int) -> None:
        if flops:
            self.total += flops
            self.by_op[op] += flops
            self.by_module[self.scope[0] if self.scope else "(root)"] += flops

    def __torch_function__(self, func: Any, types: Sequence[type], args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _POSITIONAL:
            op, handler = _POSITIONAL[func]
            if op == "conv" and self.fvcore_quirks and _string_padding(args, kwargs):
                return out  # traced as aten::_convolution_mode, which fvcore has no handle for
            self._add(op, handler(args, kwargs, out))
        elif func in _BOUND:
            op, bound_handler = _BOUND[func]
            self._add(op, bound_handler(_SIGNATURES[func].bind(*args, **kwargs)))
        elif func is F.interpolate:
            self._add("upsample", _interpolate(_SIGNATURES[func].bind(*args, **kwargs), out))
        return out


@dataclass
class FlopReport:
    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)


@contextmanager
def _module_scopes(model: nn.Module, mode: FlopCountMode) -> Iterator[None]:
    handles = []
    for name, child in model.named_children():

        def pre(_m: nn.Module, _inp: Any, name: str = name) -> None:
            mode.scope.append(name)

        def post(_m: nn.Module, _inp: Any, _out: Any) -> None:
            mode.scope.pop()

        handles.append(child.register_forward_pre_hook(pre))
        handles.append(child.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def count_flops(model: nn.Module, *inputs: Any, eval_mode: bool = True, fvcore_quirks: bool = True) -> FlopReport:
    """Flops of one `model(*inputs)` call, counted like fvcore (`model.eval()` by default,
    as OpenSTL does). Inputs may be meta tensors when the model lives on the meta device.

    `fvcore_quirks=True` also reproduces fvcore's blind spot: a convolution with a string
    padding (`padding="same"`, used by ConvMixer) is traced as `aten::_convolution_mode`,
    which fvcore does not count. `False` counts it (the true cost)."""
    was_training = model.training
    if eval_mode:
        model.eval()
    mode = FlopCountMode(fvcore_quirks)
    try:
        with torch.no_grad(), _module_scopes(model, mode), mode:
            model(*inputs)
    finally:
        model.train(was_training)
    return FlopReport(mode.total, dict(mode.by_op), dict(mode.by_module))

