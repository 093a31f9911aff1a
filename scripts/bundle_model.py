"""Package a trained run as the bundled default zoo model: checkpoint + model card + registry block.

    nice -n 10 svqcast train --preset era5-uk-t2m_gsta_svq_24h --set train.num_threads=2 --run-dir runs/bundled
    svqcast evaluate runs/bundled --per-lead-time --format json > runs/bundled/evaluation.json
    python scripts/bundle_model.py runs/bundled runs/bundled/evaluation.json --overrides "..."

It copies RUN/best/{model.safetensors,config.json} into svqcast/zoo/bundled/<name>/, writes
the card (README.md) with the model's scores next to persistence, same hour yesterday and the
hour-of-day climatology, overall and at every lead time, and prints the [models."<name>"]
block for svqcast/zoo/registry.toml. Nothing here invents numbers: every one comes from the
`svqcast evaluate` JSON (`svqcast.evaluation.zoo_metrics` for the registry, which
tests/test_zoo_default_model.py recomputes).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from svqcast.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_checkpoint_meta
from svqcast.evaluation import zoo_metrics
from svqcast.fsutil import atomic_dir, sha256_file
from svqcast.modelcard import best_val_row, model_card

PACKAGE = Path(__file__).resolve().parents[1] / "svqcast"
REPRODUCE = """
## Reproduce

```bash
nice -n 10 svqcast train --preset {preset} --set train.num_threads=2 --run-dir runs/bundled
svqcast evaluate runs/bundled --per-lead-time --format json > runs/bundled/evaluation.json
python scripts/bundle_model.py runs/bundled runs/bundled/evaluation.json
```

## Limitations

- One month of one region (23 training days): a demonstration of the tool, not an operational
  forecast. Its margin over "same hour yesterday" is small at the longest leads (+12 h: about 2 %).
- It needs the last 24 h of input (25 hourly frames) before the initialisation time.
- Beyond 12 h `svqcast predict` rolls the model out autoregressively; errors grow faster there.
"""
LABELS = {"model": "**this model**", "persistence": "persistence", "same_hour_yesterday": "same hour yesterday",
          "climatology": "climatology (train, hour of day)"}


def _row(label: str, s: dict, ch: str) -> str:
    wb2 = s.get("wb2", {})
    acc = wb2.get("acc", {}).get(ch)
    acc_txt = f"{acc:.3f}" if isinstance(acc, (int, float)) else "-"
    return (f"| {label} | {s['mae']:.3f} | {s['rmse']:.3f} | {wb2['mae'][ch]:.3f} | "
            f"{wb2['rmse'][ch]:.3f} | {acc_txt} |")


def scores_table(ev: dict) -> str:
    """Markdown: overall scores, then latitude-weighted MAE and RMSE at every lead time."""
    ch, units, sc = ev["channels"][0], ev["units"][0], ev["scores"]
    lines = [
        f"Held-out test split of `{ev['dataset']}` ({ev['samples']} forecasts initialised 28-31 March 2019, "
        f"12 hourly leads each), every forecast scored by `svqcast evaluate --per-lead-time` on the same "
        f"samples. Units: {units}. MAE/RMSE: plain means over all grid points and leads (OpenSTL "
        "convention); lat-w.: latitude-weighted (WeatherBench2 style), averaged over leads.",
        "",
        "| forecast | MAE | RMSE | lat-w. MAE | lat-w. RMSE | ACC |",
        "|---|---|---|---|---|---|",
        *[_row(LABELS.get(f, f), sc[f], ch) for f in LABELS if f in sc],
    ]
    per = ev["per_lead_time"]
    leads = ev["lead_times"]
    for metric in ("mae", "rmse"):
        lines += ["", f"Latitude-weighted {metric.upper()} ({units}) by lead time:", "",
                  "| forecast | " + " | ".join(f"+{h} h" for h in leads) + " |",
                  "|---|" + "---|" * len(leads)]
        for f in LABELS:
            if f in per:
                lines.append(f"| {LABELS[f]} | " + " | ".join(f"{v:.3f}" for v in per[f][metric][ch]) + " |")
    return "\n".join(lines)


def _registry_block(name: str, meta: dict, sha: str, description: str, metrics: dict) -> str:
    spec = meta["data_spec"]
    lat, lon = spec["coords"]["lat"], spec["coords"]["lon"]
    out = [
        f'[models."{name}"]',
        f'description = "{description}"',
        f'preset = "{meta.get("preset")}"',
        f'bundled = "zoo/bundled/{name}"',
        f'sha256 = "{sha}"',
        'licence = "Apache-2.0 (weights); trained on ERA5, Copernicus C3S licence (CC-BY-4.0)"',
        "default = true",
        f'[models."{name}".data]',
        f'dataset = "{spec["dataset"]}"',
        f"variables = {json.dumps(spec['variables'])}",
        f"units = {json.dumps(spec['units'])}",
        f'grid = "{len(lat)} x {len(lon)} lat/lon at 0.25 deg, lat {lat[0]}..{lat[-1]}, lon {lon[0]}..{lon[-1]}"',
        f'time_step = "{int(spec["time_step_seconds"]) // 3600}h"',
        f"t_in = {spec['t_in']}",
        f"t_out = {spec['t_out']}",
        f'[models."{name}".metrics]',
    ]
    out += [f"{k} = {json.dumps(v)}" for k, v in metrics.items()]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training run directory (uses RUN/best)")
    ap.add_argument("evaluation", type=Path, help="JSON of `svqcast evaluate RUN --per-lead-time --format json`")
    ap.add_argument("--name", default="era5-uk-t2m_gsta_svq")
    ap.add_argument("--overrides", default="none", help="the training command's extra options (for the card)")
    args = ap.parse_args()

    best = args.run / "best"
    meta = read_checkpoint_meta(best)
    ev = json.loads(args.evaluation.read_text())
    if "same_hour_yesterday" not in ev["scores"] or "per_lead_time" not in ev:
        raise SystemExit("the evaluation must come from `svqcast evaluate --per-lead-time` of this svqcast")
    m = meta["config"]["model"]
    description = (
        f"Small SimVP gSTA + SVQ (learnable {m['codebook_size']}-code codebook; hid_S {m['hid_S']}, hid_T "
        f"{m['hid_T']}, N_T {m['N_T']}) forecasting ERA5 hourly 2 m temperature over the UK (32 x 48 at "
        f"0.25 deg) 12 h ahead from the last {m['in_shape'][0] - 1} h ({m['in_shape'][0]} hourly frames), as the "
        f"change from the same hour yesterday plus a persisting share of today's anomaly (model.residual = "
        f"\"{m.get('residual', 'none')}\"). Trained by svqcast's own `svqcast "
        f"train --preset {meta.get('preset')}` ({args.overrides}) on the embedded `era5-uk-t2m` sample: train "
        "1-23 March 2019, early stopping on validation 24-26 March, tested on 27-31 March. A demonstration "
        "model: one month of one region is far too little data for an operational forecast."
    )
    card = model_card(meta, name=args.name, scores_table=scores_table(ev), best_val=best_val_row(args.run),
                      description=description, licence="apache-2.0")
    card += REPRODUCE.format(preset=meta.get("preset"))
    card += (
        "\n## Data licence\n\nTrained on ERA5 (Hersbach et al. 2020, doi:10.1002/qj.3803): contains modified "
        "Copernicus Climate Change Service information 2019 (CC-BY-4.0).\n"
    )
    target = PACKAGE / "zoo" / "bundled" / args.name
    with atomic_dir(target, overwrite=True) as tmp:
        shutil.copy2(best / WEIGHTS_NAME, tmp / WEIGHTS_NAME)
        shutil.copy2(best / CONFIG_NAME, tmp / CONFIG_NAME)
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    short = description.split(" forecasting")[0] + ": hourly ERA5 2 m temperature, UK 32x48, 24 h -> 12 h"
    print(_registry_block(args.name, meta, sha256_file(target / WEIGHTS_NAME), short, zoo_metrics(ev)))


if __name__ == "__main__":
    main()
