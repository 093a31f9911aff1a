"""Config resolution: presets, `extends`, user TOML files and validated dotted overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from svqcast.config import (
    apply_overrides,
    deep_merge,
    list_presets,
    load_config,
    parse_overrides,
    read_json_config,
    validate_checkpoint_meta,
    validate_config,
)
from svqcast.errors import DataError, UsageError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_fragment_is_not_a_preset() -> None:
    assert "_defaults" not in list_presets()


def test_user_toml_extends_shipped_defaults(tmp_path: Path) -> None:
    cfg_path = _write(
        tmp_path / "mine.toml",
        'extends = "_defaults"\n[model]\nhid_S = 8\n[train]\nlr = 0.5\n',
    )
    cfg = load_config(cfg_path)
    assert cfg["model"]["hid_S"] == 8
    assert cfg["train"]["lr"] == 0.5
    assert cfg["model"]["translator"] == "gsta"  # inherited
    assert cfg["name"] == "mine"


def test_relative_extends_chain(tmp_path: Path) -> None:
    _write(tmp_path / "base.toml", 'extends = "_defaults"\n[model]\nhid_T = 32\nN_T = 2\n')
    child = _write(tmp_path / "child.toml", 'extends = "base.toml"\n[model]\nN_T = 3\n')
    cfg = load_config(child)
    assert (cfg["model"]["hid_T"], cfg["model"]["N_T"]) == (32, 3)


def test_extends_cycle_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    _write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(DataError, match="extends"):
        load_config(tmp_path / "a.toml")


def test_overrides_from_strings_and_mapping(tmp_path: Path) -> None:
    cfg_path = _write(tmp_path / "m.toml", 'extends = "_defaults"\n')
    cfg = load_config(cfg_path, ["model.codebook_size=4096", "train.lr=1e-3", "model.post_vq=true"])
    assert cfg["model"]["codebook_size"] == 4096
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    assert cfg["model"]["post_vq"] is True
    cfg = load_config(cfg_path, {"model.in_shape": [4, 2, 16, 16], "train.lr": 1})
    assert cfg["model"]["in_shape"] == [4, 2, 16, 16]
    assert isinstance(cfg["train"]["lr"], float)  # int widened to float


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"model.codebok_size": 3}, "model.codebok_size: no such config key.*model.codebook_size"),
        ({"model.codebook_size": "big"}, "expected an integer"),
        ({"model.post_vq": 1}, "expected a boolean"),
        ({"model": 1}, "is a section"),
    ],
)
def test_bad_overrides_name_the_key(override: dict, message: str, tmp_path: Path) -> None:
    cfg_path = _write(tmp_path / "m.toml", 'extends = "_defaults"\n')
    with pytest.raises(UsageError, match=message):
        load_config(cfg_path, override)


def test_set_syntax_errors() -> None:
    with pytest.raises(UsageError, match="key=value"):
        parse_overrides(["model.hid_S"])
    assert parse_overrides(["data.dataset=era5-uk-t2m"]) == {"data.dataset": "era5-uk-t2m"}


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(UsageError, match="unknown preset"):
        load_config("no-such-preset_at_all")


def test_deep_merge_does_not_mutate_inputs() -> None:
    base = {"a": {"b": 1, "c": [1]}}
    top = {"a": {"b": 2}}
    merged = deep_merge(base, top)
    assert merged == {"a": {"b": 2, "c": [1]}}
    assert base == {"a": {"b": 1, "c": [1]}}
    merged["a"]["c"].append(2)
    assert base["a"]["c"] == [1]


def test_invalid_toml_is_a_data_error(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.toml", "[model\nhid_S = \n")
    with pytest.raises(DataError, match="not valid TOML"):
        load_config(bad)


def test_apply_overrides_in_place() -> None:
    cfg = {"train": {"lr": 0.1}}
    apply_overrides(cfg, {"train.lr": 0.2})
    assert cfg == {"train": {"lr": 0.2}}


# --------------------------------------------------------------------------- one schema (issue 12, class 11)

BAD_VALUES = [
    ("model.codebook_size", -1), ("model.codebook_size", 0), ("model.codebook_size", 10**12),
    ("model.hid_S", 10**6), ("train.batch_size", 0), ("train.lr", -1.0), ("train.lr", float("nan")),
    ("train.lr", float("inf")), ("train.num_workers", -1), ("train.epochs", 0), ("train.epochs", -3),
]


@pytest.mark.parametrize("key, value", BAD_VALUES)
def test_out_of_range_values_are_refused_in_set_and_toml(tmp_path: Path, key: str, value: object) -> None:
    section, name = key.split(".")
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        load_config("era5-uk-t2m_gsta", {key: value})
    literal = {float("nan"): "nan", float("inf"): "inf"}.get(value, repr(value)) if isinstance(value, float) else value
    path = _write(tmp_path / "c.toml", f'extends = "_defaults"\n[{section}]\n{name} = {literal}\n')
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        load_config(path)


@pytest.mark.parametrize("body, match", [
    ('[train]\nlr = "0.001"\n', "train.lr: expected a number"),
    ("[train]\nepochs = 1.5\n", "train.epochs: expected an integer"),
    ("[trian]\nlr = 0.1\n", "unknown config section"),
    ("[model]\nhid_s = 8\n", r"did you mean model\.hid_S"),
    ("[model]\nin_shape = [12, 1, 32]\n", "four positive integers"),
])
def test_toml_files_pass_the_same_schema_as_set(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        load_config(_write(tmp_path / "c.toml", 'extends = "_defaults"\n' + body))


def test_schema_accepts_every_preset_and_coerces_like_set(tmp_path: Path) -> None:
    for name in list_presets():
        assert validate_config(load_config(name))["name"] == name
    cfg = load_config(_write(tmp_path / "c.toml", 'extends = "_defaults"\n[train]\nlr = 1\nprecision = 32\n'))
    assert cfg["train"]["lr"] == 1.0 and isinstance(cfg["train"]["lr"], float) and cfg["train"]["precision"] == "32"


def test_unreadable_config_files_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "b.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(DataError, match="not valid TOML"):
        load_config(binary)
    (tmp_path / "d.toml").mkdir()
    with pytest.raises(UsageError, match="directory"):
        load_config(tmp_path / "d.toml")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match="nested too deeply|JSON object"):
        read_json_config(deep)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must be a JSON object, got a list"):
        read_json_config(tmp_path / "list.json")


def _meta() -> dict:
    return {"format_version": 1, "config": load_config("era5-uk-t2m_gsta"), "weights_sha256": "a" * 64,
            "data_spec": {}, "provenance": {}, "preset": "era5-uk-t2m_gsta", "svqcast_version": "0"}


@pytest.mark.parametrize("change, match", [
    ({"surprise": 1}, "unknown keys"),
    ({"format_version": 99}, "format_version 99"),
    ({"weights_sha256": None}, "weights_sha256"),
    ({"config": {"model": {"codebook_size": 0}}}, "codebook_size"),
    ({"config": [1, 2]}, "table of sections"),
])
def test_checkpoint_meta_is_validated(change: dict, match: str) -> None:
    meta = {**_meta(), **change}
    if change.get("weights_sha256", 1) is None:
        del meta["weights_sha256"]
    with pytest.raises(DataError, match=match):
        validate_checkpoint_meta(meta, "ckpt", 1)
    assert validate_checkpoint_meta(_meta(), "ckpt", 1)["config"]["name"] == "era5-uk-t2m_gsta"
    json.dumps(_meta())
