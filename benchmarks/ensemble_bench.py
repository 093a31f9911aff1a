"""Ensemble members per second: batched members against one forecast per member.

    .venv/bin/python benchmarks/ensemble_bench.py --out results/ensemble_bench.json

The bundled default model (24 h -> 12 h, UK 32 x 48) forecasts 12 h from one initialisation.
`batched` is `svqcast.forecast.ensemble.noise_members` (members stacked into network batches of
`--batch` members); `single` makes the same members one network call chain at a time (what a
loop over `predict` would do). Both run in one process, round-robin, medians of the rounds with
the per-round ratio [min, max] (docs/reference/official-behaviour.md §9 method); peak RSS
increase per configuration comes from a fresh child process. The member values of the two
are compared too (same seed, so the same members up to float rounding of the batch size).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quant_common as qc  # noqa: E402

import svqcast  # noqa: E402
from svqcast.data.samples import SAMPLES_DIR  # noqa: E402
from svqcast.forecast.ensemble import Members, noise_members  # noqa: E402
from svqcast.forecast.inputs import prepare_input  # noqa: E402


def _setup() -> tuple[Any, np.ndarray, np.ndarray]:
    fc = svqcast.load_model("era5-uk-t2m_gsta_svq")
    prep = prepare_input(SAMPLES_DIR / "era5_uk_t2m_2019-03.nc", fc.spec, init_time="2019-03-29T00:00")
    return fc, prep.frames, fc.noise_amplitude(Members(2))


def _run(fc: Any, frames: np.ndarray, amp: np.ndarray, n: int, batch: int) -> np.ndarray:
    return noise_members(fc, frames, 12, Members(n, "noise", batch=batch), amp)[0]


def _child(args: list[str]) -> None:
    n, batch = int(args[0]), int(args[1])
    fc, frames, amp = _setup()
    print(qc.json.dumps(qc.measure_in_child(lambda: _run(fc, frames, amp, n, batch), iterations=1)))


def main() -> None:
    if (child := qc.child_argv()) is not None:
        _child(child)
        return
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("results/ensemble_bench.json"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    fc, frames, amp = _setup()
    report: dict[str, Any] = {"machine": qc.machine(), "model": "era5-uk-t2m_gsta_svq", "steps": 12,
                              "batch": a.batch, "members": {}}
    for n in (8, 32):
        times = qc.round_robin({"batched": lambda n=n: _run(fc, frames, amp, n, a.batch),
                                "single": lambda n=n: _run(fc, frames, amp, n, 1)}, a.rounds, {})
        same = float(np.abs(_run(fc, frames, amp, n, a.batch) - _run(fc, frames, amp, n, 1)).max())
        report["members"][str(n)] = {
            "batched_s": qc.summary(times["batched"]), "single_s": qc.summary(times["single"]),
            "members_per_s_batched": n / qc.summary(times["batched"])["median"],
            "members_per_s_single": n / qc.summary(times["single"])["median"],
            "speedup": qc.ratio(times["single"], times["batched"]),
            "max_abs_member_difference_K": same,
            "peak_rss_increase_batched": qc.child_peak(Path(__file__), [str(n), str(a.batch)]),
            "peak_rss_increase_single": qc.child_peak(Path(__file__), [str(n), "1"]),
        }
    qc.write_json(report, a.out)
    for n, r in report["members"].items():
        print(f"N={n}: {r['members_per_s_batched']:.1f} members/s batched vs {r['members_per_s_single']:.1f} single "
              f"(x{r['speedup']['median']:.2f}); peak +{r['peak_rss_increase_batched'].get('peak_increase_mb')} MB vs "
              f"+{r['peak_rss_increase_single'].get('peak_increase_mb')} MB")


if __name__ == "__main__":
    main()
