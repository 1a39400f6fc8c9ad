"""vidstyle info tells what runs here and why the rest does not; completion scripts come from the parser."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vidstyle.apps import info
from vidstyle.apps.cli import main
from vidstyle.engines import ENGINES, gpu

ROOT = Path(__file__).resolve().parents[1]


def vidstyle(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "vidstyle", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_info_lists_every_engine_the_gpu_cache_and_versions(tmp_path):
    (tmp_path / "plan.bin").write_bytes(b"x" * 1234)
    result = vidstyle("info", "--json", env={"VIDSTYLE_CACHE": str(tmp_path)})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    report = json.loads(result.stdout)
    assert [e["name"] for e in report["engines"]] == list(ENGINES)
    ort = next(e for e in report["engines"] if e["name"] == "onnxruntime")
    assert ort["use"] == "auto" and ort["precisions"] == ["fp32", "int8"]
    assert all(e["why"] for e in report["engines"] if e["use"] != "auto")  # every other one says why
    assert report["cache"] == {"folder": str(tmp_path), "set_by": "VIDSTYLE_CACHE", "exists": True,
                               "files": 1, "bytes": 1234}
    assert "numpy" in report["packages"] and "av" in report["packages"]
    assert report["python"] == ".".join(map(str, sys.version_info[:3]))


def test_info_for_people_names_the_engine_auto_takes(tmp_path):
    result = vidstyle("info", env={"VIDSTYLE_CACHE": str(tmp_path / "none")})
    assert result.returncode == 0 and result.stderr == ""
    text = result.stdout
    assert text.startswith("vidstyle ") and "--engine auto: " in text
    assert f"{tmp_path / 'none'}  (not made yet; $VIDSTYLE_CACHE)" in text
    for name in ENGINES:
        assert f"\n  {name} " in text


def test_without_a_gpu_the_gpu_engines_say_so(monkeypatch):
    monkeypatch.setattr(gpu, "gpu_present", lambda: False)
    rows = {e["name"]: e for e in info.engines()}
    for name in ("tensorrt", "onnxruntime-cuda"):
        assert rows[name]["use"] == "no" and rows[name]["why"] == "no NVIDIA GPU"


def test_with_a_gpu_a_missing_runtime_names_the_extra(monkeypatch):
    monkeypatch.setattr(gpu, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu, "tensorrt_installed", lambda: False)
    monkeypatch.setattr(gpu, "ort_cuda_available", lambda: False)
    monkeypatch.setattr(gpu, "torch_cuda_available", lambda: False)
    rows = {e["name"]: e for e in info.engines()}
    assert "pip install 'vidstyle[gpu]'" in rows["tensorrt"]["why"]
    assert "no CUDA provider" in rows["onnxruntime-cuda"]["why"]


@pytest.mark.parametrize("shell, words", [("bash", "_shtab_vidstyle"), ("zsh", "#compdef vidstyle")])
def test_completion_scripts_know_the_commands_and_options(capsys, shell, words):
    pytest.importorskip("shtab")
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    assert words in script
    for word in ("transcode", "--start", "--overwrite", "onnxruntime-cuda", "multistyle26"):
        assert word in script


def test_completion_without_shtab_names_the_extra(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "shtab", None)  # import shtab raises ImportError
    assert main(["completion", "bash"]) == 1
    assert capsys.readouterr().err == "vidstyle: error: shell completion needs shtab: pip install 'vidstyle[completion]'\n"
