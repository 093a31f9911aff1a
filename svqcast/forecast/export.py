"""`svqcast models export`: a trained network for people who do not run svqcast.

The export directory holds the network in one portable format and `data_spec.json`, which
says everything needed to feed it from outside Python/svqcast:

* ``onnx`` -> ``model.onnx`` (opset 17, dynamic batch; ONNX Runtime, C++, C#, JS, ...);
* ``torchscript`` -> ``model.pt`` (``torch.jit.load`` from Python or libtorch C++);
* ``pt2`` -> ``model.pt2`` (``torch.export``; ``torch.export.load(...).module()``, AOTInductor).

The network maps *normalised* ``x`` of shape ``(batch, T_in, C, H, W)`` to ``y`` of shape
``(batch, T_out, C, H, W)``; `data_spec.json` holds the per-channel mean/std (x = (frame -
mean) / std, forecast = y * std + mean), the variables and units, the grid, the time step
and the frame offsets of input and output. `validate_export` runs the written file on a
real sample (the embedded ERA5 sample when the grid is its grid) and compares with PyTorch.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svqcast._version import __version__
from svqcast.data.loading import get_split_dataset
from svqcast.data.samples import SAMPLES_DIR
from svqcast.data.spec import DataSpec
from svqcast.errors import MissingExtraError, SvqcastError, UsageError
from svqcast.forecast.forecaster import load_network
from svqcast.forecast.inputs import prepare_input
from svqcast.forecast.writer import step_unit
from svqcast.fsutil import atomic_dir, check_output
from svqcast.sources.leadtime import format_step, step_label
from svqcast.zoo.hub import resolve_checkpoint

FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt", "pt2": "model.pt2"}
SPEC_FILE = "data_spec.json"
EXPORT_FORMAT_VERSION = 1
DEFAULT_TOLERANCE = 1e-4
ONNX_OPSET = 17


def _inference_module(net: Any) -> Any:
    """The network with one tensor out (auxiliary outputs such as quantizer losses dropped)."""
    import torch

    class Inference(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.inner(x)
            if isinstance(y, (tuple, list)):
                y = y[0]
            return getattr(y, "pred", y)

    return Inference(net).eval()


def data_spec_document(
    spec: Any, meta: dict[str, Any], model_ref: str, fmt: str, dynamic_batch: bool
) -> dict[str, Any]:
    """The JSON a non-Python user needs: tensors, normalisation, variables, grid, frames."""

    shape = [None if dynamic_batch else 1, spec.t_in, len(spec.channel_names), *spec.shape]
    norm = spec.normalisation
    return {
        "format_version": EXPORT_FORMAT_VERSION,
        "svqcast_version": __version__,
        "model": model_ref,
        "preset": meta.get("preset"),
        "weights_sha256": meta.get("weights_sha256"),
        "file": FORMATS[fmt],
        "format": fmt,
        "input": {"name": "x", "shape": shape, "dtype": "float32", "layout": "batch, time, channel, y, x",
                  "meaning": "normalised input frames, oldest first"},
        "output": {"name": "y", "shape": [shape[0], spec.t_out, *shape[2:]], "dtype": "float32",
                   "meaning": "normalised forecast frames, nearest lead first"},
        "normalisation": {
            "kind": norm,
            "mean": list(spec.mean) if norm != "none" else [0.0] * len(spec.mean),
            "std": list(spec.std) if norm != "none" else [1.0] * len(spec.std),
            "normalise": "x[:, :, c] = (frame[:, :, c] - mean[c]) / std[c]",
            "denormalise": "forecast[:, :, c] = y[:, :, c] * std[c] + mean[c]",
            "clip_range": spec.clip_range,
        },
        "variables": list(spec.variables),
        "channel_names": list(spec.channel_names),
        "units": list(spec.units),
        "grid": {"dims": list(spec.dims), "shape": list(spec.shape),
                 "coords": {d: list(spec.coords[d]) for d in spec.dims}},
        "frames": {"t_in": spec.t_in, "t_out": spec.t_out, "input_offsets": list(spec.idx_in),
                   "output_offsets": list(spec.idx_out), "time_step_seconds": spec.time_step_seconds,
                   "time_kind": spec.time_kind, **_step_fields(spec),
                   "offsets": "in time steps relative to the last input frame (0 = initialisation)"},
    }


def _step_fields(spec: Any) -> dict[str, Any]:
    """The step in its own unit: calendar steps are months or years, not their mean length."""
    counted = step_unit(spec)
    if counted is None:
        return {"time_step": format_step(np.timedelta64(int(round(spec.time_step_seconds)), "s"))}
    unit = counted[1]
    return {"time_step": step_label(1, counted), "calendar_step": unit in ("months", "years"),
            "time_step_seconds_meaning": "the mean length of one calendar step" if unit != "frames"
            else "seconds per frame, where a frame rate is known"}


def _require(module: str, feature: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(feature, "export", module) from None


def _write_network(module: Any, example: Any, fmt: str, path: Path) -> bool:
    """Write `module` in `fmt` to `path`; returns whether the batch dimension stays dynamic."""
    import torch

    if fmt == "onnx":
        _require("onnx", "ONNX export")
        torch.onnx.export(module, (example,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=ONNX_OPSET,
                          dynamo=False)
        return True
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(module, (example,))
        traced.save(str(path))
        return False
    with torch.no_grad():
        program = torch.export.export(module, (example,))
    torch.export.save(program, str(path))
    return False


def load_exported(directory: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """(callable numpy (B, T_in, C, H, W) float32 -> numpy output, data spec) of an export dir."""
    directory = Path(directory)
    doc = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
    path = directory / doc["file"]
    if doc["format"] == "onnx":
        ort = _require("onnxruntime", "running an ONNX export")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return (lambda x: session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]), doc
    import torch

    module = torch.jit.load(str(path)) if doc["format"] == "torchscript" else torch.export.load(str(path)).module()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run, doc


@dataclass
class Sample:
    """A normalised input for validation and where it came from."""

    x: np.ndarray
    description: str


def validation_sample(spec: Any) -> Sample:
    """The model's own data when its dataset is prepared here (the first test sample), else the
    embedded ERA5 sample when the grid and variables are its own, else a fixed random
    normalised input (said so in the report)."""
    own = _own_data_sample(spec)
    if own is not None:
        return own

    sample = SAMPLES_DIR / "era5_uk_t2m_2019-03.nc"
    try:
        prep = prepare_input(sample, spec, init_time="2019-03-29T00:00")
        mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, 1, -1, 1, 1)
        std = np.asarray(spec.std, dtype=np.float32).reshape(1, 1, -1, 1, 1)
        if spec.normalisation == "none":
            mean, std = np.zeros_like(mean), np.ones_like(std)
        return Sample(((prep.frames - mean) / std).astype(np.float32), f"{sample.name} at 2019-03-29T00:00")
    except SvqcastError:
        rng = np.random.default_rng(0)
        shape = (1, spec.t_in, len(spec.channel_names), *spec.shape)
        return Sample(rng.standard_normal(shape).astype(np.float32), "seeded standard-normal input (no real sample "
                      "matches this model's grid)")


def _own_data_sample(spec: Any) -> Sample | None:
    """The first test sample of the model's dataset, normalised with the model's statistics."""
    try:
        ds = get_split_dataset(spec.dataset, "test", t_in=spec.t_in, t_out=spec.t_out,
                               stats=(spec.mean, spec.std))
        x, _ = ds[0]
    except (SvqcastError, IndexError, KeyError, ValueError):
        return None
    if tuple(x.shape) != (spec.t_in, len(spec.channel_names), *spec.shape):
        return None
    return Sample(x.numpy()[None].astype(np.float32), f"the first test sample of {spec.dataset}")


def _pytorch_output(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def validate_export(directory: str | os.PathLike[str], module: Any, spec: Any,
                    tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Run the export on a real sample and compare with PyTorch; raises above `tolerance`."""
    sample = validation_sample(spec)
    run, doc = load_exported(directory)
    got = np.asarray(run(sample.x))
    want = _pytorch_output(module, sample.x)
    diff = float(np.abs(got.astype(np.float64) - want).max())
    result = {"sample": sample.description, "max_abs_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance}
    if not result["ok"]:
        raise SvqcastError(
            f"the exported {doc['format']} model differs from PyTorch by {diff:.3g} (tolerance {tolerance:g}) "
            "on the validation sample; export another format or raise `tolerance`"
        )
    return result


def export_model(ref: str | None, fmt: str, out_dir: str | os.PathLike[str], *, overwrite: bool = False,
                 validate: bool = False, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Export model `ref` (zoo name, hf://..., checkpoint dir) as `fmt` into `out_dir`."""
    import torch

    if fmt not in FORMATS:
        raise UsageError(f"`fmt` {fmt}: choose one of {', '.join(FORMATS)}")
    if not tolerance >= 0.0:  # also refuses NaN
        raise UsageError(f"`tolerance` {tolerance}: must be a number >= 0")
    # the model being exported is an input: `-o` onto it (or onto the run holding it) is refused
    model_dir = resolve_checkpoint(ref)
    out = check_output(out_dir, overwrite=overwrite, kind="dir", inputs=[model_dir, *([ref] if ref else [])])
    net, meta, _, label = load_network(ref)
    if getattr(net, "needs_phase", False):
        raise UsageError(f"{label}: a climatology-residual model (model.residual = 'climatology') also needs the "
                         "time of each sample and cannot be exported yet; use `svqcast predict` or the Python API")
    spec = DataSpec.from_dict(dict(meta.get("data_spec") or {}))
    module = _inference_module(net.float().cpu())
    example = torch.from_numpy(validation_sample(spec).x)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        dynamic = _write_network(module, example, fmt, tmp / FORMATS[fmt])
        doc = data_spec_document(spec, meta, label, fmt, dynamic)
        (tmp / SPEC_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        report: dict[str, Any] = {"model": label, "format": fmt, "output": str(out),
                                  "files": sorted(p.name for p in tmp.iterdir())}
        if validate:
            report["validation"] = validate_export(tmp, module, spec, tolerance)
    return report


__all__ = ["DEFAULT_TOLERANCE", "FORMATS", "SPEC_FILE", "data_spec_document", "export_model", "load_exported",
           "validate_export", "validation_sample"]
