"""Behaviour kept across refactors: goldens taken before the round-3 house move.

The four bundled models' `svqcast evaluate --format json` numbers are identical (every one of
them, timing aside; numbers added since, such as intervals, are not part of the golden), and
`make demo`'s forecast values are bit-identical.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from _cli import run_cli

from svqcast.data.samples import SAMPLES_DIR

GOLDENS = Path(__file__).parent / "data" / "goldens"
GOLDEN = GOLDENS / "era5-uk-t2m_gsta_svq_evaluate.json"
BUNDLED = ("era5-uk-t2m_gsta_svq", "nyc-taxi_gsta_svq", "nyc-bike_gsta_svq", "moving-mnist_gsta_svq")


def _numbers(value: object, path: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value


@pytest.mark.parametrize("model", BUNDLED)
def test_evaluate_numbers_of_the_bundled_models_are_unchanged(model: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["evaluate", model, "--per-lead-time", "--format", "json"], capsys)
    assert code == 0, err
    got = {k: v for k, v in _numbers(json.loads(out)) if "seconds" not in k and "per_s" not in k}
    want = json.loads((GOLDENS / f"{model}_evaluate.json").read_text())["numbers"]
    assert want.keys() <= got.keys()  # later rounds add numbers (intervals); none of these may change
    changed = [k for k in want if got[k] != want[k]]
    assert not changed, f"{len(changed)} numbers changed, first {changed[:3]}"


def test_demo_forecast_is_bit_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "forecast.nc"
    code, _, err = run_cli(["predict", SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", "-o", out, "--init-time",
                            "2019-03-29T00:00", "--lead-time", "24h"], capsys)
    assert code == 0, err
    with xr.open_dataset(out) as ds:
        values = np.ascontiguousarray(ds["t2m"].values.astype("<f4"))
    assert values.shape == (1, 24, 32, 48)
    digest = hashlib.sha256(values.tobytes()).hexdigest()
    assert digest == json.loads(GOLDEN.read_text())["demo_forecast_t2m_sha256"]
