"""Progress reporting: one protocol (`svqcast.progress.Progress`) for every long library call; the
CLI's one adapter shows Rich bars on a terminal, plain lines otherwise, and nothing with --format json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from svqcast.progress import Progress


class Recorder(Progress):
    """Every call the library makes, for the assertions."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float | None]] = []
        self.totals: dict[str, float | None] = {}

    def begin(self, key, total=None, *, label=None, done=0, unit="", info=""):
        self.totals[key] = total
        self.calls.append(("begin", key, total))

    def update(self, key, done=None, *, advance=0, total=None, info=None):
        self.calls.append(("update", key, done))

    def end(self, key):
        self.calls.append(("end", key, None))

    def counts(self) -> list[tuple[float | None, float | None]]:
        return [(done, self.totals[key]) for kind, key, done in self.calls if kind == "update"]


def test_plain_lines_off_a_terminal_and_silence_for_json(capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.cli.progress import reporter

    with reporter("text") as progress:
        progress.begin("work", 3, label="working")
        for k in range(1, 4):
            progress.update("work", k)
        progress.message("done here")
    err = capsys.readouterr().err
    assert "working: 1/3" in err and "working: 3/3" in err and "done here" in err
    with reporter("json") as progress:
        progress.begin("work", 1, label="working")
        progress.update("work", 1)
        progress.message("said")
    assert capsys.readouterr().err == ""


def test_plain_progress_writes_a_bounded_number_of_lines(tmp_path: Path) -> None:
    import io

    from svqcast.progress import PlainProgress

    stream = io.StringIO()
    plain = PlainProgress(stream, lines=4)
    plain.begin("steps", 1000, label="epoch 1", unit="")
    for k in range(1, 1001):
        plain.update("steps", k, info=f"loss {1 / k:.3f}")
    lines = stream.getvalue().splitlines()
    assert 4 <= len(lines) <= 6 and lines[-1].endswith("epoch 1: 1000/1000  loss 0.001")
    plain.begin("file.nc", 3 << 20, unit="bytes")
    plain.update("file.nc", advance=3 << 20)
    assert "file.nc: 3.0 MiB/3.0 MiB" in stream.getvalue()


def test_evaluate_reports_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.cli import main

    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    from svqcast.verify.evaluation import evaluate

    rec = Recorder()
    result = evaluate("era5-uk-t2m_gsta_svq", max_batches=2, batch_size=4, device="cpu", progress=rec)
    assert rec.counts() == [(1, 2), (2, 2)] and result["samples"] == 8
    assert rec.calls[-1] == ("end", "evaluate", None)
    assert result["lead_time_iso"][:2] == ["PT1H", "PT2H"] and result["lead_time_seconds"][0] == 3600
    try:
        main.run(["evaluate", "era5-uk-t2m_gsta_svq", "--max-batches", "1", "--batch-size", "2", "--format", "json"])
    except SystemExit as exc:
        assert not exc.code
    out, err = capsys.readouterr()
    assert json.loads(out)["samples"] == 2 and "scoring batches" not in err


def test_prepare_reports_frames_written_across_splits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    from _cli import run_cli

    from svqcast.data import userprep

    monkeypatch.setattr(userprep, "BLOCK_BYTES", 4 * 5 * 6 * 7)  # blocks of one 64-frame chunk
    frames = np.random.default_rng(0).integers(0, 255, (400, 5, 6), dtype=np.uint8)
    np.save(tmp_path / "clip.npy", frames)
    rec = Recorder()
    userprep.prepare_path(str(tmp_path / "clip.npy"), "clip", root=tmp_path / "root", t_in=2, t_out=2,
                          progress=rec)
    calls = rec.counts()
    assert calls[-1] == (400, 400) and len(calls) > 3  # streamed block by block over all splits
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    code, _, err = run_cli(["prepare", tmp_path / "clip.npy", "--name", "clip2", "--root", tmp_path / "root",
                            "--t-in", "2", "--t-out", "2"], capsys)
    assert code == 0 and "preparing (frames written): 400/400" in err
    code, out, err = run_cli(["prepare", tmp_path / "clip.npy", "--name", "clip3", "--root", tmp_path / "root",
                              "--t-in", "2", "--t-out", "2", "--format", "json"], capsys)
    assert code == 0 and "preparing" not in err and json.loads(out)["dataset"] == "clip3"
