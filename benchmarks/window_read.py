#!/usr/bin/env python
"""Training-sample reads from the zarr store against a memory map of the same frames.

svqcast 0.3 stores a prepared dataset as one compressed zarr store (docs/scale.md); 0.2 kept
each split as a contiguous, uncompressed netCDF variable read through a memory map. This
measures what the change costs a DataLoader: `WindowDataset[i]` (a window of T_in + T_out
frames, normalised) for random `i` in shuffled order, from the store, against the same windows
cut from an uncompressed `.npy` memory map of the same split written for the comparison, in
the same run, interleaved, several rounds (median, min, max). A first pass warms the page cache
for both, so the numbers compare decoding, not the disk.

Usage: .venv/bin/python benchmarks/window_read.py [--dataset era5-uk-t2m] [--samples 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_common import machine_info, save_json, spread  # noqa: E402

from svqcast.data import get_split_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="era5-uk-t2m")
    ap.add_argument("--split", default="train")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("results/window_read.json"))
    args = ap.parse_args()
    ds = get_split_dataset(args.dataset, args.split)
    frames = ds._open()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames.read_range(0, len(frames)))
        mm = np.load(path, mmap_mode="r")
        order = np.random.default_rng(0).permutation(len(ds))[: args.samples]
        span_in, span_out = ds.idx_in, ds.idx_out

        def from_store() -> None:
            for i in order:
                ds[int(i)]

        def from_memmap() -> None:
            for i in order:
                c = int(ds.centres[i])
                x = (np.asarray(mm[c + span_in]) - ds._mean) / ds._std
                y = (np.asarray(mm[c + span_out]) - ds._mean) / ds._std
                x.astype(np.float32), y.astype(np.float32)

        rates: dict[str, list[float]] = {"zarr_store": [], "memmap": []}
        from_store(), from_memmap()  # warm both
        for r in range(args.rounds):
            for name, fn in ((("zarr_store", from_store), ("memmap", from_memmap))[:: 1 if r % 2 == 0 else -1]):
                t0 = time.perf_counter()
                fn()
                rates[name].append(len(order) / (time.perf_counter() - t0))
    result = {"machine": machine_info(), "dataset": args.dataset, "split": args.split, "samples": int(len(order)),
              "window": [len(span_in), len(span_out)], "frame_shape": list(frames.shape[1:]),
              "samples_per_s": {k: spread(v) for k, v in rates.items()},
              "store_over_memmap": float(np.median(rates["zarr_store"]) / np.median(rates["memmap"]))}
    save_json(result, args.out)
    print({k: round(v["median"], 1) for k, v in result["samples_per_s"].items()},
          f"store/memmap {result['store_over_memmap']:.3f}")


if __name__ == "__main__":
    main()
