"""Config resolution: presets, `extends`, user TOML files and validated dotted overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from svqcast.config import apply_overrides, deep_merge, list_presets, load_config, parse_overrides
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
        ({"model.codebook_size": "big"}, "expected a integer"),
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
