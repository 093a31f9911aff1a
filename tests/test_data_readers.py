"""Readers on small files in every upstream format, written here or taken from tests/data."""

from __future__ import annotations

import io
import struct

import h5py
import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import KTH, TEST_DATA, write_wb_year

from svqcast.data import get_split_dataset
from svqcast.data.prepare import prepare
from svqcast.data.readers import read_flow_npz, read_hkl_array, read_human_meta, read_netcdf_variable, read_taxibj_h5
from svqcast.data.samples import sample_path
from svqcast.data.store import open_split
from svqcast.errors import DataError
from svqcast.sources.video import read_avi, read_avi_info


def _kth_frames() -> np.ndarray:
    with np.load(sample_path("kth_walking_5clips.npz")) as z:
        return z["frames"]


# ---- WeatherBench netCDF with 13 levels ----------------------------------------------

def test_weatherbench_13_levels_r_is_1000hpa(tmp_path):
    p = write_wb_year(tmp_path, "relative_humidity", "r", 2017, "2017-01-01", 5, levels=True)
    with xr.open_dataset(p) as ds:
        assert list(ds["r"].dims) == ["time", "level", "lat", "lon"] and ds.sizes["level"] == 13
        last = ds["r"].isel(level=-1).values  # the official loader takes the last level
    da = read_netcdf_variable(p, "r", level=1000, expect_shape=(32, 64))
    np.testing.assert_array_equal(da.values, last)
    with pytest.raises(DataError, match="level 975 hPa not in"):
        read_netcdf_variable(p, "r", level=975)


def test_weatherbench_m_prepare_6hourly_channel_order(tmp_path):
    raw = tmp_path / "weatherbench-m" / "raw"
    folders = [("relative_humidity", "r"), ("temperature", "t"), ("u_component_of_wind", "u"),
               ("v_component_of_wind", "v")]
    for k, (folder, short) in enumerate(folders):
        for year, start, hours in ((2016, "2016-12-30T00", 48), (2017, "2017-01-01T00", 72), (2018, "2018-01-01", 48)):
            write_wb_year(raw, folder, short, year, start, hours, levels=True, shift=k + year % 3)
    sel = {"years": {"train": [2016, 2017], "val": [2017, 2017], "test": [2018, 2018]}}
    prepare("weatherbench-m", tmp_path, select=sel)
    tr = get_split_dataset("weatherbench-m", "train", root=tmp_path)
    # 120 hourly steps -> 20 six-hourly frames; window spans 37 frames -> no sample fits
    assert len(tr) == 0
    store = open_split(tmp_path / "weatherbench-m" / "prepared", "train")
    assert list(store["channel"].values) == [f"{v}{lv}" for v in "rtuv" for lv in (150, 500, 850)]
    assert list(store["units"].values)[:4] == ["%", "%", "%", "K"]
    assert tr.spec.variables == ["r", "t", "u", "v"] and len(tr.spec.channel_names) == 12
    t = store["time"].values
    assert len(t) == 20 and all(pd_hour % 6 == 0 for pd_hour in (t.astype("datetime64[h]").astype(int) % 24))
    # frame 9 = 2017-01-01T06 -> hour 6 of the 2017 file; channel t500 = temperature level 500
    src = xr.open_dataset(raw / "temperature" / "temperature_2017_5.625deg.nc")["t"].sel(level=500).values
    np.testing.assert_array_equal(store["data"].values[9, 4], src[6])
    assert t[9] == np.datetime64("2017-01-01T06:00", "ns")


# ---- flows ----------------------------------------------------------------------------

def test_stsan_original_layout_crop_equals_joined_sample():
    # the first 96 slots of STSAN's NYTaxi/flow_val.npz, layout (T, H, W, 2) float64, unchanged
    orig = read_flow_npz(TEST_DATA / "stsan_nytaxi_flow_val_first96.npz")
    joined = read_flow_npz(sample_path("nyc_taxi_flow_2016.npz"))
    np.testing.assert_array_equal(orig, joined[2784:2784 + 96])


def test_stsan_original_layout_equals_joined_sample(shared_data):
    orig = read_flow_npz(shared_data / "nyc_taxi_bike_flow_2016" / "original" / "NYTaxi" / "flow_val.npz")
    joined = read_flow_npz(sample_path("nyc_taxi_flow_2016.npz"))
    np.testing.assert_array_equal(orig, joined[2784:2784 + 672])


def test_taxibj_h5_reader(tmp_path):
    flow = read_flow_npz(sample_path("nyc_taxi_flow_2016.npz"))[:96]
    dates = [f"20160101{k:02d}".encode() for k in range(1, 49)] + [f"20160102{k:02d}".encode() for k in range(1, 49)]
    p = tmp_path / "BJ16_M32x32_T30_InOut.h5"
    with h5py.File(p, "w") as f:
        f["data"] = flow
        f["date"] = np.array(dates)
    data, times = read_taxibj_h5(p)
    np.testing.assert_array_equal(data, flow)
    assert times[0] == np.datetime64("2016-01-01T00:00", "ns") and times[47] == np.datetime64("2016-01-01T23:30", "ns")
    assert times[48] == np.datetime64("2016-01-02T00:00", "ns")


def test_taxibj_npz_prepare_windows(tmp_path):
    # OpenSTL's dataset.npz layout (N, 4, 2, H, W) in [-1, 1], built from real taxi flows.
    flow = read_flow_npz(sample_path("nyc_taxi_flow_2016.npz"))[:, :, :16, :12]
    scaled = flow / flow.max() * 2 - 1
    win = np.stack([scaled[i:i + 8] for i in range(0, 400, 2)])  # 200 overlapping windows
    big = np.zeros((len(win), 8, 2, 32, 32), np.float32)
    big[..., :16, :12] = win
    raw = tmp_path / "taxibj" / "raw" / "TaxiBJ"
    raw.mkdir(parents=True)
    np.savez(raw / "dataset.npz", X_train=big[:150, :4], Y_train=big[:150, 4:], X_test=big[150:, :4],
             Y_test=big[150:, 4:])
    prepare("taxibj", tmp_path, select={"val_last": 20, "gap": 7})
    tr, va, te = (get_split_dataset("taxibj", s, root=tmp_path) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (150 - 20 - 7, 20, 50)
    x, y = te[3]
    np.testing.assert_allclose(x.numpy(), (big[153, :4] + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(y.numpy(), (big[153, 4:] + 1) / 2, atol=1e-6)
    np.testing.assert_allclose(va[0][0].numpy(), (big[130, :4] + 1) / 2, atol=1e-6)
    assert te.spec.mean == [0.0, 0.0] and te.spec.clip_range == [0.0, 1.0]
    assert te.times(0)[0].tolist() == [0, 1, 2, 3]


# ---- KTH: avi (XviD via PyAV, uncompressed DIB, MJPEG) and jpg folders -----------------

def test_avi_header_of_real_kth_clip():
    info = read_avi_info(KTH / "test_example.avi")
    assert (info.width, info.height, info.fourcc, info.fps) == (32, 32, "XVID", 25.0)
    assert info.frames == 75 and len(info.chunks) == 75


def test_real_xvid_clips_decode_to_the_shipped_sample():
    pytest.importorskip("av")
    with np.load(sample_path("kth_walking_5clips.npz")) as z:
        frames, names = z["frames"], [str(n) for n in z["clips"]]
    for k, name in enumerate(names):
        np.testing.assert_array_equal(read_avi(KTH / f"{name}.avi"), frames[k])


def _avi(frames_rgb: list[bytes], w: int, h: int, fourcc: bytes, compression: bytes | int, bits: int) -> bytes:
    """A minimal AVI 1.0 writer, written from the RIFF spec, independent of svqcast."""
    def chunk(cid: bytes, data: bytes) -> bytes:
        return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def lst(kind: bytes, data: bytes) -> bytes:
        return chunk(b"LIST", kind + data)

    avih = struct.pack("<IIIIIIIIII", 40000, 0, 0, 0x10, len(frames_rgb), 0, 1, 0, w, h) + b"\0" * 16
    strh = b"vids" + fourcc + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, 25, 0, len(frames_rgb), 0, 0xFFFFFFFF, 0,
                                          0, 0, w, h)
    comp = compression if isinstance(compression, int) else struct.unpack("<I", compression)[0]
    strf = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bits, comp, 0, 0, 0, 0, 0)
    hdrl = lst(b"hdrl", chunk(b"avih", avih) + lst(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
    movi = lst(b"movi", b"".join(chunk(b"00dc", f) for f in frames_rgb))
    body = b"AVI " + hdrl + movi
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_uncompressed_avi_reader(tmp_path):
    clip = _kth_frames()[0][:6]  # real grey frames (T, 32, 32)
    rgb = np.stack([clip, clip // 2, 255 - clip], axis=-1)
    raws = []
    for f in rgb:  # bottom-up BGR rows, padded to 4 bytes (32*3 = 96: no padding)
        raws.append(f[::-1, :, ::-1].tobytes())
    p = tmp_path / "raw.avi"
    p.write_bytes(_avi(raws, 32, 32, b"DIB ", 0, 24))
    np.testing.assert_array_equal(read_avi(p, gray=False), rgb)
    np.testing.assert_array_equal(read_avi(p), clip)


def test_mjpeg_avi_reader(tmp_path):
    from PIL import Image

    clip = _kth_frames()[1][:5]
    jpgs = []
    for f in clip:
        buf = io.BytesIO()
        Image.fromarray(np.stack([f] * 3, -1)).save(buf, format="JPEG", quality=95)
        jpgs.append(buf.getvalue())
    p = tmp_path / "mjpg.avi"
    p.write_bytes(_avi(jpgs, 32, 32, b"MJPG", b"MJPG", 24))
    want = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpgs])
    np.testing.assert_array_equal(read_avi(p, gray=False), want)
    assert np.abs(read_avi(p).astype(int) - clip).max() <= 8  # JPEG of real frames stays close


def test_truncated_avi(tmp_path):
    data = (KTH / "test_example.avi").read_bytes()
    p = tmp_path / "cut.avi"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated AVI"):
        read_avi_info(p)


def test_kth_prepare_from_jpg_folders_and_avi(tmp_path):
    from PIL import Image

    frames = _kth_frames()
    raw = tmp_path / "kth" / "raw"
    # person 1 (train): jpg folder with 70 frames + a gap -> two runs; person 15 (val): avi; person 17 (test): running
    d = raw / "walking" / "person01_walking_d1_uncomp"
    d.mkdir(parents=True)
    nums = list(range(1, 66)) + list(range(80, 115))  # runs of 65 and 35 frames
    for k, n in enumerate(nums):
        Image.fromarray(np.stack([frames[0][k % 75]] * 3, -1)).resize((160, 120)).save(d / f"image_{n:04d}.jpg",
                                                                                          quality=95)
    (raw / "walking").mkdir(exist_ok=True)
    (raw / "walking" / "person15_walking_d1_uncomp.avi").write_bytes((KTH / "val_example1.avi").read_bytes())
    d2 = raw / "running" / "person17_running_d2_uncomp"
    d2.mkdir(parents=True)
    for n in range(1, 36):
        Image.fromarray(np.stack([frames[4][n]] * 3, -1)).save(d2 / f"image_{n:04d}.jpg", quality=95)
    if pytest.importorskip("av") is None:  # pragma: no cover
        return
    prepare("kth", tmp_path)
    tr, va, te = (get_split_dataset("kth", s, root=tmp_path) for s in ("train", "val", "test"))
    # walking stride 30, 30-frame sequences scanned backwards: run 65 -> starts 35, 5; run 35 -> start 5
    assert len(tr) == 3
    assert len(va) == 2  # 75-frame avi: starts 45, 15
    assert len(te) == 2  # running stride 3 on 35 frames: starts 5, 2 (0 would be 3 short... -> 5, 2)
    x, y = tr[0]
    assert x.shape == (10, 1, 128, 128) and y.shape == (20, 1, 128, 128)
    # independent decode of one jpg: channel 0, bilinear resize to 128x128, /255
    img = Image.open(d / "image_0006.jpg").convert("RGB").resize((128, 128), Image.BILINEAR)
    np.testing.assert_allclose(x[0, 0].numpy(), np.asarray(img)[..., 0] / 255.0, atol=1e-6)
    assert tr.times(0)[0][0] == 6  # frame numbers are kept
    assert float(x.max()) <= 1.0 and float(x.min()) >= 0.0


# ---- KittiCaltech (hkl = HDF5, npy) --------------------------------------------------

def test_kitticaltech_hkl_and_npy(tmp_path):
    raw = tmp_path / "kitticaltech" / "raw"
    (raw / "kitti").mkdir(parents=True)
    base = _kth_frames()[0]
    def frames(n):
        f = np.stack([np.kron(base[k % 75], np.ones((4, 5), np.uint8)) for k in range(n)])  # real 128x160
        return np.stack([f, f, np.flip(f, 1)], -1)
    for split, n, src in (("train", 40, ["a"] * 25 + ["b"] * 15), ("val", 22, ["c"] * 22)):
        with h5py.File(raw / "kitti" / f"X_{split}.hkl", "w") as f:  # hickle nests the array in a group
            f.create_group("data_0")["data"] = frames(n)
        with h5py.File(raw / "kitti" / f"sources_{split}.hkl", "w") as f:
            f["data_0"] = np.array([s.encode() for s in src])
    (raw / "kitticaltech_npy").mkdir()
    np.save(raw / "kitticaltech_npy" / "test_data.npy", frames(33))
    np.save(raw / "kitticaltech_npy" / "test_idx.npy", np.array([0, 11, 22]))
    np.save(raw / "kitticaltech_npy" / "train_data.npy", frames(11))
    np.save(raw / "kitticaltech_npy" / "train_idx.npy", np.array([0]))
    assert read_hkl_array(raw / "kitti" / "X_train.hkl", want_ndim=4).shape == (40, 128, 160, 3)
    prepare("kitticaltech", tmp_path)
    tr, va, te = (get_split_dataset("kitticaltech", s, root=tmp_path) for s in ("train", "val", "test"))
    # forward scan: source a (25 frames) -> starts 0, 11; source b (15) -> start 25; val: 0, 11
    assert (len(tr), len(va), len(te)) == (3, 2, 3)
    assert tr.times(2)[0][0] == 25
    x, y = te[1]
    assert x.shape == (10, 3, 128, 160) and y.shape == (1, 3, 128, 160)
    np.testing.assert_allclose(y[0].numpy(), np.moveaxis(frames(33)[21], -1, 0) / 255.0, atol=1e-6)


# ---- Human3.6M jpg + meta --------------------------------------------------------------

def test_human36m_jpg_and_meta(tmp_path):
    from PIL import Image

    raw = tmp_path / "human36m" / "raw"
    (raw / "images").mkdir(parents=True)
    base = _kth_frames()[2]
    videos = {"S1_Walking.54138969": 1, "S8_Walking.54138969": 1, "S9_Eating.55011271": 3}
    for prefix, first in videos.items():
        for n in range(first, first + 46):
            g = np.kron(base[n % 75], np.ones((8, 8), np.uint8))
            Image.fromarray(np.stack([g, g // 2, 255 - g], -1)).save(raw / "images" / f"{prefix}_{n:06d}.jpg",
                                                                    quality=95)
    (raw / "train.txt").write_text("S1_Walking.54138969,1,41\nS1_Walking.54138969,11,51\nS8_Walking.54138969,1,41\n")
    (raw / "test.txt").write_text("S9_Eating.55011271,3,43\n")
    assert read_human_meta(raw / "train.txt")[1] == ("S1_Walking.54138969", 11, 51)
    prepare("human36m", tmp_path)
    tr, va, te = (get_split_dataset("human36m", s, root=tmp_path) for s in ("train", "val", "test"))
    assert (len(tr), len(va), len(te)) == (2, 1, 1)
    ti, to = tr.times(1)
    assert ti.tolist() == [11, 16, 21, 26] and to.tolist() == [31, 36, 41, 46]
    x, y = te[0]
    assert x.shape == (4, 3, 256, 256)
    want = np.asarray(Image.open(raw / "images" / "S9_Eating.55011271_000018.jpg").convert("RGB"))
    np.testing.assert_allclose(x[-1].numpy(), np.moveaxis(want, -1, 0) / 255.0, atol=1e-6)
    prepare("human36m", tmp_path, official_validation=True)  # official: train.txt incl. S8, val = test
    off_tr = get_split_dataset("human36m", "train", root=tmp_path, official_validation=True)
    off_va = get_split_dataset("human36m", "val", root=tmp_path, official_validation=True)
    assert len(off_tr) == 3 and len(off_va) == 1
    np.testing.assert_array_equal(off_va[0][0].numpy(), x.numpy())


def test_human_meta_bad_line(tmp_path):
    p = tmp_path / "train.txt"
    p.write_text("S1_x,1\n")
    with pytest.raises(DataError, match="train.txt:1"):
        read_human_meta(p)
