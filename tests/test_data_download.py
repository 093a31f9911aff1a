"""Downloads against a local HTTP server (127.0.0.1) serving zips in the true WeatherBench
layout built from real data: full, interrupted + resumed, corrupt, `../` member, 404,
dry run, --from, and the WeatherBench 2 zarr reader."""

from __future__ import annotations

import io
import urllib.parse
import zipfile

import numpy as np
import pytest
import xarray as xr
from test_data_fixtures import Server, cli, write_wb_year, zip_folder

from svqcast.data.archives import extract_archive
from svqcast.data.catalog import WB2_HTTPS
from svqcast.data.downloads import mirror_url
from svqcast.data.store import open_split

T2M_PATH = "/s/m1524895/download?path=%2F5.625deg%2F2m_temperature&files=2m_temperature_5.625deg.zip"


@pytest.fixture(scope="module")
def wb_zip(tmp_path_factory) -> bytes:
    src = tmp_path_factory.mktemp("wbsrc")
    # Contiguous hours across the year files, so train (2016-2017) is one regular axis.
    write_wb_year(src, "2m_temperature", "t2m", 2016, "2016-12-31T00", 24)
    write_wb_year(src, "2m_temperature", "t2m", 2017, "2017-01-01T00", 30, shift=24)
    write_wb_year(src, "2m_temperature", "t2m", 2018, "2018-01-01T00", 30, shift=3)
    write_wb_year(src, "2m_temperature", "t2m", 2019, "2019-01-01T00", 30, shift=7)
    # the upstream zip nests its files under a folder: it must be flattened
    return zip_folder(src / "2m_temperature", prefix="5.625deg/2m_temperature/")


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


def test_full_download_extract_and_prepare(tmp_path, server, wb_zip, capsys):
    server.files[T2M_PATH] = wb_zip
    code, out, err = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url,
                          "--years", "2016:2019"], capsys)
    assert code == 0, err
    raw = tmp_path / "weatherbench-s-t2m" / "raw" / "2m_temperature"
    names = sorted(p.name for p in raw.iterdir())
    assert names == [f"2m_temperature_{y}_5.625deg.nc" for y in (2016, 2017, 2018, 2019)]
    dl = tmp_path / "weatherbench-s-t2m" / "downloads"
    assert (dl / "2m_temperature_5.625deg.zip").read_bytes() == wb_zip
    assert not list(dl.glob("*.part"))
    import hashlib

    assert (dl / "2m_temperature_5.625deg.zip.sha256").read_text().split()[0] == hashlib.sha256(wb_zip).hexdigest()

    # prepare with our split on these years, then read windows back
    from svqcast.data import get_split_dataset
    from svqcast.data.prepare import prepare

    sel = {"years": {"train": [2016, 2017], "val": [2018, 2018], "test": [2019, 2019]}}
    prepare("weatherbench-s-t2m", tmp_path, select=sel)
    tr = get_split_dataset("weatherbench-s-t2m", "train", root=tmp_path)
    assert len(tr) == 54 - 23 and tr[0][0].shape == (12, 1, 32, 64)
    off = get_split_dataset("weatherbench-s-t2m", "train", root=tmp_path, rule="official")
    assert len(off) == 54 - 23 - 2  # dropped last hour + off-by-one
    ti, to = tr.times(len(tr) - 1)
    assert to[-1] == np.datetime64("2017-01-02T05:00", "ns")  # last hour of the 2017 file
    # values: stored frames equal the netCDF source (year boundary crossed inside a window)
    src = xr.open_dataset(raw / "2m_temperature_2017_5.625deg.nc")["t2m"].values
    x, y = tr.raw(13)  # centre 24 = 2017-01-01T00 is the last input frame
    np.testing.assert_array_equal(y[:, 0], src[1:13])


def test_interrupted_download_resumes_byte_identical(tmp_path, server, wb_zip, capsys):
    server.files[T2M_PATH] = wb_zip
    server.cut[T2M_PATH] = len(wb_zip) // 3
    args = ["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url, "--years", "2016:2019"]
    code, _, err = cli(args, capsys)
    assert code == 4 and "resume" in err
    part = tmp_path / "weatherbench-s-t2m" / "downloads" / "2m_temperature_5.625deg.zip.part"
    assert part.stat().st_size == len(wb_zip) // 3
    code, _, err = cli(args, capsys)
    assert code == 0, err
    assert server.requests[-1][1] == f"bytes={len(wb_zip) // 3}-"  # resumed with a Range request
    assert (part.parent / "2m_temperature_5.625deg.zip").read_bytes() == wb_zip
    assert not part.exists()


def test_corrupt_archive_exit3_leaves_nothing(tmp_path, server, wb_zip, capsys):
    bad = bytearray(wb_zip)
    bad[len(bad) // 2: len(bad) // 2 + 64] = b"\0" * 64  # damage compressed data, keep the directory
    server.files[T2M_PATH] = bytes(bad)
    code, _, err = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url], capsys)
    assert code == 3 and "corrupt" in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "2m_temperature_5.625deg.zip" in errors[0]  # one line naming the file
    base = tmp_path / "weatherbench-s-t2m"
    leftovers = [p for p in base.rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (base / "raw" / "2m_temperature").exists()


def test_truncated_archive_is_corrupt(tmp_path, server, wb_zip, capsys):
    server.files[T2M_PATH] = wb_zip[: len(wb_zip) // 2]  # the server itself has half a file
    code, _, err = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url], capsys)
    assert code == 3 and "zip" in err
    assert not [p for p in (tmp_path / "weatherbench-s-t2m").rglob("*") if p.is_file()]


def test_zip_with_parent_member_refused(tmp_path, server, capsys):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("2m_temperature_2017_5.625deg.nc", b"x")
        zf.writestr("../../evil.nc", b"owned")
    server.files[T2M_PATH] = buf.getvalue()
    root = tmp_path / "root"
    code, _, err = cli(["download", "weatherbench-s-t2m", "--root", str(root), "--mirror", server.url], capsys)
    assert code == 3 and "unsafe member '../../evil.nc'" in err
    assert not list(tmp_path.rglob("evil.nc"))
    assert not (root / "weatherbench-s-t2m" / "raw" / "2m_temperature").exists()


def test_absolute_member_refused(tmp_path):
    arc = tmp_path / "a.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("/etc/evil", b"x")
    from svqcast.errors import DataError

    with pytest.raises(DataError, match="unsafe"):
        extract_archive(arc, tmp_path / "out")


def test_404_exit4_names_url_and_from(tmp_path, server, capsys):
    code, _, err = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url], capsys)
    assert code == 4
    assert "HTTP 404" in err and server.url + T2M_PATH in err and "--from PATH" in err


def test_unreachable_exit4_and_env_mirror(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SVQCAST_MIRROR", "http://127.0.0.1:9")  # discard port: connection refused
    code, _, err = cli(["download", "taxibj", "--root", str(tmp_path)], capsys)
    assert code == 4 and "http://127.0.0.1:9/chengtan9907/OpenSTL/releases/download/v0.1.0/taxibj_dataset.zip" in err


def test_sha256_mismatch_against_recorded_digest(tmp_path, server, wb_zip, capsys):
    server.files[T2M_PATH] = wb_zip
    args = ["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url, "--years", "2016:2019"]
    assert cli(args, capsys)[0] == 0
    zpath = tmp_path / "weatherbench-s-t2m" / "downloads" / "2m_temperature_5.625deg.zip"
    zpath.unlink()
    server.files[T2M_PATH] = wb_zip[:-1] + bytes([wb_zip[-1] ^ 1])  # upstream changed by one byte
    code, _, err = cli(args, capsys)
    assert code == 3 and "sha256" in err
    assert not zpath.exists() and not zpath.with_name(zpath.name + ".part").exists()


def test_dry_run_prints_size_and_fetches_nothing(tmp_path, server, wb_zip, capsys):
    server.files[T2M_PATH] = wb_zip
    code, out, _ = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url,
                        "--dry-run", "--format", "json"], capsys)
    assert code == 0
    import json

    rep = json.loads(out)
    assert rep["fetch"][0]["bytes"] == len(wb_zip) and rep["years"] == [2010, 2018]
    assert not (tmp_path / "weatherbench-s-t2m").exists()


def test_from_local_zip(tmp_path, wb_zip, capsys):
    z = tmp_path / "2m_temperature_5.625deg.zip"
    z.write_bytes(wb_zip)
    code, _, err = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path / "r"), "--from", str(z),
                        "--years", "2017:2018"], capsys)
    assert code == 0, err
    got = sorted(p.name for p in (tmp_path / "r" / "weatherbench-s-t2m" / "raw" / "2m_temperature").iterdir())
    assert got == ["2m_temperature_2017_5.625deg.nc", "2m_temperature_2018_5.625deg.nc"]


def test_mirror_url_keeps_path_and_query():
    u = "https://dataserv.ub.tum.de/s/m1524895/download?path=%2F5.625deg%2Fx&files=x_5.625deg.zip"
    assert mirror_url(u, "http://h:1/m/") == "http://h:1/m/s/m1524895/download?path=%2F5.625deg%2Fx&files=x_5.625deg.zip"
    assert mirror_url(u, "") == u


def test_wb2_zarr_over_http(tmp_path, server, capsys):
    """A tiny zarr v2 store in WeatherBench 2's layout (written with the zarr library), served
    over HTTP: the reader selects variables, levels and years and writes a local store."""
    pytest.importorskip("zarr")
    from test_data_fixtures import real_fields

    fields, lat, lon = real_fields()
    times = np.datetime64("2016-12-30T00", "ns") + np.arange(24) * np.timedelta64(6, "h")  # 2016-12-30..2017-01-04
    levels = np.array([50, 150, 500, 850, 1000])
    data = {}
    rng = np.random.default_rng(0)
    for k, name in enumerate(("relative_humidity", "temperature", "u_component_of_wind", "v_component_of_wind")):
        base = fields[(np.arange(24) + k) % 31]  # (time, lat, lon) real values
        arr = np.stack([base + 10 * j for j in range(len(levels))], axis=1)  # (time, level, lat, lon)
        data[name] = (("time", "level", "longitude", "latitude"), np.transpose(arr, (0, 1, 3, 2)).astype(np.float32))
    data["2m_temperature"] = (("time", "longitude", "latitude"), rng.normal(size=(24, 64, 32)).astype(np.float32))
    ds = xr.Dataset(data, coords={"time": times, "level": levels, "latitude": lat, "longitude": lon})
    store = tmp_path / "wb2.zarr"
    enc = {v: {"chunks": (5,) + ds[v].shape[1:]} for v in data}
    ds.to_zarr(store, zarr_format=2, consolidated=True, encoding=enc)
    prefix = urllib.parse.urlsplit(WB2_HTTPS).path
    for f in store.rglob("*"):
        if f.is_file():
            server.files[f"{prefix}/{f.relative_to(store).as_posix()}"] = f.read_bytes()

    root = tmp_path / "root"
    code, _, err = cli(["download", "weatherbench-m", "--source", "wb2", "--root", str(root), "--mirror", server.url,
                        "--years", "2017:2017"], capsys)
    assert code == 0, err
    from svqcast.data.catalog import get_entry
    from svqcast.data.readers import Wb2Store

    local = Wb2Store(root / "weatherbench-m" / "raw" / "wb2.zarr")
    sel = (times >= np.datetime64("2017-01-01", "ns"))
    np.testing.assert_array_equal(local.all_times, times[sel])
    entry = get_entry("weatherbench-m")
    t850 = [v for v in entry.variables if v.channel == "t850"][0]
    arr, la, lo = local.read_year(t850, 2017)
    want = ds["temperature"].sel(level=850).transpose("time", "latitude", "longitude").values[sel]
    np.testing.assert_array_equal(arr, want)
    np.testing.assert_array_equal(la, lat)
    assert "2m_temperature" not in local.ds.data_vars  # only the selected variables were fetched
    # prepare reads the same local store: 6-hourly frames stored as they are (step 6 h / 6 h)
    from svqcast.data.prepare import prepare

    d = prepare("weatherbench-m", root, select={"years": {"train": [2017, 2017], "val": [2017, 2017],
                                                          "test": [2017, 2017]}})
    stored = open_split(d, "train")
    np.testing.assert_array_equal(stored["time"].values, times[sel])
    k = [str(c) for c in stored["channel"].values].index("t850")
    np.testing.assert_array_equal(stored["data"].values[:, k], want)
    assert int(stored.attrs["raw_steps"]) == 6 * int(sel.sum())  # in hours, for the official rule
    # block-by-block copy (several blocks, a short last one) gives the same store contents
    from svqcast.data.downloads import fetch_wb2, plan_download

    plan = plan_download("weatherbench-m", root, years=(2017, 2017), source="wb2", mirror=server.url)
    small = fetch_wb2(plan, plan.wb2_url, tmp_path / "small.zarr", block=5)
    arr5, _, _ = Wb2Store(small).read_year(t850, 2017)
    np.testing.assert_array_equal(arr5, want)
    assert len(list((small / "temperature").glob("*.0.0.0"))) == 4  # 16 steps in chunks of 5
    # hourly WeatherBench-S cannot come from the 6-hourly WB2 store
    code, _, err = cli(["download", "weatherbench-s-t2m", "--source", "wb2", "--root", str(root)], capsys)
    assert code == 2 and "6-hourly" in err


def test_plan_variables_years_and_sources(tmp_path):
    from svqcast.data.downloads import plan_download
    from svqcast.errors import UsageError

    plan = plan_download("weatherbench-s-uv10", tmp_path, variables=["v10"], years=(2015, 2016))
    assert [it.label for it in plan.items] == ["10m_v_component_of_wind"]
    keep = plan.items[0].keep
    assert keep("10m_v_component_of_wind_2016_5.625deg.nc") and not keep("10m_v_component_of_wind_2017_5.625deg.nc")
    assert len(plan_download("weatherbench-m", tmp_path).items) == 4
    both = plan_download("weatherbench-s-uv10", tmp_path, variables=["u10,10m_v_component_of_wind"])
    assert [it.label for it in both.items] == ["10m_u_component_of_wind", "10m_v_component_of_wind"]
    assert [it.label for it in plan_download("kth", tmp_path).items] == ["kth_action.zip"]
    assert len(plan_download("kth", tmp_path, source="kth").items) == 6
    assert len(plan_download("human36m", tmp_path).items) == 7
    with pytest.raises(UsageError, match="not in weatherbench-s-t2m"):
        plan_download("weatherbench-s-t2m", tmp_path, variables=["tcc"])
    with pytest.raises(UsageError, match="embedded"):
        plan_download("era5-uk-t2m", tmp_path)


def test_rerun_skips_verified_archive(tmp_path, server, wb_zip, capsys):
    server.files[T2M_PATH] = wb_zip
    args = ["download", "weatherbench-s-t2m", "--root", str(tmp_path), "--mirror", server.url, "--years", "2016:2019"]
    assert cli(args, capsys)[0] == 0
    n = len(server.requests)
    assert cli(args, capsys)[0] == 0
    assert len(server.requests) == n  # verified archive on disk: no new request


def test_from_folder_with_year_filter(tmp_path, capsys):
    src = tmp_path / "mine"
    for y in (2009, 2010, 2011):
        write_wb_year(src, "2m_temperature", "t2m", y, f"{y}-01-01", 3)
    code, _, err = cli(["download", "weatherbench-s-t2m", "--root", str(tmp_path / "r"), "--from", str(src)], capsys)
    assert code == 0, err
    got = sorted(p.name for p in (tmp_path / "r" / "weatherbench-s-t2m" / "raw" / "2m_temperature").iterdir())
    assert got == ["2m_temperature_2010_5.625deg.nc", "2m_temperature_2011_5.625deg.nc"]  # default years 2010-2018
    assert not (tmp_path / "r" / "weatherbench-s-t2m" / ".adopt").exists()


def test_tar_extraction_flattens_and_refuses_links(tmp_path):
    import tarfile

    from svqcast.errors import DataError

    src = tmp_path / "S1" / "images"
    src.mkdir(parents=True)
    (src / "S1_Walking.1_000001.jpg").write_bytes(b"jpg1")
    (src / "S1_Walking.1_000002.jpg").write_bytes(b"jpg2")
    good = tmp_path / "S1.tar"
    with tarfile.open(good, "w") as tf:
        tf.add(tmp_path / "S1", arcname="S1")
    out = extract_archive(good, tmp_path / "raw")
    assert sorted(p.relative_to(tmp_path / "raw").as_posix() for p in out) == [
        "S1_Walking.1_000001.jpg", "S1_Walking.1_000002.jpg"]  # the shared S1/images/ prefix is flattened
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tf:
        info = tarfile.TarInfo("images/link.jpg")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="refusing link"):
        extract_archive(bad, tmp_path / "raw2")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        data = b"x"
        info = tarfile.TarInfo("../../escape.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DataError, match="unsafe member"):
        extract_archive(evil, tmp_path / "raw3")
    assert not list(tmp_path.parent.rglob("escape.txt"))
    assert not (tmp_path / "raw2").exists() and not (tmp_path / "raw3").exists()


def test_download_weatherbench_group_feeds_the_catalog_datasets(tmp_path, server, wb_zip, capsys):
    """`svqcast download weatherbench` fetches each variable once into ROOT/weatherbench/raw;
    `prepare weatherbench-s-t2m` (catalog name unchanged) finds the files there."""
    server.files[T2M_PATH] = wb_zip
    code, out, err = cli(["download", "weatherbench", "--variables", "t2m", "--root", str(tmp_path), "--mirror",
                          server.url, "--years", "2016:2019"], capsys)
    assert code == 0, err
    raw = tmp_path / "weatherbench" / "raw" / "2m_temperature"
    assert sorted(p.name for p in raw.iterdir()) == [f"2m_temperature_{y}_5.625deg.nc" for y in range(2016, 2020)]
    from svqcast.data.prepare import prepare

    sel = {"years": {"train": [2016, 2017], "val": [2018, 2018], "test": [2019, 2019]}}
    d = prepare("weatherbench-s-t2m", tmp_path, select=sel)
    with open_split(d, "test") as ds:
        assert ds.sizes["time"] == 30
    assert not (tmp_path / "weatherbench-s-t2m" / "raw").exists()
