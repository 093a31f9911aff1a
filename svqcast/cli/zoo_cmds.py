"""`svqcast models list|info|download|push`: the model zoo (logic in svqcast/zoo/hub.py)."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text

from svqcast.cli.groups import models_app
from svqcast.cli.options import (
    ForceDownloadOpt,
    FormatOpt,
    PrivateOpt,
    PushSourceArg,
    RepoIdOpt,
    RevisionOpt,
    ZooNameArg,
    ZooPatternArg,
    ZooRefArg,
)
from svqcast.cli.output import OutputFormat, emit, out_console, print_table


@models_app.command("list")
def _list(
    pattern: ZooPatternArg = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """List the pretrained models of the zoo.

    Example: svqcast models list era5 --format json
    """
    from svqcast.zoo.hub import entry_report
    from svqcast.zoo.registry import list_models

    rows = [entry_report(e) for e in list_models(pattern)]

    def _text(data: list[dict[str, Any]]) -> None:
        if not data:
            out_console.print("no zoo model matches" + (f" '{pattern}'" if pattern else ""))
            return
        rows = [[r["name"] + (" (default)" if r["default"] else ""), r["preset"],
                 "bundled" if r["bundled_available"] else ("cached" if r["cached"] else "hub"), r["description"]]
                for r in data]
        print_table([("name", True), ("preset", True), ("where", False), ("description", False)], rows)

    emit(rows, fmt, _text)


@models_app.command("info")
def _info(
    name: ZooNameArg,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Show a zoo model: Hub repo and pinned revision, sha256, data, metrics, licence.

    Example: svqcast models info era5-uk-t2m_gsta_svq
    """
    from svqcast.zoo.hub import entry_report
    from svqcast.zoo.registry import get_entry

    info = entry_report(get_entry(name))

    def _text(r: dict[str, Any]) -> None:
        out_console.print(Text.assemble((str(r["name"]), "bold"),
                                        f"{' (default)' if r['default'] else ''}: {r['description']}"))
        for key in ("preset", "repo_id", "revision", "sha256", "licence", "bundled", "reproduce"):
            if r.get(key):
                out_console.print(f"  {key}: {r[key]}")
        where = "bundled" if r["bundled_available"] else ("cached" if r["cached"] else "needs download")
        out_console.print(f"  available: {where}")
        for section in ("data", "metrics"):
            if r.get(section):
                out_console.print(f"  {section}:")
                for k, v in r[section].items():
                    out_console.print(f"    {k}: {v}")

    emit(info, fmt, _text)


@models_app.command("download")
def _download(
    name: ZooRefArg,
    force: ForceDownloadOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Pre-fetch a model into the Hugging Face cache (HF_HOME) for offline use.

    Example: svqcast models download era5-uk-t2m_gsta_svq
    """
    from svqcast.zoo.hub import download_model

    result = download_model(name, force=force)
    emit(result, fmt, lambda r: out_console.print(f"{r['model']}: {r['status']} -> {r['path']}"))


@models_app.command("pull")
def _pull(
    name: ZooRefArg,
    force: ForceDownloadOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """The same as `svqcast models download` (the name other tools use): fetch a model for offline use.

    Example: svqcast models pull hf://org/model@v1
    """
    _download(name, force, fmt)


@models_app.command("push")
def _push(
    source: PushSourceArg,
    repo_id: RepoIdOpt,
    revision: RevisionOpt = None,
    private: PrivateOpt = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Upload a checkpoint to the Hugging Face Hub with a generated model card.

    Uploads model.safetensors, config.json and a README.md card built from the config and the run's
    metrics (a bundled zoo model keeps the card it ships with). Needs a token (HF_TOKEN or `hf auth login`).

    Example: svqcast models push runs/era5 --repo-id me/era5-uk-t2m-svq
    Example: svqcast models push nyc-taxi_gsta_svq --repo-id me/nyc-taxi-svq
    """
    from svqcast.zoo.hub import push_model

    result = push_model(source, repo_id, revision=revision, private=private)
    emit(result, fmt,
         lambda r: out_console.print(f"pushed {', '.join(r['files'])} to {r['reference']} ({r['commit']})"))


def register(app: typer.Typer) -> None:
    """Commands live on the shared `models_app` group (see groups.py); nothing to add here."""
