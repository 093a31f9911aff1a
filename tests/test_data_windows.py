"""Sample index arithmetic: the official exact counts on real calendar axes (docs/reference/official-behaviour.md §6.1,
tests/data/reference-numbers.json `weather_sample_counts`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from svqcast.data.catalog import get_entry
from svqcast.data.windows import segment_centres, subsample_indices, window_centres

REF = Path(__file__).resolve().parent / "data" / "reference-numbers.json"  # see tests/data/README.md


def _split_counts(name: str, rule: str, start: str = "2010-01-01", end: str = "2018-12-31 23:00") -> dict[str, int]:
    """Replay the loader on an hourly pandas axis: select the split's years, subsample,
    count the valid centres. Independent of the store: only the calendar and the rule."""
    entry = get_entry(name)
    hours = pd.date_range(start, end, freq="h")
    out = {}
    for split, (y0, y1) in entry.select["years"].items():
        n_raw = int(((hours.year >= y0) & (hours.year <= y1)).sum())
        n = len(subsample_indices(n_raw, entry.subsample_step, rule))
        out[split] = len(window_centres(n, entry.idx_in, entry.idx_out, rule))
    return out


def test_weatherbench_s_official_counts():
    assert _split_counts("weatherbench-s-t2m", "official") == {"train": 52559, "val": 8759, "test": 17495}


def test_weatherbench_s_counts_match_reference_json():
    ref = json.loads(REF.read_text())["weather_sample_counts"]["weatherbench_S_hourly_step1"]
    got = _split_counts("weatherbench-s-t2m", "official")
    assert [got["train"], got["val"], got["test"]] == [
        ref["train_2010_2015"], ref["val_2016_constructed_but_unused"], ref["test_2017_2018"]]


def test_weatherbench_s_svqcast_rule_keeps_every_complete_window():
    # 2010-2015 = 2191 days = 52,584 h; a sample spans 24 h -> 52,584 - 23 windows.
    assert _split_counts("weatherbench-s-t2m", "svqcast") == {"train": 52584 - 23, "val": 8784 - 23,
                                                               "test": 17520 - 23}


def test_weatherbench_m_counts_with_6h_offsets():
    got = _split_counts("weatherbench-m", "official", start="1979-01-01")
    assert got == {"train": 54019, "val": 1427, "test": 2883}
    ours = _split_counts("weatherbench-m", "svqcast", start="1979-01-01")
    assert ours == {"train": 54056 - 36, "val": 1464 - 36, "test": 2920 - 36}


def test_weatherbench_m_offsets_in_hours():
    e = get_entry("weatherbench-m")
    hours_in = [6 * i for i in e.idx_in]
    hours_out = [6 * i for i in e.idx_out]
    assert hours_in == [-102, -66, -30, 0] and hours_out == [6, 42, 78, 114]


def test_step24_counts_equal_paper_table1():
    # Paper Table 1 (2,167 / 706) equals the same arithmetic with a 24-hour step.
    hours = pd.date_range("2010-01-01", "2018-12-31 23:00", freq="h")
    got = []
    for y0, y1 in ((2010, 2015), (2016, 2016), (2017, 2018)):
        n_raw = int(((hours.year >= y0) & (hours.year <= y1)).sum())
        n = len(subsample_indices(n_raw, 24, "official"))
        got.append(len(window_centres(n, range(-11, 1), range(1, 13), "official")))
    assert got == [2167, 342, 706]


def test_window_centres_small_by_hand():
    assert window_centres(10, [-2, -1, 0], [1, 2], "svqcast").tolist() == [2, 3, 4, 5, 6, 7]
    assert window_centres(10, [-2, -1, 0], [1, 2], "official").tolist() == [2, 3, 4, 5, 6]
    assert window_centres(4, [-2, -1, 0], [1, 2], "svqcast").tolist() == []
    assert subsample_indices(13, 6, "svqcast").tolist() == [0, 6, 12]
    assert subsample_indices(13, 6, "official").tolist() == [0, 6]


def test_segment_centres_kth_backward_stride():
    # Two clips of 65 and 40 frames, 30-frame sequences (10 in, 20 out), stride 30.
    seg = np.array([0] * 65 + [1] * 40)
    c = segment_centres(seg, range(-9, 1), range(1, 21), [30, 3])
    # clip 0: starts 35, 5 (scanned back from 65-30=35); clip 1 (stride 3): 10, 7, 4, 1
    starts = (c - 9).tolist()
    assert starts == [5, 35, 65 + 1, 65 + 4, 65 + 7, 65 + 10]
    assert all(seg[s] == seg[s + 29] for s in starts)
