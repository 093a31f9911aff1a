"""The model zoo through the REAL huggingface_hub code, fully offline.

* a Hub cache laid out exactly as huggingface_hub lays it out (refs/, snapshots/, blobs/)
  used with HF_HUB_OFFLINE=1;
* a local HTTP server on 127.0.0.1 standing in for the Hub endpoint (HF_ENDPOINT), serving
  HEAD/GET /{repo}/resolve/{revision}/{file} with the headers hf_hub_download needs
  (X-Repo-Commit, ETag, Content-Length, X-Error-Code on 404);
* tampered weights refused (exit 3), no network and no cache refused (exit 4);
* `models push` with the upload call injected: exactly which files and which card.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants  # noqa: F401  (read before any test changes HF_* variables)
import numpy as np
import pytest
from _cli import run_cli
from _predict_fixtures import make_tiny_checkpoint

from svqcast.errors import DataError, NetworkError, UsageError

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "svqcast-test/tiny-era5"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("hub") / "tiny")


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty model cache ($SVQCAST_CACHE_DIR/hub) and no inherited Hub settings."""
    home = tmp_path / "hf"
    monkeypatch.setenv("SVQCAST_CACHE_DIR", str(home))
    for var in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "SVQCAST_ZOO_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    return home


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_registry(path: Path, sha: str, name: str = "tiny-era5", revision: str = COMMIT) -> Path:
    path.write_text(
        f'[models."{name}"]\n'
        'description = "tiny test model"\n'
        'preset = "era5-uk-t2m_gsta"\n'
        f'repo_id = "{REPO}"\n'
        f'revision = "{revision}"\n'
        f'sha256 = "{sha}"\n'
        'licence = "apache-2.0"\n'
        '[models."tiny-era5".data]\ndataset = "era5-uk-t2m"\n'
    )
    return path


def _use_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ckpt: Path) -> None:
    registry = _write_registry(tmp_path / "reg.toml", _sha256(ckpt / "model.safetensors"))
    monkeypatch.setenv("SVQCAST_ZOO_REGISTRY", str(registry))


def _lay_out_cache(cache: Path, ckpt: Path, repo: str = REPO, commit: str = COMMIT) -> Path:
    """models--ORG--NAME/{refs/main, blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>}."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (root / "blobs").mkdir()
    for name in ("model.safetensors", "config.json", "README.md"):
        etag = _sha256(ckpt / name)
        shutil.copy(ckpt / name, root / "blobs" / etag)
        os.symlink(os.path.join("..", "..", "blobs", etag), snap / name)
    return snap


_run_cli = run_cli


# --------------------------------------------------------------------------- registry


def test_packaged_registry_parses_and_pins_everything() -> None:
    from svqcast.zoo.registry import load_registry

    reg = load_registry()
    for entry in reg.values():
        assert entry.description and entry.preset
        assert entry.bundled or (entry.repo_id and len(entry.revision or "") >= 7)
        if entry.bundled:
            assert entry.bundled_path() is not None, f"{entry.name}: bundled files missing"
            assert entry.sha256 == _sha256(entry.bundled_path() / "model.safetensors")


def test_bad_registry_entries_are_data_errors(env: Path, tmp_path: Path, monkeypatch) -> None:
    from svqcast.zoo.registry import load_registry

    bad = tmp_path / "bad.toml"
    bad.write_text('[models.x]\ndescription = "d"\npreset = "p"\nrepo_id = "a/b"\n')  # no revision
    monkeypatch.setenv("SVQCAST_ZOO_REGISTRY", str(bad))
    with pytest.raises(DataError, match="pinned revision"):
        load_registry()
    bad.write_text('[models.x]\ndescription = "d"\npreset = "p"\nbundled = "x"\nsha256 = "abc"\n')
    with pytest.raises(DataError, match="sha256"):
        load_registry()


def test_unknown_model_suggests(env: Path) -> None:
    from svqcast.zoo.hub import resolve_checkpoint

    with pytest.raises(UsageError, match="models list"):
        resolve_checkpoint("no-such-model")


# --------------------------------------------------------------------------- offline cache


def test_offline_load_from_a_hub_cache(env: Path, ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import svqcast

    snap = _lay_out_cache(env / "hub", ckpt)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _use_registry(monkeypatch, tmp_path, ckpt)
    fc = svqcast.load_model("tiny-era5")
    assert fc.spec.dataset == "era5-uk-t2m" and fc.t_out == 12
    for ref in (f"hf://{REPO}", f"hf://{REPO}@main", f"hf://{REPO}@{COMMIT}"):
        from svqcast.zoo.hub import resolve_checkpoint

        assert resolve_checkpoint(ref) == snap
    code, out, _ = _run_cli(["models", "list", "tiny", "--format", "json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["tiny-era5"] and rows[0]["cached"] is True


def test_tampered_weights_are_refused_exit_3(env: Path, ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    snap = _lay_out_cache(env / "hub", ckpt)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _use_registry(monkeypatch, tmp_path, ckpt)
    blob = (snap / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # flip bits of the last weight byte
    blob.write_bytes(bytes(data))
    code, _, err = _run_cli(["predict", "x.nc", "--check", "--model", "tiny-era5"], capsys)
    assert code == 3
    assert "sha256" in err and "tampered" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # without a registry pin the checkpoint's own recorded sha256 still catches it
    with pytest.raises(DataError, match="sha256"):
        import svqcast

        svqcast.load_model(f"hf://{REPO}")


def test_offline_without_cache_is_exit_4_naming_download(env: Path, ckpt: Path, tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _use_registry(monkeypatch, tmp_path, ckpt)
    code, _, err = _run_cli(["predict", "x.nc", "--check", "--model", "tiny-era5"], capsys)
    assert code == 4
    assert "tiny-era5" in err and "svqcast models download tiny-era5" in err
    with pytest.raises(NetworkError):
        from svqcast.zoo.hub import resolve_checkpoint

        resolve_checkpoint(f"hf://{REPO}@main")


# --------------------------------------------------------------------------- local Hub endpoint


class _Hub:
    """A minimal Hub: /{org}/{name}/resolve/{revision}/{file}, HEAD and GET."""

    def __init__(self, files: dict[str, bytes], repo: str = REPO, commit: str = COMMIT) -> None:
        self.files, self.repo, self.commit = files, repo, commit
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def _route(self, head: bool) -> None:
                hub.requests.append((self.command, self.path))
                prefix = f"/{hub.repo}/resolve/"
                if not self.path.startswith(prefix):
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                revision, _, name = self.path[len(prefix):].partition("/")
                if revision not in ("main", hub.commit):
                    self.send_response(404)
                    self.send_header("X-Error-Code", "RevisionNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if name not in hub.files:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("X-Repo-Commit", hub.commit)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = hub.files[name]
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0] or 0)
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if not head:
                    self.wfile.write(body[start:])

            def do_HEAD(self) -> None:
                self._route(head=True)

            def do_GET(self) -> None:
                self._route(head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_download_from_a_local_hub_endpoint_then_offline(env: Path, ckpt: Path, tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    import svqcast

    files = {n: (ckpt / n).read_bytes() for n in ("model.safetensors", "config.json")}  # no README: optional
    _use_registry(monkeypatch, tmp_path, ckpt)
    with _Hub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, out, err = _run_cli(["models", "download", "tiny-era5", "--format", "json"], capsys)
        assert code == 0, err
        path = Path(json.loads(out)["path"])
        # pinned revision asked for, never "main"
        # every file request is pinned to the commit; "/" is svqcast's HEAD probe (does the server answer?)
        assert all(f"/resolve/{COMMIT}/" in p for _, p in hub.requests if p != "/")
        weights = f"/{REPO}/resolve/{COMMIT}/model.safetensors"
        assert {("HEAD", weights), ("GET", weights)} <= set(hub.requests)
    # the cache now has huggingface_hub's layout
    root = env / "hub" / f"models--{REPO.replace('/', '--')}"
    assert path == root / "snapshots" / COMMIT
    assert (path / "model.safetensors").is_symlink()
    assert (root / "blobs" / _sha256(ckpt / "model.safetensors")).is_file()
    # and works with the network gone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fc = svqcast.load_model("tiny-era5")
    assert fc.ref == "tiny-era5"


def test_hub_serving_different_weights_is_refused(env: Path, ckpt: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    files = {n: (ckpt / n).read_bytes() for n in ("model.safetensors", "config.json")}
    files["model.safetensors"] = files["model.safetensors"][:-1] + bytes([files["model.safetensors"][-1] ^ 1])
    _use_registry(monkeypatch, tmp_path, ckpt)
    with _Hub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        code, _, err = _run_cli(["models", "download", "tiny-era5"], capsys)
    assert code == 3 and "sha256" in err


def test_hf_ref_with_unknown_revision_is_usage_error(env: Path, ckpt: Path, monkeypatch) -> None:
    from svqcast.zoo.hub import resolve_checkpoint

    files = {n: (ckpt / n).read_bytes() for n in ("model.safetensors", "config.json")}
    with _Hub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(UsageError, match="revision 'v9' not found"):
            resolve_checkpoint(f"hf://{REPO}@v9")
        assert resolve_checkpoint(f"hf://{REPO}@main").name == COMMIT


# --------------------------------------------------------------------------- push


def test_push_uploads_exactly_the_checkpoint_and_a_generated_card(ckpt: Path, tmp_path: Path) -> None:
    from svqcast.zoo.hub import push_model

    run = tmp_path / "run"
    shutil.copytree(ckpt, run / "best")
    rows = [
        {"epoch": 0, "train_loss": 0.9, "val_loss": 0.50},
        {"epoch": 1, "train_loss": 0.5, "val_loss": 0.31},
        {"epoch": 2, "train_loss": 0.4, "val_loss": 0.35},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen: dict = {}

    def fake_upload(folder: Path, repo_id: str, revision, private: bool, message: str) -> str:
        seen["files"] = {p.name: p.read_bytes() for p in folder.iterdir()}
        seen["args"] = (repo_id, revision, private, message)
        return f"https://hub.example/{repo_id}/commit/abc"

    result = push_model(run, "me/era5-tiny", revision="v1", private=True, upload=fake_upload)
    assert sorted(seen["files"]) == ["README.md", "config.json", "model.safetensors"]
    assert seen["files"]["model.safetensors"] == (ckpt / "model.safetensors").read_bytes()
    assert seen["files"]["config.json"] == (ckpt / "config.json").read_bytes()
    assert seen["args"][:3] == ("me/era5-tiny", "v1", True)
    card = seen["files"]["README.md"].decode()
    parsed = huggingface_hub.ModelCard(card)
    assert parsed.data.library_name == "svqcast" and parsed.data.license == "apache-2.0"
    assert card.startswith("---\n") and "era5-uk-t2m" in (parsed.data.datasets or [])
    assert "best validation epoch 2: val_loss 0.31" in card  # row epoch 1, counted from 0
    assert "hid_S=4" in card and "N_T=2" in card and "era5-uk-t2m" in card
    assert _sha256(ckpt / "model.safetensors") in card
    assert "svqcast predict input.nc -o forecast.nc --model hf://me/era5-tiny" in card
    assert result["files"] == ["README.md", "config.json", "model.safetensors"]
    assert result["reference"] == "hf://me/era5-tiny@v1"


def test_push_refuses_bad_input(ckpt: Path, tmp_path: Path, env: Path, monkeypatch, capsys) -> None:
    from svqcast.zoo.hub import push_model

    with pytest.raises(UsageError, match="ORG/NAME"):
        push_model(ckpt, "no-slash", upload=lambda *a: "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a svqcast checkpoint"):
        push_model(tmp_path / "empty", "a/b", upload=lambda *a: "x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = _run_cli(["models", "push", str(ckpt), "--repo-id", "me/x"], capsys)
    assert code == 4 and "HF_HUB_OFFLINE" in err


# --------------------------------------------------------------------------- the packaged zoo


def _bundled_names() -> list[str]:
    from svqcast.zoo.registry import list_models

    return [e.name for e in list_models() if e.bundled]


def test_the_zoo_has_a_bundled_default() -> None:
    from svqcast.zoo.registry import default_model_name, get_entry

    entry = get_entry(default_model_name())
    assert entry.bundled and entry.bundled_path() is not None
    # it beats persistence on the held-out week, as measured and recorded
    m = entry.metrics
    assert m["test_mae"] < m["persistence_mae"] and m["test_rmse"] < m["persistence_rmse"]


@pytest.mark.parametrize("name", _bundled_names())
def test_every_bundled_model_loads_and_its_card_matches(name: str, env: Path, capsys) -> None:
    import svqcast
    from svqcast.zoo.registry import get_entry

    entry = get_entry(name)
    fc = svqcast.load_model(name)
    assert fc.meta["preset"] == entry.preset
    assert fc.spec.dataset == entry.data["dataset"] and fc.t_in == entry.data["t_in"]
    card = (entry.bundled_path() / "README.md").read_text()
    # the card's per-lead tables hold the registry's per-lead MAE of the model and of persistence
    # (the card rounds the exact values to 3 decimals, the registry to 4: compare within 6e-4)
    for forecast, label in (("test", "| **this model** |"), ("persistence", "| persistence |")):
        rows = [[float(v) for v in line.strip(" |").split("|")[1:]] for line in card.splitlines()
                if line.startswith(label)]
        by_lead = [v for k, v in entry.metrics.items() if k.startswith(f"{forecast}_mae") and "_by_lead" in k]
        assert by_lead and all(any(len(r) == len(row) and np.allclose(r, row, rtol=0, atol=6e-4) for r in rows)
                               for row in by_lead), forecast
    code, out, _ = _run_cli(["models", "info", name, "--format", "json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["bundled_available"] and info["sha256"] == entry.sha256
    code, out, _ = _run_cli(["models", "download", name, "--format", "json"], capsys)
    assert code == 0 and json.loads(out)["status"].startswith("bundled")


# --------------------------------------------------------------------------- failure paths (issue 12, class 12)


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_fails_fast_with_one_line(tmp_path: Path) -> None:
    """The acceptance check of issue 11: exit 4 within 5 s, one stderr line, no retries printed."""
    import subprocess
    import sys
    import time

    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", SVQCAST_CACHE_DIR=str(tmp_path / "c"))
    env.pop("HF_HUB_OFFLINE", None)
    (tmp_path / "in.nc").write_bytes(b"")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from svqcast.cli.main import run; run()", "predict", "in.nc", "-o", "out.nc",
         "--model", "hf://org/name@rev"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    elapsed = time.monotonic() - t0  # ~3 s on an idle machine, start-up included (was 27 s); not asserted
    assert proc.returncode == 4, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "unreachable" in proc.stderr, elapsed
    assert "Retry" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.nc").exists()


def test_an_unreachable_hub_is_never_retried(env: Path, monkeypatch) -> None:
    """Why it is fast: after the pre-flight connection check fails, huggingface_hub is only
    asked for the cache (local_files_only), so none of its retry loops runs."""
    import huggingface_hub

    from svqcast.zoo.hub import resolve_checkpoint

    calls: list[dict] = []

    def fake_download(**kwargs):
        calls.append(kwargs)
        raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kw: fake_download(**kw))
    with pytest.raises(NetworkError, match="unreachable") as info:
        resolve_checkpoint("hf://org/name@rev")
    assert calls and all(c["local_files_only"] for c in calls) and "\n" not in str(info.value)


def test_hub_404_is_not_found_not_unreachable(env: Path, ckpt: Path) -> None:
    from svqcast.zoo.hub import resolve_checkpoint

    with _Hub({}) as hub, pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_ENDPOINT", hub.url)
        with pytest.raises(UsageError, match="not found") as info:
            resolve_checkpoint("hf://other-org/missing@main")
    assert "unreachable" not in str(info.value)


def test_empty_revision_is_refused() -> None:
    from svqcast.zoo.hub import parse_hf_ref

    with pytest.raises(UsageError, match="empty revision"):
        parse_hf_ref("hf://org/name@")
    assert parse_hf_ref("hf://org/name") == ("org/name", "main")


def test_local_sha_mismatch_does_not_blame_the_registry(ckpt: Path, tmp_path: Path) -> None:
    from svqcast.zoo.hub import verify_checkpoint_integrity

    local = tmp_path / "local"
    shutil.copytree(ckpt, local)
    data = bytearray((local / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (local / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        verify_checkpoint_integrity(local, str(local))
    msg = str(info.value)
    assert "registry" not in msg and "Hub cache" not in msg and "config.json records" in msg


def test_nonexistent_path_does_not_suggest_an_hf_ref() -> None:
    from svqcast.zoo.hub import resolve_checkpoint

    with pytest.raises(UsageError) as info:
        resolve_checkpoint("/nonexistent")
    assert "hf:///" not in str(info.value)
    with pytest.raises(UsageError, match="hf://org/name"):
        resolve_checkpoint("org/name")


def test_hub_module_assigns_no_huggingface_hub_attribute() -> None:
    """No patching: hub.py and modelcard.py never assign to anything reached from huggingface_hub."""
    import ast

    import svqcast.zoo.card
    import svqcast.zoo.hub

    for module in (svqcast.zoo.hub, svqcast.zoo.card):
        tree = ast.parse(Path(module.__file__).read_text())
        hf_names = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and (n.module or "").startswith("huggingface_hub") for a in n.names}
        hf_names |= {"huggingface_hub"}
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for t in targets:
                while isinstance(t, ast.Attribute):
                    t = t.value
                    if isinstance(t, ast.Name):
                        assert t.id not in hf_names, f"{module.__name__} assigns to {t.id}.*"
        assert "HF_HUB_CACHE\"]" not in Path(module.__file__).read_text()


def test_card_is_valid_hub_card_data_with_eval_results(ckpt: Path) -> None:
    from huggingface_hub import ModelCard

    from svqcast.zoo.card import model_card, training_card
    from svqcast.zoo.checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(ckpt)
    card = ModelCard(model_card(meta, name="tiny", metrics={"test_mae": 1.25, "test_rmse": 1.5, "note": "x"}))
    results = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert results == {"test_mae": 1.25, "test_rmse": 1.5}
    assert card.data.eval_results[0].dataset_name == "era5-uk-t2m"
    text = training_card(meta["config"], {"epoch": 3, "val_loss": 0.25, "seed": 7}, "best validation loss")
    parsed = ModelCard(text)
    # provenance counts epochs done (the loop writes epoch + 1): the card shows it as is, never one more
    assert parsed.data.library_name == "svqcast" and "epoch 3, val_loss 0.25" in text


def test_push_with_the_hub_unreachable_is_exit_4(ckpt: Path, env: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    code, _, err = _run_cli(["models", "push", str(ckpt), "--repo-id", "me/x"], capsys)
    assert code == 4 and "unreachable" in err and len(err.strip().splitlines()) == 1


def test_the_card_usage_snippet_runs_as_written(env: Path, ckpt: Path, tmp_path: Path, monkeypatch) -> None:
    """The Python snippet of a pushed model's card, executed verbatim against the local Hub
    stand-in, forecasts; the card's metadata is what the Hub renders for a library."""
    import re

    from _predict_fixtures import SAMPLE

    from svqcast.zoo.card import model_card

    meta = json.loads((ckpt / "config.json").read_text())
    meta["provenance"] = {**(meta.get("provenance") or {}),
                          "fine_tuned_from": {"parent": "hf://org/parent@v1", "weights_sha256": "0" * 64}}
    card = model_card(meta, name="tiny", repo_id=REPO)
    parsed = huggingface_hub.ModelCard(card).data.to_dict()
    assert parsed["library_name"] == "svqcast" and parsed["pipeline_tag"] and parsed["tags"]
    assert parsed["base_model"] == "org/parent" and parsed.get("datasets")
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    files = {n: (ckpt / n).read_bytes() for n in ("model.safetensors", "config.json")}
    shutil.copy(SAMPLE, tmp_path / "input.nc")
    monkeypatch.chdir(tmp_path)
    with _Hub(files) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        scope: dict[str, object] = {}
        exec(compile(snippet, "card-snippet", "exec"), scope)  # noqa: S102  (our own card's snippet)
    assert "t2m" in scope["fc"].data_vars  # type: ignore[attr-defined]
