"""vidstyle bench: its statistics, and a short real run."""
from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest

from vidstyle.apps.cli import main
from vidstyle.measure import stats


def test_latency_percentiles_interpolate_between_order_statistics():
    data = [0.005, 0.001, 0.004, 0.002, 0.003]
    assert stats.latency_summary(data) == pytest.approx({"p50": 3.0, "p95": 4.8, "p99": 4.96})  # p95: rank 3.8
    assert stats.latency_summary([0.007]) == pytest.approx({"p50": 7.0, "p95": 7.0, "p99": 7.0})
    assert stats.latency_summary([0.1] * 10 + [1.0]) == pytest.approx({"p50": 100.0, "p95": 550.0, "p99": 910.0})


def test_stage_shares_add_up_and_keep_pipeline_order():
    stages = {"encode": SimpleNamespace(busy=1.0), "decode": SimpleNamespace(busy=0.5),
              "batch": SimpleNamespace(busy=0.0), "engine": SimpleNamespace(busy=2.5)}
    summary = stats.stage_summary(stages, frames=10)
    assert list(summary) == ["decode", "engine", "encode"]  # "batch" only groups frames
    assert summary["engine"] == {"ms_per_frame": 250.0, "share": 0.625}
    assert sum(s["share"] for s in summary.values()) == pytest.approx(1.0)


@pytest.mark.slow
def test_a_short_bench_reports_every_figure(tmp_path, capsys, threads):
    out_json, out_csv = tmp_path / "b.json", tmp_path / "b.csv"
    code = main(["bench", "--size", "96x64", "--batch", "1,2", "--temporal", "off,flow", "--frames", "6",
                 "--warmup", "2", "--no-peak", "--json", str(out_json), "--csv", str(out_csv)])
    assert code == 0
    printed = capsys.readouterr().out
    assert any(line.split()[:5] == ["offline", "tf", "2", "96x64", "flow"] for line in printed.splitlines())
    data = json.loads(out_json.read_text())
    assert data["system"]["cores"] >= 1 and "vidstyle_revision" in data["system"]
    points = data["points"]
    # Every installed engine (onnxruntime, tf), each at every size x temporal x batch.
    grid = [(1, "off"), (2, "off"), (1, "flow"), (2, "flow")]
    engines = list(dict.fromkeys(p["point"]["engine"] for p in points))
    assert sorted(engines) == ["onnxruntime", "tf"]
    assert [(p["point"]["batch"], p["point"]["temporal"]) for p in points] == grid * 2
    for p in points:
        assert p["frames"] == 6 and p["fps"] > 0
        assert len(p["latencies"]) == 6 and 0 < p["latency_ms"]["p50"] <= p["latency_ms"]["p99"]
        assert {"decode", "engine", "encode"} <= set(p["stages"])
        assert p["macs_per_frame"] is None or p["macs_per_frame"] > 0
    assert "motion" in points[2]["stages"] and "motion" not in points[0]["stages"]
    rows = list(csv.reader(out_csv.open()))
    assert len(rows) == 1 + len(points) and rows[0][:2] == ["mode", "engine"]
    threads.assert_back_to_start()


def test_bad_bench_settings_are_one_line_errors(capsys):
    assert main(["bench", "--batch", "0"]) == 1
    assert "--batch: '0' is not a positive whole number" in capsys.readouterr().err
    assert main(["bench", "--size", "640"]) == 1
    assert "give sizes as WxH" in capsys.readouterr().err
    assert main(["bench", "--temporal", "blur"]) == 1
    assert "unknown mode 'blur'" in capsys.readouterr().err
    assert main(["bench", "some.mp4", "--mode", "live", "--no-peak"]) == 1
    assert "paced synthetic camera" in capsys.readouterr().err


@pytest.mark.slow
def test_a_live_bench_counts_what_it_drops(tmp_path, threads):
    out = tmp_path / "live.json"
    # a camera far faster than 2 cores can stylize: frames must be dropped, not queued
    assert main(["bench", "--mode", "live", "--engine", "onnxruntime", "--size", "160x120", "--batch", "1", "--rate", "120",
                 "--duration", "1", "--no-peak", "--json", str(out)]) == 0
    (point,) = json.loads(out.read_text())["points"]
    assert point["point"]["mode"] == "live"
    assert point["dropped"] > 0 and point["frames"] + point["dropped"] == 120
    assert len(point["latencies"]) == point["frames"]
    threads.assert_back_to_start()


def test_a_live_bench_with_reuse_runs_the_keyframe_path(tmp_path, threads):
    out = tmp_path / "live.json"
    assert main(["bench", "--mode", "live", "--engine", "onnxruntime", "--size", "96x64", "--batch", "1", "--rate", "30",
                 "--duration", "1", "--temporal", "flow", "--reuse", "auto", "--no-peak", "--json", str(out)]) == 0
    (point,) = json.loads(out.read_text())["points"]
    assert point["point"]["reuse"] == "auto" and point["frames"] > 0
    assert {"motion", "fill", "temporal"} <= set(point["stages"]) and "engine" not in point["stages"]
    threads.assert_back_to_start()
