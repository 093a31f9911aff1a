"""Package a trained run as the bundled zoo model: checkpoint + model card + registry block.

    svqcast train --preset era5-uk-t2m_gsta_svq --set train.num_threads=2 --run-dir runs/bundled
    svqcast evaluate runs/bundled --per-lead-time --format json > runs/bundled/evaluation.json
    python scripts/bundle_model.py runs/bundled runs/bundled/evaluation.json

It copies RUN/best/{model.safetensors,config.json} into
svqcast/zoo/bundled/<name>/, scores persistence and same-hour-yesterday on the same split
(svqcast.refcast), writes the card (README.md) with all of them side by side, and prints
the [models."<name>"] block for svqcast/zoo/registry.toml. Nothing here invents numbers:
the model's come from `svqcast evaluate`, the references from svqcast.refcast.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from svqcast.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_checkpoint_meta
from svqcast.fsutil import atomic_dir, sha256_file
from svqcast.hub import _best_val, model_card
from svqcast.refcast import reference_scores

PACKAGE = Path(__file__).resolve().parents[1] / "svqcast"
LEADS_SHOWN = (1, 3, 6, 12)


def _row(label: str, s: dict, ch: str) -> str:
    wb2 = s.get("wb2", {})
    acc = wb2.get("acc", {}).get(ch)
    acc_txt = f"{acc:.3f}" if isinstance(acc, (int, float)) else "-"
    return (f"| {label} | {s['mae']:.3f} | {s['rmse']:.3f} | {wb2['mae'][ch]:.3f} | "
            f"{wb2['rmse'][ch]:.3f} | {acc_txt} |")


def scores_table(ev: dict, refs: dict) -> tuple[str, dict]:
    ch = ev["channels"][0]
    units = ev["units"][0]
    sc = ev["scores"]
    lines = [
        f"Held-out test split of `{ev['dataset']}` ({ev['samples']} forecasts from 27-31 March 2019, "
        f"12 hourly leads each), scored by `svqcast evaluate` (model, persistence, climatology) and "
        f"`svqcast.refcast` (same hour yesterday). Units: {units}. MAE/RMSE: plain means over all "
        "grid points and leads (OpenSTL convention); lat-w.: latitude-weighted (WeatherBench2 style), "
        "averaged over leads.",
        "",
        "| forecast | MAE | RMSE | lat-w. MAE | lat-w. RMSE | ACC |",
        "|---|---|---|---|---|---|",
        _row("**this model**", sc["model"], ch),
        _row("persistence", sc["persistence"], ch),
        _row("same hour yesterday", refs["scores"]["same_hour_yesterday"], ch),
        _row("climatology (train, hour of day)", sc["climatology"], ch),
    ]
    per = ev.get("per_lead_time")
    if per:
        lines += ["", "Latitude-weighted RMSE by lead time:", "",
                  "| forecast | " + " | ".join(f"+{h} h" for h in LEADS_SHOWN) + " |",
                  "|---|" + "---|" * len(LEADS_SHOWN)]
        series = {
            "this model": per["model"]["rmse"][ch],
            "persistence": per["persistence"]["rmse"][ch],
            "same hour yesterday": refs["scores"]["same_hour_yesterday"]["per_lead_time"]["rmse"][ch],
        }
        for label, vals in series.items():
            lines.append(f"| {label} | " + " | ".join(f"{vals[h - 1]:.3f}" for h in LEADS_SHOWN) + " |")
    metrics = {
        "test_mae": round(sc["model"]["mae"], 4),
        "test_rmse": round(sc["model"]["rmse"], 4),
        "test_rmse_latw": round(sc["model"]["wb2"]["rmse"][ch], 4),
        "persistence_mae": round(sc["persistence"]["mae"], 4),
        "persistence_rmse": round(sc["persistence"]["rmse"], 4),
        "same_hour_yesterday_mae": round(refs["scores"]["same_hour_yesterday"]["mae"], 4),
        "same_hour_yesterday_rmse": round(refs["scores"]["same_hour_yesterday"]["rmse"], 4),
        "climatology_mae": round(sc["climatology"]["mae"], 4),
        "climatology_rmse": round(sc["climatology"]["rmse"], 4),
        "test_samples": int(ev["samples"]),
    }
    return "\n".join(lines), metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training run directory (uses RUN/best)")
    ap.add_argument("evaluation", type=Path, help="JSON of `svqcast evaluate RUN --per-lead-time --format json`")
    ap.add_argument("--name", default="era5-uk-t2m_gsta_svq")
    ap.add_argument("--overrides", default="none",
                    help="the --set overrides used for training (for the card)")
    args = ap.parse_args()

    best = args.run / "best"
    meta = read_checkpoint_meta(best)
    ev = json.loads(args.evaluation.read_text())
    refs = reference_scores(ev["dataset"], ev["split"])
    assert refs["samples"] == ev["samples"], "reference forecasts scored a different number of samples"
    table, metrics = scores_table(ev, refs)
    bv = _best_val(args.run)
    description = (
        "Small SimVP gSTA + SVQ (learnable 10000-code codebook) forecasting ERA5 hourly 2 m "
        "temperature over the UK (32 x 48 at 0.25 deg) 12 h ahead from the previous 12 h. Trained by "
        f"svqcast's own `svqcast train --preset {meta.get('preset')}` (overrides: {args.overrides}) on "
        "the embedded `era5-uk-t2m` sample: train 1-23 March 2019, early stopping on validation 24-26 "
        "March, tested on 27-31 March. A demonstration model: one month of one region is far too little "
        "data for an operational forecast."
    )
    card = model_card(meta, name=args.name, scores_table=table, best_val=bv, description=description,
                      licence="apache-2.0")
    card += (
        "\n## Data licence\n\nTrained on ERA5 (Hersbach et al. 2020, doi:10.1002/qj.3803): contains modified "
        "Copernicus Climate Change Service information 2019 (CC-BY-4.0).\n"
    )
    target = PACKAGE / "zoo" / "bundled" / args.name
    with atomic_dir(target, overwrite=True) as tmp:
        shutil.copy2(best / WEIGHTS_NAME, tmp / WEIGHTS_NAME)
        shutil.copy2(best / CONFIG_NAME, tmp / CONFIG_NAME)
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    sha = sha256_file(target / WEIGHTS_NAME)
    (args.run / "reference_scores.json").write_text(json.dumps(refs, indent=1))
    spec = meta["data_spec"]
    print(f'[models."{args.name}"]')
    print(f'description = "{description.split(". ")[0]}."')
    print(f'preset = "{meta.get("preset")}"')
    print(f'bundled = "zoo/bundled/{args.name}"')
    print(f'sha256 = "{sha}"')
    print('licence = "Apache-2.0 (weights); trained on ERA5, Copernicus C3S licence (CC-BY-4.0)"')
    print("default = true")
    print(f'[models."{args.name}".data]')
    print(f'dataset = "{spec["dataset"]}"')
    print(f"variables = {json.dumps(spec['variables'])}")
    print(f"units = {json.dumps(spec['units'])}")
    print(f'grid = "{len(spec["coords"]["lat"])} x {len(spec["coords"]["lon"])} lat/lon at 0.25 deg, '
          f'lat {spec["coords"]["lat"][0]}..{spec["coords"]["lat"][-1]}, lon {spec["coords"]["lon"][0]}..{spec["coords"]["lon"][-1]}"')
    print(f'time_step = "{int(spec["time_step_seconds"]) // 3600}h"')
    print(f"t_in = {spec['t_in']}")
    print(f"t_out = {spec['t_out']}")
    print(f'[models."{args.name}".metrics]')
    for k, v in metrics.items():
        print(f"{k} = {v}")


if __name__ == "__main__":
    main()
