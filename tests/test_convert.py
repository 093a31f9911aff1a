"""OpenSTL checkpoint import: key mapping, strict round trip for all 13 translators, safety."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import svqcast
from svqcast.cli.main import run
from svqcast.models.translators import TRANSLATOR_NAMES
from svqcast.zoo.checkpoint import load_checkpoint
from svqcast.zoo.convert import openstl_to_svqcast_key, svqcast_to_openstl_key

TINY = [
    "model.in_shape=[4, 1, 16, 16]",
    "model.out_frames=4",
    "model.hid_S=8",
    "model.hid_T=16",
    "model.N_T=2",
    "model.codebook_size=16",
]
WRAPPERS = ["plain", "state_dict", "module", "state_dict+module"]


def overrides_dict(items: list[str]) -> dict:
    from svqcast.config import parse_overrides

    return parse_overrides(items)


def source_model(preset: str, translator: str) -> torch.nn.Module:
    extra = ["model.swin_shift_mask=false"] if translator == "swin" else []
    torch.manual_seed(0)
    model = svqcast.build_model(preset, overrides=overrides_dict(TINY + extra))
    with torch.no_grad():  # make every buffer informative (BN stats start at 0/1)
        for name, buf in model.named_buffers():
            if buf.dtype.is_floating_point and "mask" not in name:
                buf.add_(torch.rand_like(buf))
    return model.eval()


def write_openstl(model: torch.nn.Module, path: Path, wrapper: str, quantizer: str) -> None:
    state = {svqcast_to_openstl_key(k, quantizer): v.clone() for k, v in model.state_dict().items()}
    if "module" in wrapper:
        state = {"module." + k: v for k, v in state.items()}
    obj: object = state
    if "state_dict" in wrapper:
        obj = {"epoch": 7, "state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-3}]}}
    torch.save(obj, path)


def cli(argv: list[str]) -> int:
    try:
        run(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_key_mapping_matches_spec_names() -> None:
    assert openstl_to_svqcast_key("vq.vq.codebook") == "quantizer.codebook"
    assert (
        openstl_to_svqcast_key("vq.vq.proj_regression_weight.linear_proj2.weight")
        == "quantizer.proj.linear_proj2.weight"
    )
    assert openstl_to_svqcast_key("enc.enc.0.conv.conv.weight") == "enc.enc.0.conv.conv.weight"
    assert openstl_to_svqcast_key("dec.readout.bias") == "dec.readout.bias"
    assert openstl_to_svqcast_key("hid.enc.3.block.mlp.fc1.weight") == "hid.enc.3.block.mlp.fc1.weight"
    assert openstl_to_svqcast_key("vq.vq._codebook.embed", "vq") == "quantizer.lib._codebook.embed"
    for key in ("quantizer.codebook", "quantizer.proj.linear_proj.bias", "hid.enc.0.reduction.weight"):
        assert openstl_to_svqcast_key(svqcast_to_openstl_key(key)) == key
    model = svqcast.build_model("weatherbench-s-t2m_gsta_svq", overrides=overrides_dict(TINY))
    names = {svqcast_to_openstl_key(k) for k in model.state_dict()}
    assert {"vq.vq.codebook", "vq.vq.proj_regression_weight.linear_proj.weight",
            "vq.vq.proj_regression_weight.linear_proj2.bias", "dec.readout.weight"} <= names


@pytest.mark.parametrize("with_svq", [False, True], ids=["plain", "svq"])
@pytest.mark.parametrize("translator", TRANSLATOR_NAMES)
def test_round_trip(translator: str, with_svq: bool, tmp_path: Path) -> None:
    preset = f"weatherbench-s-t2m_{translator}" + ("_svq" if with_svq else "")
    quantizer = "svq" if with_svq else "none"
    src = source_model(preset, translator)
    wrapper = WRAPPERS[(TRANSLATOR_NAMES.index(translator) + with_svq) % len(WRAPPERS)]
    pth = tmp_path / "checkpoint.pth"
    write_openstl(src, pth, wrapper, quantizer)
    out = tmp_path / "converted"
    argv = ["models", "convert", "openstl", str(pth), "--preset", preset, "-o", str(out), "--format", "json"]
    for item in TINY:
        argv += ["--set", item]
    assert cli(argv) == 0
    model, meta = load_checkpoint(out)  # strict
    assert meta["provenance"]["converted_from"] == "openstl"
    if translator == "swin":
        assert meta["config"]["model"]["swin_shift_mask"] is False
    x = torch.randn(2, 4, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = src(x)
        got = model(x)
    assert torch.equal(got, expected)
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


@pytest.fixture()
def good_checkpoint(tmp_path: Path) -> Path:
    src = source_model("weatherbench-s-t2m_gsta_svq", "gsta")
    path = tmp_path / "good.pth"
    write_openstl(src, path, "plain", "svq")
    return path


def convert_argv(pth: Path, out: Path, preset: str = "weatherbench-s-t2m_gsta_svq") -> list[str]:
    argv = ["models", "convert", "openstl", str(pth), "--preset", preset, "-o", str(out)]
    for item in TINY:
        argv += ["--set", item]
    return argv


def assert_clean_failure(capsys, out: Path, code: int, expected: int = 3) -> str:
    err = capsys.readouterr().err.strip()
    assert code == expected, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp dir left
    return err


def test_corrupt_and_truncated_files(tmp_path: Path, good_checkpoint: Path, capsys) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(4096))
    out = tmp_path / "out"
    assert_clean_failure(capsys, out, cli(convert_argv(junk, out)))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good_checkpoint.read_bytes()[:2000])
    err = assert_clean_failure(capsys, out, cli(convert_argv(cut, out)))
    assert "cut.pth" in err
    not_a_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_a_state)
    assert_clean_failure(capsys, out, cli(convert_argv(not_a_state, out)))


def test_wrong_preset_names_the_key(tmp_path: Path, good_checkpoint: Path, capsys) -> None:
    out = tmp_path / "out"
    err = assert_clean_failure(capsys, out, cli(convert_argv(good_checkpoint, out, "weatherbench-s-t2m_gsta")))
    assert "vq.vq." in err  # the SVQ keys are unexpected for a preset without a quantizer
    err = assert_clean_failure(capsys, out, cli(convert_argv(good_checkpoint, out, "weatherbench-s-t2m_swin_svq")))
    assert "key" in err
    argv = convert_argv(good_checkpoint, out) + ["--set", "model.codebook_size=32"]
    err = assert_clean_failure(capsys, out, cli(argv))
    assert "shape mismatch" in err and "vq.vq" in err


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp") / f"svqcast-convert-pwned-{os.getpid()}"


def test_pickle_needing_code_execution_is_refused(tmp_path: Path, good_checkpoint: Path, capsys) -> None:
    MARKER.unlink(missing_ok=True)
    state = torch.load(good_checkpoint, weights_only=True)
    evil = tmp_path / "latest.pth"
    torch.save({"state_dict": state, "hook": _Exploit()}, evil)
    out = tmp_path / "out"
    err = assert_clean_failure(capsys, out, cli(convert_argv(evil, out)))
    assert "code execution" in err and "system" in err
    assert not MARKER.exists()
    raw = tmp_path / "raw.pth"  # a bare pickle (legacy format) with the same payload
    raw.write_bytes(pickle.dumps({"state_dict": state, "x": _Exploit()}))
    assert_clean_failure(capsys, out, cli(convert_argv(raw, out)))
    assert not MARKER.exists()


def test_existing_output_and_missing_file(tmp_path: Path, good_checkpoint: Path, capsys) -> None:
    out = tmp_path / "out"
    assert cli(convert_argv(good_checkpoint, out)) == 0
    capsys.readouterr()
    assert cli(convert_argv(good_checkpoint, out)) == 2
    assert "exists" in capsys.readouterr().err
    assert cli(convert_argv(good_checkpoint, out) + ["--overwrite"]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["provenance"]["source_file"] == "good.pth"
    assert cli(convert_argv(tmp_path / "nope.pth", tmp_path / "o2")) == 2
    assert cli(convert_argv(good_checkpoint, tmp_path / "o3", "no-such-preset")) == 2
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()
