"""benchmarks/gpu_check.sh --dry-run: every step of the device check on the CPU engines at
small sizes, so the script cannot rot between the runs on a GPU machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    # The suite's own interpreter: make exports PYTHON (the one it built the venv from), which
    # has none of the packages.
    env = {**os.environ, "VIDSTYLE_CACHE": str(out / "cache"), "OUT": str(out / "ignored"), "PYTHON": sys.executable}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", str(out / "results")],
                         capture_output=True, text=True, check=False, timeout=600, cwd=ROOT, env=env)
    print(run.stdout[-3000:])
    return run, out / "results"


def test_every_step_runs_and_the_summary_gathers_them(dry_run):
    run, results = dry_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    summary = json.loads((results / "gpu_check.json").read_text())
    steps = summary["steps"]
    assert list(steps) == ["carry", "system", "parity", "engine", "make-clip", "transcode", "live"]
    assert all(s["exit"] == 0 for s in steps.values()), steps
    assert sum(s["seconds"] for s in steps.values()) < 540
    assert summary["carry"]["fits"] and summary["carry"]["tree_bytes"] > 1_000_000
    assert summary["system"]["packages"]["onnxruntime"]


def test_parity_measures_the_cpu_engines_and_records_the_gpu_engines_errors(dry_run):
    _, results = dry_run
    parity = json.loads((results / "parity.json").read_text())
    assert list(parity["sizes"]) == ["160x96", "157x93"]
    even, odd = parity["sizes"]["160x96"]["engines"], parity["sizes"]["157x93"]["engines"]
    assert even["onnxruntime:fp32"]["max_abs_levels"] == 0  # the reference against itself
    for entry in (even["tensorrt:fp16"], even["onnxruntime-cuda:fp32"]):
        assert "error" in entry and "\n" not in entry["error"]
    if "error" not in even["torch:fp32"]:  # PyTorch installed: pad and crop on the device, any size
        assert even["torch:fp32"]["max_abs_levels"] <= 1 and odd["torch:fp32"]["max_abs_levels"] <= 1


def test_speed_transcode_and_live_report_their_figures(dry_run):
    _, results = dry_run
    points = json.loads((results / "engine.json").read_text())["points"]
    assert any(p.get("fps_run", 0) > 0 for p in points if p["engine"] == "onnxruntime:fp32")
    transcode = json.loads((results / "transcode.json").read_text())
    assert transcode["frames"] == 16 and transcode["fps"] > 0 and transcode["x264_preset"] == "veryfast"
    assert transcode["bounded_by"] in transcode["stages"]
    live = json.loads((results / "live.json").read_text())
    assert live["delivered"] > 0 and live["latency_ms"]["p95"] > 0
    assert not list(results.glob("cup-*.mp4"))  # the clips are removed
