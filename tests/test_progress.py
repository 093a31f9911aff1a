"""Progress reporting: the library reports (done, total) through an injected callback; the CLI
shows a Rich bar on a terminal, plain lines otherwise, and nothing with --format json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_counted_plain_lines_off_a_terminal_and_silence_for_json(capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.cli.counting import counted

    with counted("working", "text") as progress:
        for k in range(1, 4):
            progress(k, 3)
    err = capsys.readouterr().err
    assert "working: 1/3" in err and "working: 3/3" in err  # first and last line, at most every 5 s
    with counted("working", "json") as progress:
        progress(1, 1)
    assert capsys.readouterr().err == ""


def test_evaluate_reports_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    from svqcast.cli import main

    monkeypatch.setenv("SVQCAST_DATA_DIR", str(tmp_path / "data"))
    from svqcast.verify.evaluation import evaluate

    calls: list[tuple[int, int]] = []
    result = evaluate("era5-uk-t2m_gsta_svq", max_batches=2, batch_size=4, device="cpu",
                      progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)] and result["samples"] == 8
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

    monkeypatch.setattr(userprep, "BLOCK_BYTES", 4 * 5 * 6 * 7)  # 7 frames of 5 x 6 per chunk
    frames = np.random.default_rng(0).integers(0, 255, (40, 5, 6), dtype=np.uint8)
    np.save(tmp_path / "clip.npy", frames)
    calls: list[tuple[int, int]] = []
    userprep.prepare_path(str(tmp_path / "clip.npy"), "clip", root=tmp_path / "root", t_in=2, t_out=2,
                          progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (40, 40) and len(calls) > 3  # streamed chunk by chunk over all splits
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    code, _, err = run_cli(["prepare", tmp_path / "clip.npy", "--name", "clip2", "--root", tmp_path / "root",
                            "--t-in", "2", "--t-out", "2"], capsys)
    assert code == 0 and "preparing (frames written): 40/40" in err
    code, out, err = run_cli(["prepare", tmp_path / "clip.npy", "--name", "clip3", "--root", tmp_path / "root",
                              "--t-in", "2", "--t-out", "2", "--format", "json"], capsys)
    assert code == 0 and "preparing" not in err and json.loads(out)["dataset"] == "clip3"
