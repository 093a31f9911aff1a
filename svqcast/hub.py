"""The model zoo: a registry of pretrained checkpoints (data, not code) and Hub transport.

A model reference is one of

* a zoo name from `svqcast/zoo/registry.toml` (`svqcast models list`),
* `hf://ORG/NAME[@REVISION]` (any Hugging Face model repo in svqcast's checkpoint format),
* a local checkpoint directory, or a training run directory (its `best/` checkpoint is used).

Zoo entries pin a Hub `revision` and the sha256 of `model.safetensors`, so a download that
differs from what was registered is refused (DataError, exit 3). Downloads go through
`huggingface_hub.hf_hub_download`, i.e. the standard Hub cache (`HF_HOME` / `HF_HUB_CACHE`),
`HF_HUB_OFFLINE` and `HF_ENDPOINT`. These variables are read at *call* time (huggingface_hub
reads them at import), so a process can change them between calls. Without network and
without a cached copy the error names the model and `svqcast models download NAME` (exit 4).

An entry may also be `bundled`: its files ship inside the package and need no network.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from svqcast import __version__
from svqcast.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_checkpoint_meta
from svqcast.constants import ENV_ZOO_REGISTRY
from svqcast.errors import DataError, NetworkError, UsageError
from svqcast.fsutil import sha256_file

HF_PREFIX = "hf://"
CHECKPOINT_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model of the zoo (a table of registry.toml)."""

    name: str
    description: str
    preset: str
    repo_id: str | None = None
    revision: str | None = None
    sha256: str | None = None
    licence: str = ""
    bundled: str | None = None  # path inside the svqcast package
    default: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # which registry file defined it

    def bundled_path(self) -> Path | None:
        if not self.bundled:
            return None
        path = Path(str(resources.files("svqcast"))) / self.bundled
        return path if (path / WEIGHTS_NAME).is_file() else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cached"] = cached_snapshot(self) is not None
        out["bundled_available"] = self.bundled_path() is not None
        return out


def _registry_files() -> list[Path]:
    files = [Path(str(resources.files("svqcast"))) / "zoo" / "registry.toml"]
    extra = os.environ.get(ENV_ZOO_REGISTRY, "").strip()
    if extra:
        for part in extra.split(os.pathsep):
            if part:
                files.append(Path(part).expanduser())
    return files


def _parse_entry(name: str, raw: Mapping[str, Any], source: Path) -> ZooEntry:
    known = {f for f in ZooEntry.__dataclass_fields__} - {"name", "source"}
    unknown = set(raw) - known
    if unknown:
        raise DataError(f"{source}: zoo entry '{name}' has unknown keys {sorted(unknown)}")
    for key in ("description", "preset"):
        if not raw.get(key):
            raise DataError(f"{source}: zoo entry '{name}' needs '{key}'")
    if not raw.get("bundled") and not (raw.get("repo_id") and raw.get("revision")):
        raise DataError(f"{source}: zoo entry '{name}' needs repo_id and a pinned revision (or bundled)")
    sha = raw.get("sha256")
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
        raise DataError(f"{source}: zoo entry '{name}': sha256 must be 64 lowercase hex digits")
    return ZooEntry(name=name, source=str(source), **{k: raw[k] for k in raw if k in known})


def load_registry() -> dict[str, ZooEntry]:
    """All zoo entries: the packaged registry, then files named by $SVQCAST_ZOO_REGISTRY."""
    entries: dict[str, ZooEntry] = {}
    for path in _registry_files():
        try:
            with path.open("rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise UsageError(f"zoo registry {path} not found (check ${ENV_ZOO_REGISTRY})") from None
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{path}: not valid TOML ({exc})") from None
        for name, table in (raw.get("models") or {}).items():
            entries[name] = _parse_entry(name, table, path)
    return entries


def default_model_name() -> str:
    reg = load_registry()
    for entry in reg.values():
        if entry.default:
            return entry.name
    if not reg:
        raise UsageError("the model zoo is empty; pass --model DIR or hf://ORG/NAME")
    return next(iter(reg))


def list_models(pattern: str | None = None) -> list[ZooEntry]:
    """Entries whose name matches `pattern` (shell glob, or a plain substring)."""
    entries = list(load_registry().values())
    if pattern:
        glob = any(c in pattern for c in "*?[")
        entries = [
            e for e in entries
            if (fnmatch.fnmatch(e.name, pattern) if glob else pattern.lower() in e.name.lower())
        ]
    return sorted(entries, key=lambda e: (not e.default, e.name))


def get_entry(name: str) -> ZooEntry:
    reg = load_registry()
    if name not in reg:
        import difflib

        close = difflib.get_close_matches(name, list(reg), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown zoo model '{name}'.{hint} List them with `svqcast models list`")
    return reg[name]


# --------------------------------------------------------------------------- Hub transport


def hub_cache_dir() -> Path:
    """The Hub cache, read from the environment now (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def hub_offline() -> bool:
    val = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return val.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str | None:
    val = os.environ.get("HF_ENDPOINT", "").strip()
    return val.rstrip("/") or None


@contextlib.contextmanager
def _hub_offline_flag() -> Iterator[None]:
    """Make huggingface_hub see HF_HUB_OFFLINE as it is *now*.

    huggingface_hub copies the variable into `constants.HF_HUB_OFFLINE` at import time and
    its HTTP layer refuses every request while that copy is true; a long-lived process
    (a notebook, the test suite) that changes the variable would otherwise be stuck with
    the value from import time.
    """
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = hub_offline()
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def parse_hf_ref(ref: str) -> tuple[str, str]:
    """`hf://org/name@rev` -> ("org/name", "rev"); revision defaults to "main"."""
    body = ref[len(HF_PREFIX):]
    repo_id, _, revision = body.partition("@")
    repo_id = repo_id.strip("/")
    if not _REPO_RE.match(repo_id):
        raise UsageError(f"'{ref}': expected hf://ORG/NAME or hf://ORG/NAME@REVISION")
    return repo_id, (revision or "main")


def _cached_file(repo_id: str, revision: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    got = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir()), revision=revision)
    return Path(got) if isinstance(got, str) else None


def cached_snapshot(entry: ZooEntry) -> Path | None:
    """The cached snapshot directory of a Hub-backed entry, if all its files are there."""
    if not (entry.repo_id and entry.revision):
        return None
    try:
        paths = [_cached_file(entry.repo_id, entry.revision, f) for f in (WEIGHTS_NAME, CONFIG_NAME)]
    except Exception:
        return None
    if any(p is None for p in paths):
        return None
    return paths[0].parent  # type: ignore[union-attr]


def hub_download(
    repo_id: str,
    revision: str,
    *,
    model_name: str | None = None,
    expected_sha256: str | None = None,
    force: bool = False,
) -> Path:
    """Fetch the checkpoint files of `repo_id@revision` into the Hub cache; return the snapshot dir."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    label = model_name or f"hf://{repo_id}@{revision}"
    how = (
        f"`svqcast models download {model_name}`" if model_name
        else f"`svqcast models download hf://{repo_id}@{revision}`"
    )
    kwargs: dict[str, Any] = {
        "repo_id": repo_id,
        "revision": revision,
        "cache_dir": str(hub_cache_dir()),
        "local_files_only": hub_offline(),
        "library_name": "svqcast",
        "library_version": __version__,
        "force_download": force,
    }
    endpoint = hub_endpoint()
    if endpoint:
        kwargs["endpoint"] = endpoint
    paths: dict[str, Path] = {}
    for filename in CHECKPOINT_FILES:
        try:
            with _hub_offline_flag():
                paths[filename] = Path(hf_hub_download(filename=filename, **kwargs))
        except LocalEntryNotFoundError:
            if filename == CARD_NAME:
                continue  # the card is optional; never block a forecast on it
            why = "HF_HUB_OFFLINE is set" if hub_offline() else "the Hugging Face Hub is unreachable"
            raise NetworkError(
                f"model {label} is not in the local Hub cache ({hub_cache_dir()}) and {why}; "
                f"on a machine with network run {how} (and copy HF_HOME), then retry"
            ) from None
        except RevisionNotFoundError:
            raise UsageError(f"model {label}: revision '{revision}' not found in {repo_id}") from None
        except RepositoryNotFoundError:
            raise UsageError(
                f"model {label}: repository {repo_id} not found on the Hub (private? set HF_TOKEN)"
            ) from None
        except EntryNotFoundError:
            if filename == CARD_NAME:
                continue
            raise DataError(f"model {label}: {repo_id}@{revision} has no {filename}; not a svqcast checkpoint") from None
        except HfHubHTTPError as exc:
            raise NetworkError(f"model {label}: Hub request failed ({str(exc).splitlines()[0]}); retry later") from None
        except (OSError, ValueError) as exc:
            raise NetworkError(f"model {label}: download failed ({str(exc).splitlines()[0][:200]})") from None
    weights = paths[WEIGHTS_NAME]
    if expected_sha256:
        verify_sha256(weights, expected_sha256, label)
    return weights.parent


def verify_sha256(path: Path, expected: str, label: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise DataError(
            f"model {label}: {path.name} has sha256 {got[:16]}..., the registry pins {expected[:16]}...; "
            "the file is corrupt or was tampered with. Delete it from the Hub cache "
            "(`hf cache rm` or remove the snapshot) and download again"
        )


def verify_checkpoint_integrity(directory: Path, label: str) -> None:
    """The checkpoint's own config.json records its weights' sha256: check it."""
    meta = read_checkpoint_meta(directory)
    expected = meta.get("weights_sha256")
    if expected:
        verify_sha256(directory / WEIGHTS_NAME, str(expected), label)


def _local_checkpoint(path: Path) -> Path | None:
    if (path / WEIGHTS_NAME).is_file() and (path / CONFIG_NAME).is_file():
        return path
    best = path / "best"
    if (best / WEIGHTS_NAME).is_file() and (best / CONFIG_NAME).is_file():
        return best
    return None


def resolve_checkpoint(ref: str | os.PathLike[str] | None = None) -> Path:
    """A checkpoint directory for `ref` (zoo name, hf://..., checkpoint dir or run dir).

    None means the zoo's default model. Zoo and Hub checkpoints are sha256-verified.
    """
    if ref is None or str(ref) == "":
        ref = default_model_name()
    text = str(ref)
    if text.startswith(HF_PREFIX):
        repo_id, revision = parse_hf_ref(text)
        snap = hub_download(repo_id, revision)
        verify_checkpoint_integrity(snap, text)
        return snap
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{path}: a model is a checkpoint directory, a run directory, a zoo name or hf://...")
        ckpt = _local_checkpoint(path)
        if ckpt is None:
            raise DataError(
                f"{path}: not a svqcast checkpoint (needs {WEIGHTS_NAME} and {CONFIG_NAME}, "
                "or a run directory with best/)"
            )
        return ckpt
    registry = load_registry()
    if text not in registry:
        if "/" in text or os.sep in text:
            raise UsageError(f"model '{text}': no such directory (for the Hub write hf://{text})")
        get_entry(text)  # raises with suggestions
    entry = registry[text]
    bundled = entry.bundled_path()
    if bundled is not None:
        if entry.sha256:
            verify_sha256(bundled / WEIGHTS_NAME, entry.sha256, entry.name)
        return bundled
    if not (entry.repo_id and entry.revision):
        raise DataError(f"zoo model '{entry.name}' is bundled but its files are missing from the installation")
    return hub_download(entry.repo_id, entry.revision, model_name=entry.name, expected_sha256=entry.sha256)


def download_model(ref: str, force: bool = False) -> dict[str, Any]:
    """Pre-fetch a zoo model (or hf:// ref) into the Hub cache, for offline machines."""
    if ref.startswith(HF_PREFIX):
        repo_id, revision = parse_hf_ref(ref)
        snap = hub_download(repo_id, revision, force=force)
        verify_checkpoint_integrity(snap, ref)
        return {"model": ref, "path": str(snap), "status": "downloaded"}
    entry = get_entry(ref)
    if entry.repo_id and entry.revision:
        snap = hub_download(
            entry.repo_id, entry.revision, model_name=entry.name, expected_sha256=entry.sha256, force=force
        )
        return {"model": entry.name, "path": str(snap), "status": "downloaded", "cache": str(hub_cache_dir())}
    bundled = entry.bundled_path()
    if bundled is None:
        raise DataError(f"zoo model '{entry.name}' is bundled but its files are missing from the installation")
    if entry.sha256:
        verify_sha256(bundled / WEIGHTS_NAME, entry.sha256, entry.name)
    return {"model": entry.name, "path": str(bundled), "status": "bundled (ships with svqcast; nothing to download)"}


# --------------------------------------------------------------------------- model cards


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _epoch1(epoch: Any) -> str:
    return str(int(epoch) + 1) if isinstance(epoch, int) else "?"


def _best_val(run_dir: Path | None) -> dict[str, Any]:
    """Best validation row of a run's metrics.jsonl (lowest val_loss), if there is one."""
    if run_dir is None:
        return {}
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return {}
    best: dict[str, Any] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        val = row.get("val_loss")
        if isinstance(val, (int, float)) and (not best or val < best["val_loss"]):
            best = row
    return best


def model_card(
    meta: Mapping[str, Any],
    *,
    name: str,
    repo_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    scores_table: str | None = None,
    best_val: Mapping[str, Any] | None = None,
    licence: str = "apache-2.0",
    description: str | None = None,
) -> str:
    """A Hugging Face model card (YAML front matter + markdown) from config.json and metrics."""
    cfg = meta.get("config", {}) or {}
    model = cfg.get("model", {}) or {}
    train = cfg.get("train", {}) or {}
    spec = meta.get("data_spec", {}) or {}
    prov = meta.get("provenance", {}) or {}
    dataset = spec.get("dataset") or (cfg.get("data", {}) or {}).get("dataset", "?")
    coords = spec.get("coords", {}) or {}
    dims = spec.get("dims", ["lat", "lon"])
    grid = " x ".join(f"{d} {len(coords.get(d, []))}" for d in dims) if coords else "?"
    step_s = spec.get("time_step_seconds")
    step = f"{int(step_s) // 3600} h" if step_s and int(step_s) % 3600 == 0 else (f"{step_s} s" if step_s else "?")
    ref = f"hf://{repo_id}" if repo_id else name
    lines = [
        "---",
        "library_name: svqcast",
        f"license: {licence}",
        "tags:",
        "- spatiotemporal-forecasting",
        "- sparse-vector-quantization",
        "- simvp",
        "- svqcast",
        "---",
        "",
        f"# {name}",
        "",
        description or f"SimVP + SVQ forecaster trained with svqcast on `{dataset}`.",
        "",
        "## Model",
        "",
        f"- preset: `{meta.get('preset') or cfg.get('name', '?')}`",
        f"- architecture: SimVP, translator `{model.get('translator', '?')}`, hid_S={model.get('hid_S', '?')}, "
        f"hid_T={model.get('hid_T', '?')}, N_S={model.get('N_S', '?')}, N_T={model.get('N_T', '?')}",
        f"- quantizer: `{model.get('quantizer', 'none')}`"
        + (f", codebook {model.get('codebook_size')}" if model.get("quantizer", "none") != "none" else ""),
        f"- svqcast version: {meta.get('svqcast_version', __version__)}",
        f"- weights sha256: `{meta.get('weights_sha256', '?')}`",
        "",
        "## Data",
        "",
        f"- dataset: `{dataset}`; variables {spec.get('variables', '?')} in {spec.get('units', '?')}",
        f"- grid: {grid}; time step {step}; {spec.get('t_in', '?')} input frames -> {spec.get('t_out', '?')} output frames",
        "- normalisation: per-channel z-score with the training split's mean/std (stored in config.json)",
        "",
        "## Training",
        "",
        f"- recipe: loss {train.get('loss', '?')}, lr {train.get('lr', '?')}, optimizer {train.get('optimizer', '?')}, "
        f"scheduler {train.get('scheduler', '?')}, batch {train.get('batch_size', '?')}, seed {train.get('seed', '?')}",
    ]
    if best_val:
        lines.append(
            # metrics.jsonl counts epochs from 0 (the scheduler's index); people count from 1.
            f"- best validation epoch {_epoch1(best_val.get('epoch'))}: val_loss {_fmt(best_val.get('val_loss'))}"
        )
    for key in ("data_hash", "git_commit", "seed"):
        if prov.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: `{prov[key]}`")
    if scores_table or metrics:
        lines += ["", "## Evaluation", ""]
        if scores_table:
            lines.append(scores_table)
        if metrics:
            lines += ["| metric | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in metrics.items()]
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        f"svqcast predict input.nc -o forecast.nc --model {ref}",
        "```",
        "",
        "```python",
        "import svqcast, xarray as xr",
        f"fc = svqcast.load_model({ref!r}).predict(xr.open_dataset('input.nc'))",
        "```",
        "",
        "## Citation",
        "",
        "Chen et al., Does Vector Quantization Fail in Spatio-Temporal Forecasting? Exploring a Differentiable "
        "Sparse Soft-Vector Quantization Approach, arXiv:2312.03406.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- push

Uploader = Callable[..., Any]


def _default_uploader(folder: Path, repo_id: str, revision: str | None, private: bool, commit_message: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if hub_offline():
        raise NetworkError("cannot push: HF_HUB_OFFLINE is set; unset it on a machine with network")
    api = HfApi(endpoint=hub_endpoint())
    try:
        with _hub_offline_flag():
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            info = api.upload_folder(
                folder_path=str(folder), repo_id=repo_id, repo_type="model",
                revision=revision, commit_message=commit_message,
            )
    except HfHubHTTPError as exc:
        raise NetworkError(f"push to {repo_id} failed ({str(exc).splitlines()[0]}); check HF_TOKEN") from None
    except OSError as exc:
        raise NetworkError(f"push to {repo_id} failed: the Hub is unreachable ({exc})") from None
    return str(getattr(info, "commit_url", info))


def push_model(
    source: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    upload: Uploader | None = None,
) -> dict[str, Any]:
    """Upload a run's best checkpoint (or a checkpoint dir) with a generated model card.

    Exactly three files are uploaded: model.safetensors, config.json and README.md (the card
    generated now from config.json and the run's metrics). `upload` replaces the Hub call
    (signature `upload(folder, repo_id, revision, private, commit_message) -> str`).
    """
    if not _REPO_RE.match(repo_id):
        raise UsageError(f"--repo-id '{repo_id}': expected ORG/NAME")
    src = Path(source).expanduser()
    if not src.is_dir():
        raise UsageError(f"{src}: no such run or checkpoint directory")
    ckpt = _local_checkpoint(src)
    if ckpt is None:
        raise DataError(f"{src}: not a svqcast checkpoint or run directory (needs best/ or {WEIGHTS_NAME})")
    verify_checkpoint_integrity(ckpt, str(src))
    meta = read_checkpoint_meta(ckpt)
    run_dir = ckpt.parent if ckpt.name in ("best", "last") else None
    name = repo_id.split("/", 1)[1]
    card = model_card(meta, name=name, repo_id=repo_id, best_val=_best_val(run_dir))
    message = commit_message or f"Upload {name} (svqcast {__version__})"
    uploader = upload or _default_uploader
    with tempfile.TemporaryDirectory(prefix="svqcast-push-") as tmp:
        folder = Path(tmp)
        shutil.copy2(ckpt / WEIGHTS_NAME, folder / WEIGHTS_NAME)
        shutil.copy2(ckpt / CONFIG_NAME, folder / CONFIG_NAME)
        (folder / CARD_NAME).write_text(card, encoding="utf-8")
        files = sorted(p.name for p in folder.iterdir())
        url = uploader(folder, repo_id, revision, private, message)
    return {
        "repo_id": repo_id,
        "revision": revision or "main",
        "private": private,
        "files": files,
        "weights_sha256": sha256_file(ckpt / WEIGHTS_NAME),
        "commit": url,
        "reference": f"hf://{repo_id}@{revision or 'main'}",
    }
