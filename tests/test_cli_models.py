"""`svqcast models presets|describe` through the real Typer app."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from svqcast.cli.main import app

runner = CliRunner()


def test_presets_json_lists_every_paper_preset() -> None:
    res = runner.invoke(app, ["models", "presets", "--format", "json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    by_name = {r["name"]: r for r in rows}
    row = by_name["weatherbench-s-t2m_gsta_svq"]
    assert row["translator"] == "gsta" and row["quantizer"] == "svq" and row["codebook_size"] == 10000
    assert row["dataset"] == "weatherbench-s-t2m"
    assert by_name["kth_incepu_svq-frozen"]["codebook_size"] == 6000
    assert by_name["human36m_gsta"]["quantizer"] == "none"


def test_presets_text_table() -> None:
    res = runner.invoke(app, ["models", "presets"])
    assert res.exit_code == 0
    assert "taxibj_convnext_svq" in res.stdout


def test_describe_json_matches_table12() -> None:
    res = runner.invoke(app, ["models", "describe", "weatherbench-s-t2m_gsta_svq", "--format", "json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert {"params", "trainable_params", "flops", "input_shape", "output_shape"} <= set(info)
    assert info["params"] == 14_372_529 == info["trainable_params"]
    assert info["flops"] == 16_861_167_616
    assert info["flops_fused"] < info["flops"] / 2
    assert info["input_shape"] == [1, 12, 1, 32, 64] == info["output_shape"]


def test_describe_set_override_and_toml_path(tmp_path) -> None:
    res = runner.invoke(
        app, ["models", "describe", "weatherbench-s-t2m_gsta_svq", "--set", "model.codebook_size=4096", "-f", "json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["params"] == 12_758_305 + (32 * 128 + 128) + (128 * 4096 + 4096) + 4096 * 32
    cfg = tmp_path / "mine.toml"
    cfg.write_text('extends = "taxibj_convnext"\n[model]\nout_frames = 2\n')
    res = runner.invoke(app, ["models", "describe", str(cfg), "-f", "json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["params"] == 7_843_554 and info["output_shape"] == [1, 2, 2, 32, 32]


def test_describe_text_output() -> None:
    res = runner.invoke(app, ["models", "describe", "taxibj_convnext"])
    assert res.exit_code == 0, res.output
    assert "7,843,554" in res.stdout and "2,079,162,368" in res.stdout


def test_bad_preset_is_usage_error_one_line() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "svqcast.cli.main", "models", "describe", "weatherbench-s-t2m_gsta_svqq"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown preset")
    assert "weatherbench-s-t2m_gsta_svq" in lines[0]  # the close-match hint
    assert res.stdout == ""


def test_bad_override_is_usage_error() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "svqcast.cli.main", "models", "describe", "taxibj_gsta", "--set", "model.hid_s=3"],
        capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
