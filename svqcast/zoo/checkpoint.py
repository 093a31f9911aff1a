"""The checkpoint directory shared by training and the model zoo (docs/architecture.md).

    DIR/model.safetensors   weights and buffers (strict key matching on load)
    DIR/config.json         svqcast version, preset + resolved config, data spec with
                            normalisation stats, training provenance
    DIR/README.md           model card (optional)

safetensors never executes code, so loading a checkpoint from the zoo is safe.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from svqcast._version import __version__
from svqcast.config import read_json_config, validate_checkpoint_meta
from svqcast.errors import DataError
from svqcast.fsutil import atomic_dir, sha256_file
from svqcast.models.factory import build_model_from_config

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
FORMAT_VERSION = 1

if TYPE_CHECKING:  # torch is imported where it is used, so resolving a model reference stays light
    import torch


def _contiguous_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clone to be safe.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def write_checkpoint_files(
    directory: str | os.PathLike[str],
    model: torch.nn.Module,
    config: Mapping[str, Any],
    data_spec: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    card: str | Callable[[str], str] | None = None,
) -> None:
    """Write the checkpoint files into an existing directory (no atomicity of its own). `card`
    may be a function of the weights' sha256, so the card names the weights it describes."""
    from safetensors.torch import save_file

    directory = Path(directory)
    save_file(_contiguous_state(model), str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
    meta = {
        "format_version": FORMAT_VERSION,
        "svqcast_version": __version__,
        "preset": config.get("name"),
        "config": dict(config),
        "data_spec": dict(data_spec or {}),
        "provenance": dict(provenance or {}),
        "weights_sha256": sha256_file(directory / WEIGHTS_NAME),
    }
    (directory / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    if callable(card):
        card = card(str(meta["weights_sha256"]))
    if card is not None:
        (directory / CARD_NAME).write_text(card)


def save_checkpoint(
    directory: str | os.PathLike[str],
    model: torch.nn.Module,
    config: Mapping[str, Any],
    data_spec: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    card: str | Callable[[str], str] | None = None,
    overwrite: bool = True,
) -> Path:
    """Atomically (temp dir + rename) write a checkpoint directory."""
    directory = Path(directory)
    with atomic_dir(directory, overwrite=overwrite) as tmp:
        write_checkpoint_files(tmp, model, config, data_spec, provenance, card)
    return directory


def read_checkpoint_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file() or not (directory / WEIGHTS_NAME).is_file():
        raise DataError(
            f"{directory}: not a svqcast checkpoint (needs {WEIGHTS_NAME} and {CONFIG_NAME})"
        )

    return validate_checkpoint_meta(read_json_config(cfg_path, "the checkpoint's config"), str(directory),
                                    FORMAT_VERSION)


def load_state_dict(directory: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_NAME
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable safetensors file ({exc})") from None


def load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load with strict key matching and a message that names the offending keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise DataError(f"{source}: weights do not match the model: {'; '.join(parts)}")
    for key, tensor in state.items():
        if tuple(own[key].shape) != tuple(tensor.shape):
            raise DataError(
                f"{source}: shape mismatch for '{key}': checkpoint {tuple(tensor.shape)}, "
                f"model {tuple(own[key].shape)}"
            )
    model.load_state_dict(state, strict=True)


def load_checkpoint(directory: str | os.PathLike[str]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the model from `config.json` and load its weights strictly."""

    meta = read_checkpoint_meta(directory)
    model = build_model_from_config(meta["config"])
    load_strict(model, load_state_dict(directory), str(directory))
    model.eval()
    return model, meta
