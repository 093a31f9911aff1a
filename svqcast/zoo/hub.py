"""The model zoo: a registry of pretrained checkpoints (data, not code) and Hub transport.

A model reference is one of

* a zoo name from `svqcast/zoo/registry.toml` (`svqcast models list`),
* `hf://ORG/NAME[@REVISION]` (any Hugging Face model repo in svqcast's checkpoint format),
* a local checkpoint directory, or a training run directory (its `best/` checkpoint is used).

Zoo entries pin a Hub `revision` and the sha256 of `model.safetensors`, so a download that
differs from what was registered is refused (DataError, exit 3). Downloads go through
`huggingface_hub.hf_hub_download` into the standard Hub cache (or `$SVQCAST_CACHE_DIR/hub`),
honouring `HF_HUB_OFFLINE` and `HF_ENDPOINT`. svqcast never assigns to huggingface_hub's
settings: it passes `cache_dir`, `endpoint`, `etag_timeout` and `local_files_only` per call.
A 3-second connection check runs first, so an unreachable Hub means "cache only" at once
instead of huggingface_hub's retries. Without network and without a cached copy the error
names the model and `svqcast models download NAME` (exit 4).

An entry may also be `bundled`: its files ship inside the package and need no network.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

from svqcast._version import __version__
from svqcast.constants import ENV_CACHE_DIR
from svqcast.errors import DataError, NetworkError, SvqcastError, UsageError
from svqcast.fsutil import sha256_file
from svqcast.zoo.card import best_val_row as _best_val
from svqcast.zoo.card import model_card
from svqcast.zoo.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_checkpoint_meta
from svqcast.zoo.registry import REPO_RE, ZooEntry, default_model_name, get_entry, load_registry

HF_PREFIX = "hf://"
CHECKPOINT_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)


# --------------------------------------------------------------------------- registry


# --------------------------------------------------------------------------- Hub transport

#: Seconds a Hub connection may take before svqcast falls back to the cache (issue: 25 s of
#: retries before the first useful line).
CONNECT_TIMEOUT_S = 3.0


def hub_cache_dir() -> Path:
    """Where models are cached: $SVQCAST_CACHE_DIR/hub when set, else the standard Hub cache
    as huggingface_hub resolved it (HF_HUB_CACHE / HF_HOME, read when it was imported)."""
    env = os.environ.get(ENV_CACHE_DIR, "").strip()
    if env:
        return Path(env).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    val = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return val.strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str | None:
    val = os.environ.get("HF_ENDPOINT", "").strip()
    return val.rstrip("/") or None


def _endpoint_url() -> str:
    from huggingface_hub import constants

    return hub_endpoint() or str(constants.ENDPOINT).rstrip("/")


def unreachable_reason(url: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why the server at `url` does not answer an HTTP request within `timeout` s (None: it does).

    huggingface_hub retries a refused connection for ~25 s and waits on a silent server much
    longer; this pre-flight check (DNS, connect and a HEAD request in a daemon thread, so a
    hanging resolver or a server that accepts and never answers is capped too) lets svqcast fall
    back to the cache, or fail with one line, within a few seconds. Any HTTP status is an answer.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return f"invalid endpoint URL '{url}'"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection

    def _try() -> None:
        conn = conn_type(host, port, timeout=timeout)
        try:
            conn.request("HEAD", "/")
            conn.getresponse()
            outcome.append(None)
        except TimeoutError:
            outcome.append(f"no answer within {timeout:g} s")
        except (OSError, http.client.HTTPException) as exc:
            outcome.append(getattr(exc, "strerror", None) or type(exc).__name__)
        finally:
            conn.close()

    thread = threading.Thread(target=_try, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def parse_hf_ref(ref: str) -> tuple[str, str]:
    """`hf://org/name@rev` -> ("org/name", "rev"); revision defaults to "main"."""
    body = ref[len(HF_PREFIX):]
    repo_id, at, revision = body.partition("@")
    repo_id = repo_id.strip("/")
    if not REPO_RE.match(repo_id):
        raise UsageError(f"'{ref}': expected hf://ORG/NAME or hf://ORG/NAME@REVISION")
    if at and not revision.strip():
        raise UsageError(f"'{ref}': empty revision after '@'; write hf://{repo_id}@REVISION or drop the '@'")
    return repo_id, (revision.strip() or "main")


def _cached_file(repo_id: str, revision: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    got = try_to_load_from_cache(repo_id, filename, cache_dir=str(hub_cache_dir()), revision=revision)
    return Path(got) if isinstance(got, str) else None


def entry_report(entry: ZooEntry) -> dict[str, Any]:
    """A registry entry as shown by `models list` / `models info`: its fields plus whether it is cached."""
    return {**entry.to_dict(), "cached": cached_snapshot(entry) is not None}


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


def _http_status(exc: BaseException | None) -> int | None:
    """The HTTP status behind a huggingface_hub error (or the error it was raised from)."""
    seen = 0
    while exc is not None and seen < 5:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _fetch_error(exc: Exception, filename: str, label: str, repo_id: str, revision: str,
                 why_offline: str | None) -> SvqcastError | None:
    """One classified line for a failed hf_hub_download; None: skip (the card is optional)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    how = f"`svqcast models download {label}`"
    if isinstance(exc, RevisionNotFoundError):
        return UsageError(f"model {label}: revision '{revision}' not found in {repo_id}")
    if isinstance(exc, RepositoryNotFoundError) or (_http_status(exc) == 404 and filename == WEIGHTS_NAME):
        return UsageError(f"model {label}: {repo_id}@{revision} not found on the Hub at {_endpoint_url()} "
                          "(misspelt, or private: set HF_TOKEN)")
    if filename == CARD_NAME:
        return None  # the card is optional; never block a forecast on it
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):  # before EntryNotFound: a subclass
        why = why_offline or "the Hugging Face Hub is unreachable"
        return NetworkError(f"model {label} is not in the local Hub cache ({hub_cache_dir()}) and {why}; "
                            f"on a machine with network run {how} (and copy the cache), then retry")
    if isinstance(exc, EntryNotFoundError):
        return DataError(f"model {label}: {repo_id}@{revision} has no {filename}; not a svqcast checkpoint")
    if isinstance(exc, HfHubHTTPError):
        return NetworkError(f"model {label}: Hub request failed ({str(exc).splitlines()[0]}); retry later")
    if isinstance(exc, (OSError, ValueError)):
        return NetworkError(f"model {label}: download failed ({str(exc).splitlines()[0][:200]})")
    return None


def _why_offline() -> str | None:
    """Why the Hub must not be contacted now (None: go ahead)."""
    from huggingface_hub import constants

    if hub_offline():
        return "HF_HUB_OFFLINE is set"
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE was set when huggingface_hub was imported (restart without it)"
    url = _endpoint_url()
    reason = unreachable_reason(url)
    return f"the Hugging Face Hub at {url} is unreachable ({reason})" if reason else None


def hub_download(
    repo_id: str,
    revision: str,
    *,
    model_name: str | None = None,
    expected_sha256: str | None = None,
    force: bool = False,
) -> Path:
    """Fetch the checkpoint files of `repo_id@revision` into the Hub cache; return the snapshot dir.

    Offline or unreachable (checked first, within seconds) means cache only.
    """
    from huggingface_hub import hf_hub_download

    label = model_name or f"hf://{repo_id}@{revision}"
    why_offline = _why_offline()
    kwargs: dict[str, Any] = {
        "repo_id": repo_id, "revision": revision, "cache_dir": str(hub_cache_dir()),
        "local_files_only": why_offline is not None, "library_name": "svqcast",
        "library_version": __version__, "force_download": force and why_offline is None,
        "etag_timeout": CONNECT_TIMEOUT_S, "endpoint": hub_endpoint(),
    }
    paths: dict[str, Path] = {}
    for filename in CHECKPOINT_FILES:
        try:
            paths[filename] = Path(hf_hub_download(filename=filename, **kwargs))
        except Exception as exc:  # classified below; anything else is a genuine bug
            err = _fetch_error(exc, filename, label, repo_id, revision, why_offline)
            if err is not None:
                raise err from None
            if filename != CARD_NAME:
                raise
    weights = paths[WEIGHTS_NAME]
    if expected_sha256:
        verify_sha256(weights, expected_sha256, label, source="the zoo registry pins")
    return weights.parent


def _in_hub_cache(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return hub_cache_dir().resolve() in path.absolute().parents
    return False


def verify_sha256(path: Path, expected: str, label: str, source: str | None = None) -> None:
    """Refuse weights whose sha256 differs from the recorded one (exit 3), saying who recorded
    it and how to recover: re-download for a cached copy, re-create for a local directory."""
    got = sha256_file(path)
    if got == expected:
        return
    pinned = source or f"{path.parent / CONFIG_NAME} records"
    if _in_hub_cache(path):
        fix = "delete it from the Hub cache (`hf cache rm`, or remove the snapshot) and download again"
    else:
        fix = f"the copy in {path.parent} is corrupt or was modified: restore or re-create the checkpoint"
    raise DataError(
        f"model {label}: {path.name} has sha256 {got[:16]}..., {pinned} {expected[:16]}...; "
        f"the file is corrupt or was tampered with; {fix}"
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
        if REPO_RE.match(text) and not text.startswith("."):
            raise UsageError(f"model '{text}': no such directory (for the Hub write hf://{text})")
        if "/" in text or os.sep in text:
            raise UsageError(f"model '{text}': no such directory; give a checkpoint or run directory, "
                             "a zoo name (svqcast models list) or hf://ORG/NAME")
        get_entry(text)  # raises with suggestions
    entry = registry[text]
    bundled = entry.bundled_path()
    if bundled is not None:
        if entry.sha256:
            verify_sha256(bundled / WEIGHTS_NAME, entry.sha256, entry.name, source="the zoo registry pins")
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
        verify_sha256(bundled / WEIGHTS_NAME, entry.sha256, entry.name, source="the zoo registry pins")
    return {"model": entry.name, "path": str(bundled), "status": "bundled (ships with svqcast; nothing to download)"}


# --------------------------------------------------------------------------- model cards

# One card builder for `train` and `models push`: svqcast.zoo.card (huggingface_hub.ModelCard),
# re-exported here because `svqcast.zoo.hub.model_card` is where users found it.


# --------------------------------------------------------------------------- push

Uploader = Callable[..., Any]


def _default_uploader(folder: Path, repo_id: str, revision: str | None, private: bool, commit_message: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    why = _why_offline()
    if why is not None:
        raise NetworkError(f"cannot push to {repo_id}: {why}; push from a machine with network")
    api = HfApi(endpoint=hub_endpoint())
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model",
            revision=revision, commit_message=commit_message,
        )
    except HfHubHTTPError as exc:
        raise NetworkError(f"push to {repo_id} failed ({str(exc).splitlines()[0]}); check HF_TOKEN") from None
    except Exception as exc:  # httpx transport errors are not OSErrors
        if isinstance(exc, SvqcastError) or not _is_transport_error(exc):
            raise
        raise NetworkError(f"push to {repo_id} failed: the Hub is unreachable ({exc})") from None
    return str(getattr(info, "commit_url", info))


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    try:
        import httpx
    except ImportError:  # pragma: no cover - huggingface_hub < 1.0 uses requests
        return False
    return isinstance(exc, httpx.TransportError)


def _carried_card(ckpt: Path) -> str | None:
    """The model card a checkpoint directory carries (README.md), after checking that its
    metadata parses as a Hugging Face card; None when it has none."""
    path = ckpt / CARD_NAME
    if not path.is_file():
        return None
    from huggingface_hub import ModelCard

    text = path.read_text(encoding="utf-8")
    try:
        ModelCard(text)
    except ValueError as exc:
        raise DataError(f"{path}: the model card's metadata does not parse ({exc}); fix or delete it") from None
    return text


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

    Exactly three files are uploaded: model.safetensors, config.json and README.md: the card
    generated now from config.json and the run's metrics, or, when `source` names a bundled
    zoo model, the card it ships with (per-lead scores, reproduce command; its metadata is
    validated). `upload` replaces the Hub call (signature `upload(folder,
    repo_id, revision, private, commit_message) -> str`).
    """
    if not REPO_RE.match(repo_id):
        raise UsageError(f"`repo_id` '{repo_id}': expected ORG/NAME")
    src, carried = Path(source).expanduser(), None
    if not src.is_dir() and str(source) in load_registry():  # a bundled zoo model: its own card
        src = get_entry(str(source)).bundled_path() or src
        carried = _carried_card(src)
    if not src.is_dir():
        raise UsageError(f"{src}: no such run or checkpoint directory")
    ckpt = _local_checkpoint(src)
    if ckpt is None:
        raise DataError(f"{src}: not a svqcast checkpoint or run directory (needs best/ or {WEIGHTS_NAME})")
    verify_checkpoint_integrity(ckpt, str(src))
    meta = read_checkpoint_meta(ckpt)
    run_dir = ckpt.parent if ckpt.name in ("best", "last") else None
    name = repo_id.split("/", 1)[1]
    card = carried or model_card(meta, name=name, repo_id=repo_id, best_val=_best_val(run_dir))
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
