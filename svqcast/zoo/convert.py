"""Import OpenSTL / SVQ-Forecasting checkpoints into svqcast checkpoint directories.

OpenSTL saves `model.state_dict()` as `checkpoint.pth` (best) and a dict with a
`state_dict` key as `latest.pth`; under DDP the keys carry a `module.` prefix
(docs/reference/official-behaviour.md §5.4).
We read them with `torch.load(..., weights_only=True)` only: a file whose unpickling would
need to run code (custom classes, `os.system` reduces) is refused, never executed.

Key mapping (docs/convert.md): svqcast's SimVP mirrors OpenSTL's module names (`enc.*`,
`dec.*`, `hid.*`), so those keys are unchanged. Only the quantizer moves:

    vq.vq.proj_regression_weight.<rest>   ->  quantizer.proj.<rest>     (SVQ projection)
    vq.vq.codebook                        ->  quantizer.codebook        (SVQ codebook)
    vq.vq.<rest> (VQ baselines)           ->  quantizer.lib.<rest>      (vector-quantize-pytorch)

Loading is strict: a missing, unexpected or wrongly-shaped key is a DataError naming it.
Swin presets are converted with `model.swin_shift_mask = false`, the official no-mask
behaviour the weights were trained with.
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from svqcast.config import load_config
from svqcast.data.loading import spec_for_model
from svqcast.errors import DataError, UsageError
from svqcast.fsutil import check_output, sha256_file
from svqcast.models.factory import build_model_from_config
from svqcast.zoo.checkpoint import save_checkpoint

OPENSTL_QUANTIZER_PREFIX = "vq.vq."
SVQ_PROJECTION = ("vq.vq.proj_regression_weight.", "quantizer.proj.")
DDP_PREFIX = "module."


def openstl_to_svqcast_key(key: str, quantizer: str = "svq") -> str:
    """One OpenSTL state-dict key -> svqcast's name for the same tensor."""
    if key.startswith(SVQ_PROJECTION[0]):
        return SVQ_PROJECTION[1] + key[len(SVQ_PROJECTION[0]) :]
    if key.startswith(OPENSTL_QUANTIZER_PREFIX):
        rest = key[len(OPENSTL_QUANTIZER_PREFIX) :]
        if quantizer.startswith("svq"):
            return "quantizer." + rest
        return "quantizer.lib." + rest
    return key


def svqcast_to_openstl_key(key: str, quantizer: str = "svq") -> str:
    """The inverse mapping (used to export, and by the round-trip tests)."""
    if key.startswith(SVQ_PROJECTION[1]):
        return SVQ_PROJECTION[0] + key[len(SVQ_PROJECTION[1]) :]
    if key.startswith("quantizer.lib."):
        return OPENSTL_QUANTIZER_PREFIX + key[len("quantizer.lib.") :]
    if key.startswith("quantizer."):
        return OPENSTL_QUANTIZER_PREFIX + key[len("quantizer.") :]
    return key


def read_openstl_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Load an OpenSTL checkpoint file safely and return its flat tensor state dict."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise UsageError(f"checkpoint {path} is not a regular file; give the .pth file itself")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DataError(f"{path}: {_unpickling_reason(str(exc))}") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError, AttributeError,
            IndexError, TypeError, UnicodeDecodeError, struct.error) as exc:  # garbage bytes fail anywhere
        why = _short(str(exc) or type(exc).__name__)
        raise DataError(f"{path}: not a readable PyTorch checkpoint ({why})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if isinstance(obj, Mapping) and not obj:
        raise DataError(f"{path}: the state dict is empty (no tensors); convert the checkpoint of a trained model")
    if not isinstance(obj, Mapping):
        raise DataError(f"{path}: expected a state dict (or a dict with a 'state_dict' key), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: entry {bad[0]!r} is not a tensor; expected a model state dict")
    state = dict(obj)
    if all(k.startswith(DDP_PREFIX) for k in state):
        state = {k[len(DDP_PREFIX) :]: v for k, v in state.items()}
    return state


def _unpickling_reason(message: str) -> str:
    """Turn torch's long weights-only refusal into one line that says what happened."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    if found:
        return (
            f"refusing to load: unpickling it would import and run '{found.group(1)}' (code execution); "
            "only plain state dicts of tensors are accepted"
        )
    detail = message.split("WeightsUnpickler error:", 1)[-1] if "WeightsUnpickler error:" in message else message
    lines = [ln.strip() for ln in detail.splitlines() if ln.strip() and "weights_only" not in ln]
    reason = _short(lines[0]) if lines else "unpickling failed"
    return (
        f"not a readable PyTorch checkpoint, or one that safe weights-only loading refuses ({reason}); "
        "only plain state dicts of tensors are accepted"
    )


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def map_state(
    state: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], quantizer: str, source: str
) -> dict[str, torch.Tensor]:
    """Rename every key and check the result against the model's state dict, strictly."""
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = openstl_to_svqcast_key(key, quantizer)
        if new in mapped:
            raise DataError(f"{source}: keys '{origin[new]}' and '{key}' both map to '{new}'")
        mapped[new] = value
        origin[new] = key
    unexpected = set(mapped) - set(own)
    missing = set(own) - set(mapped)
    if unexpected:
        raise DataError(
            f"{source}: unexpected key(s) for this preset: {_names(origin[k] for k in unexpected)}; "
            "is it the right `preset`?"
        )
    if missing:
        raise DataError(
            f"{source}: missing key(s) for this preset: "
            f"{_names(svqcast_to_openstl_key(k, quantizer) for k in missing)}; "
            "is it the right `preset`?"
        )
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise DataError(
                f"{source}: shape mismatch for '{origin[key]}': checkpoint {tuple(value.shape)}, "
                f"preset {tuple(own[key].shape)}; is it the right `preset` (or a missing `overrides` key)?"
            )
    return mapped


def convert_openstl(
    checkpoint: str | Path,
    preset: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    overwrite: bool = False,
    data: str | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """Convert an OpenSTL/SVQ-Forecasting `.pth` into a svqcast checkpoint directory.

    `data`: a prepared dataset (catalog or user) whose data spec and training statistics are
    attached, so `predict` and `evaluate` work on the converted model.

    Returns a small report (output path, preset, number of tensors and parameters).
    Nothing is written unless every key maps and loads; the directory appears atomically.
    """

    checkpoint = Path(checkpoint)
    out_dir = check_output(out_dir, overwrite=overwrite, inputs=[checkpoint], kind="dir")
    cfg = load_config(preset, overrides)  # complete: `_defaults.toml` merged under it
    model_cfg = cfg["model"]
    if str(model_cfg["translator"]).lower() == "swin":
        model_cfg["swin_shift_mask"] = False  # OpenSTL never applied the shifted-window mask
    quantizer = str(model_cfg["quantizer"]).lower()
    state = read_openstl_state(checkpoint)
    model = build_model_from_config(cfg)
    mapped = map_state(state, model.state_dict(), quantizer, str(checkpoint))
    model.load_state_dict(mapped, strict=True)
    spec: dict[str, Any] = {}
    provenance: dict[str, Any] = {}
    if data is not None:

        data_spec, manifest = spec_for_model(data, model_cfg, int(getattr(model, "stride", 1)), root)
        spec = data_spec.to_dict()
        provenance["data_manifest_sha256"] = manifest
    provenance = {
        **provenance,
        "converted_from": "openstl",
        "source_file": checkpoint.name,
        "source_sha256": sha256_file(checkpoint),
        "key_mapping": "docs/convert.md",
    }
    card = (
        f"# {cfg['name']}\n\n"
        f"Converted from the OpenSTL / SVQ-Forecasting checkpoint `{checkpoint.name}` "
        f"(sha256 {provenance['source_sha256'][:16]}...) with `svqcast models convert openstl`.\n"
    )
    save_checkpoint(out_dir, model, cfg, data_spec=spec, provenance=provenance, card=card, overwrite=overwrite)
    return {
        "output": str(out_dir),
        "preset": cfg["name"],
        "tensors": len(mapped),
        "params": sum(p.numel() for p in model.parameters()),
        "swin_shift_mask": model_cfg["swin_shift_mask"],
        "source_sha256": provenance["source_sha256"],
        "data": data,
    }
