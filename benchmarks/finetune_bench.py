"""What fine-tuning buys: from the bundled model, against training from scratch, on a new region.

    .venv/bin/python benchmarks/finetune_bench.py --source ERA5_HOURLY.nc --out results/finetune_bench.json

The data (`--source`): hourly ERA5 2 m temperature of March 2019 on a 0.25 deg grid one cell larger
than the bundled model's (33 x 49, lat 50..58, lon -10..2), cut to the 32 x 48 grid shifted by one
cell south and east of the bundled model's, its first 7 days as the training split, the 8th and 9th as
validation, the 10th as test. Both runs use the bundled model's preset and the same seed, budget
and schedule; the fine-tune starts from the bundled weights (`--init-from`), scratch from random
ones; a third run fine-tunes at a tenth of the preset's learning rate. Recorded: the
validation loss after every epoch against optimizer steps, each run's best, and
how many steps the fine-tune needed to reach scratch's best. Each run is a CLI call in this
process; the machine (CPU flags) is recorded with the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quant_common as qc  # noqa: E402


def _cli(args: list[str]) -> None:
    from svqcast.cli.main import run

    try:
        run([str(a) for a in args])
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"svqcast {' '.join(map(str, args))} failed ({exc.code})") from None


def _curve(run: Path) -> list[dict[str, float]]:
    with open(run / "metrics.csv") as fh:
        return [{"epoch": int(r["epoch"]) + 1, "step": int(r["step"]), "val_loss": float(r["val_loss"])}
                for r in csv.DictReader(fh)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("results/finetune_bench.json"))
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--source", type=Path, required=True, help="hourly ERA5 t2m, 33 x 49, March 2019")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="svqcast-ft-"))
    os.environ["SVQCAST_DATA_DIR"] = str(work / "data")
    with xr.open_dataset(a.source) as ds:
        region = ds.isel(lat=slice(0, 32), lon=slice(1, 49), time=slice(0, 264)).load()
    region.to_netcdf(work / "shifted.nc")
    _cli(["prepare", work / "shifted.nc", "--name", "shifted", "--t-in", "25", "--t-out", "12",
          "--split", "train=2019-03-01:2019-03-07", "--split", "val=2019-03-08:2019-03-09",
          "--split", "test=2019-03-10:2019-03-11"])
    common = ["train", "--dataset", "shifted", "--preset", "era5-uk-t2m_gsta_svq_24h", "--max-epochs", a.epochs,
              "--set", f"train.epochs={a.epochs}", "--set", "train.warmup_epochs=1", "--set", "train.num_threads=2",
              "--progress", "none"]
    _cli([*common, "--run-dir", work / "scratch"])
    _cli([*common, "--run-dir", work / "finetune", "--init-from", "era5-uk-t2m_gsta_svq"])
    _cli([*common, "--run-dir", work / "finetune_low_lr", "--init-from", "era5-uk-t2m_gsta_svq",
          "--set", "train.lr=5e-4"])
    scratch, tuned = _curve(work / "scratch"), _curve(work / "finetune")
    low = _curve(work / "finetune_low_lr")
    best = min(r["val_loss"] for r in scratch)
    reach = next((r["step"] for r in tuned if r["val_loss"] <= best), None)
    report: dict[str, Any] = {
        "machine": qc.machine(), "epochs": a.epochs, "region": "ERA5 t2m, 32 x 48 shifted one cell S and E",
        "scratch": scratch, "finetune": tuned, "scratch_best": best, "finetune_best": min(r["val_loss"] for r in tuned),
        "finetune_steps_to_scratch_best": reach, "scratch_steps": scratch[-1]["step"],
        "finetune_low_lr": low, "finetune_low_lr_best": min(r["val_loss"] for r in low)}
    args_out = a.out
    args_out.parent.mkdir(parents=True, exist_ok=True)
    args_out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"scratch best {best:.4f} after {scratch[-1]['step']} steps; fine-tune best {report['finetune_best']:.4f}, "
          f"reached scratch's best after {reach} steps")


if __name__ == "__main__":
    main()
