"""Fine-tuning: start a run from another checkpoint's weights, optionally with parts frozen.

`init_from` loads every tensor of the parent whose name and shape match the new network and
leaves the rest as freshly initialised; the report lists the tensors loaded, new (in the
network, not in the parent or of another shape) and dropped (in the parent only), and is
recorded in the run's provenance and card. `strict` refuses any difference instead. Buffers
(batch-norm statistics, a climatology table) follow the same rule as parameters.
`freeze` stops the gradients of whole parts of the network; the optimizer then holds only the
parameters that still train.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from svqcast.errors import UsageError
from svqcast.zoo.checkpoint import load_state_dict, read_checkpoint_meta
from svqcast.zoo.hub import resolve_checkpoint, verify_checkpoint_integrity
from svqcast.zoo.registry import load_registry

#: freezable parts -> the SimVP attribute that holds them
PARTS = {"encoder": "enc", "translator": "hid", "quantizer": "quantizer", "decoder": "dec"}


@dataclass
class Transfer:
    """What `init_from` did: tensor names loaded, new and dropped, and the parent's identity."""

    parent: str
    weights_sha256: str | None
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)

    revision: str | None = None  # the parent's Hub revision (hf://...@REV, or the zoo's pin)
    repo_id: str | None = None  # the parent's Hub repository, when it has one

    def record(self) -> dict[str, Any]:
        return {"parent": self.parent, "repo_id": self.repo_id, "revision": self.revision,
                "weights_sha256": self.weights_sha256, "loaded": len(self.loaded), "loaded_tensors": self.loaded,
                "new": self.new, "dropped": self.dropped, "frozen": self.frozen}


def parse_freeze(parts: str | Sequence[str] | None) -> list[str]:
    """`"encoder,translator"` -> ["encoder", "translator"]; an unknown part is a UsageError."""
    if not parts:
        return []
    items = [p.strip().lower() for text in ([parts] if isinstance(parts, str) else parts)
             for p in str(text).split(",") if p.strip()]
    unknown = [p for p in items if p not in PARTS]
    if unknown:
        raise UsageError(f"`freeze` {unknown[0]!r}: choose among {', '.join(PARTS)}")
    return list(dict.fromkeys(items))


@dataclass
class Parent:
    """The checkpoint a fine-tune starts from: its reference, directory, metadata and tensors."""

    ref: str
    meta: dict[str, Any]
    state: dict[str, torch.Tensor]
    repo_id: str | None = None
    revision: str | None = None

    @property
    def stats(self) -> tuple[list[float], list[float]] | None:
        spec = self.meta.get("data_spec") or {}
        if spec.get("mean") is None or spec.get("std") is None:
            return None
        return [float(v) for v in spec["mean"]], [float(v) for v in spec["std"]]


def open_parent(ref: str) -> Parent:
    """Resolve and verify `ref` like every load (zoo name, hf://org/repo@rev, a checkpoint or run
    directory; weights sha256 checked), and read its tensors (safetensors: nothing is unpickled)."""
    directory = Path(resolve_checkpoint(ref))
    verify_checkpoint_integrity(directory, ref)
    repo_id, revision = _hub_identity(ref)
    return Parent(ref, read_checkpoint_meta(directory), load_state_dict(directory), repo_id, revision)


def _hub_identity(ref: str) -> tuple[str | None, str | None]:
    """(repository, revision) of a Hub reference or a zoo name pinned to the Hub; (None, None) else."""
    if ref.startswith("hf://"):
        repo, _, rev = ref[len("hf://"):].partition("@")
        return repo, rev or "main"
    entry = load_registry().get(ref)
    if entry is not None and entry.repo_id:
        return entry.repo_id, entry.revision
    return None, None


def transfer_weights(model: torch.nn.Module, parent_state: dict[str, torch.Tensor], parent: str,
                     sha: str | None, *, strict: bool, load: bool = True) -> Transfer:
    """Copy the parent's tensors into `model` where name and shape match (module state: parameters
    and buffers); `strict` refuses any tensor that is new, dropped or of another shape. With
    `load` False only the report is made (a resumed fine-tune has its own weights)."""
    own = model.state_dict()
    report = Transfer(parent, sha)
    for name, tensor in own.items():
        theirs = parent_state.get(name)
        if theirs is not None and tuple(theirs.shape) == tuple(tensor.shape):
            report.loaded.append(name)
        else:
            report.new.append(name if theirs is None else f"{name} ({tuple(theirs.shape)} -> {tuple(tensor.shape)})")
    report.dropped = [n for n in parent_state if n not in own]
    if strict and (report.new or report.dropped):
        first = (report.new or report.dropped)[0]
        raise UsageError(f"`init_from` {parent} does not match the new network exactly (first difference: {first}); "
                         "drop `strict` to start the differing tensors fresh")
    if not report.loaded:
        raise UsageError(f"`init_from` {parent}: no tensor of it matches the new network by name and shape; "
                         "is it a model of another architecture?")
    if load:
        with torch.no_grad():
            model.load_state_dict({**own, **{n: parent_state[n] for n in report.loaded}})
    return report


def freeze(model: torch.nn.Module, parts: Iterable[str]) -> list[str]:
    """Stop the gradients of `parts`; returns the parts frozen (a part the model lacks is an error)."""
    done = []
    for part in parts:
        module = getattr(model, PARTS[part], None)
        if not isinstance(module, torch.nn.Module):
            raise UsageError(f"`freeze` {part}: this model has no {part}")
        for p in module.parameters():
            p.requires_grad_(False)
        done.append(part)
    return done


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


__all__ = ["PARTS", "Parent", "Transfer", "open_parent", "freeze", "parse_freeze", "trainable", "transfer_weights"]
