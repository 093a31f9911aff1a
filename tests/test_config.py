"""Config resolution: presets, `extends`, user TOML files and validated dotted overrides."""

from __future__ import annotations

import json
import sys
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


# --------------------------------------------------------------------------- one typed tree, defaults always merged

DEFAULTS_TOML = Path(__file__).resolve().parents[1] / "svqcast" / "presets" / "_defaults.toml"


def _toml_defaults() -> dict:
    """`_defaults.toml` read here, independently of svqcast.config_schema."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads(DEFAULTS_TOML.read_text(encoding="utf-8"))


def _sections(cfg: dict) -> dict:
    return {k: cfg[k] for k in ("model", "data", "train")}


def test_dataclass_fields_are_the_toml_keys_with_its_defaults_and_types() -> None:
    import dataclasses
    import typing

    from svqcast.config_schema import SECTION_TYPES

    toml = _toml_defaults()
    assert set(SECTION_TYPES) == {k for k, v in toml.items() if isinstance(v, dict)}
    for section, cls in SECTION_TYPES.items():
        instance, hints = cls(), typing.get_type_hints(cls)
        assert [f.name for f in dataclasses.fields(cls)] == list(toml[section]), section  # same keys, same order
        for key, value in toml[section].items():
            assert getattr(instance, key) == value, f"{section}.{key}"
            kind = typing.get_origin(hints[key]) or hints[key]
            assert isinstance(value, kind) and (kind is bool) == isinstance(value, bool), f"{section}.{key}"


@pytest.mark.parametrize("bare", [{}, {"model": {}, "data": {}, "train": {}}])
def test_a_bare_dict_resolves_to_the_toml_defaults_field_for_field(bare: dict) -> None:
    from svqcast.config import typed_config
    from svqcast.config_schema import SvqcastConfig

    toml = _toml_defaults()
    typed = typed_config(bare)
    assert _sections(typed.to_dict()) == toml
    assert typed == SvqcastConfig()  # the dataclass defaults are the same numbers
    assert _sections(load_config(bare)) == toml and load_config(bare)["name"] == "custom"
    assert _sections(validate_config(bare)) == toml


def test_a_plain_toml_without_extends_gets_the_defaults(tmp_path: Path) -> None:
    plain = _write(tmp_path / "plain.toml", "[model]\nhid_S = 8\n[train]\nlr = 0.5\n")
    cfg = load_config(plain)
    expected = _toml_defaults()
    expected["model"]["hid_S"], expected["train"]["lr"] = 8, 0.5
    assert _sections(cfg) == expected and cfg["name"] == "plain"
    # every key can be `--set`, including those the file does not mention
    assert load_config(plain, ["train.patience=3", "model.out_frames=4"])["train"]["patience"] == 3


def test_a_checkpoint_config_missing_keys_gets_the_defaults(tmp_path: Path) -> None:
    import torch

    from svqcast.models.factory import build_model_from_config
    from svqcast.zoo.checkpoint import load_checkpoint, save_checkpoint

    cfg = load_config({"model": {"in_shape": [4, 1, 16, 16], "hid_S": 4, "hid_T": 8, "N_T": 2}})
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "ckpt", build_model_from_config(cfg), cfg, card="# t\n")
    path = ckpt / "config.json"
    meta = json.loads(path.read_text())
    for section, key in [("model", "out_frames"), ("model", "fused_attn"), ("train", "patience"),
                         ("train", "val_batch_size")]:
        del meta["config"][section][key]  # an older svqcast wrote no such key
    del meta["config"]["data"]
    path.write_text(json.dumps(meta))
    net, loaded = load_checkpoint(ckpt)
    toml = _toml_defaults()
    assert loaded["config"]["model"]["out_frames"] == toml["model"]["out_frames"] == net.out_frames == 12
    assert loaded["config"]["train"]["patience"] == 10 and loaded["config"]["train"]["val_batch_size"] == 16
    assert loaded["config"]["data"] == toml["data"] and loaded["config"]["model"]["hid_S"] == 4


def test_decided_model_defaults_reach_the_model_from_a_dict() -> None:
    """SVQ-raw's codebook is `model.codebook_size` (10000, not the 1024 the code used to
    restate) and T_out is `model.out_frames` (12, not T_in)."""
    import svqcast
    from svqcast.models.quantizers.registry import build_quantizer

    assert build_quantizer({"quantizer": "svq-raw"}, 8).codebook_size == 10000
    small = {"in_shape": [4, 1, 16, 16], "hid_S": 4, "hid_T": 8, "N_T": 2}
    net = svqcast.build_model({"model": {**small, "quantizer": "svq-raw"}})
    assert net.quantizer.codebook_size == 10000 and tuple(net.quantizer.codebook.shape) == (10000, 4)
    assert net.out_frames == 12


def test_decided_train_defaults_reach_the_loop_from_a_dict(tmp_path: Path, monkeypatch) -> None:
    """A dict config without patience / val_batch_size / out_frames trains with the TOML's
    10 / 16 / 12: the early-stopping object, the validation loader and the shape check."""
    from _train_standins import SyntheticWindows, TinyNet, one_thread

    import svqcast.training.loop as loop

    seen, setup = [], loop.setup_trainer

    def keep(*args, **kwargs):  # the Trainer the loop runs, kept for inspection
        seen.append(setup(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(loop, "setup_trainer", keep)
    cfg = {"model": {"in_shape": [3, 1, 8, 8]}, "train": {"epochs": 1, "batch_size": 4, "device": "cpu"}}
    data = SyntheticWindows(8, t_out=12), SyntheticWindows(20, t_out=12, offset=100)
    with one_thread():
        run = loop.train(cfg, run_dir=tmp_path / "r", datasets=data, model_fn=TinyNet, progress="none")
    (t,) = seen
    assert t.early.patience == 10 and t.tc.patience == 10
    assert t.val_loader.batch_size == 16 and t.train_loader.batch_size == 4
    stored = json.loads((run / "config.json").read_text())
    assert stored["model"]["out_frames"] == 12 and stored["train"]["warmup_epochs"] == 5


@pytest.mark.parametrize("item, key", [("train.patience=soon", "train.patience"),
                                       ("train.patiense=3", "train.patiense")])
def test_set_wrong_type_or_unknown_key_on_a_plain_toml_exits_2_one_line(tmp_path: Path, item: str, key: str) -> None:
    import subprocess

    plain = _write(tmp_path / "plain.toml", "[train]\nlr = 0.5\n")
    res = subprocess.run([sys.executable, "-m", "svqcast.cli.main", "models", "describe", str(plain), "--set", item],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "Traceback" not in res.stderr, res.stderr
