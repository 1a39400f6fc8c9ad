"""What `make demo` and `make test` install, read from make's own dry run (nothing is installed)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands ``make TARGET`` would run for a fresh virtual environment."""
    result = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def installs(lines: list[str]) -> list[str]:
    return [line for line in lines if "pip install" in line and "--upgrade pip" not in line]


def test_the_demo_installs_the_runtime_only(tmp_path):
    lines = dry_run("demo", tmp_path)
    assert [line.split("pip install", 1)[1].split() for line in installs(lines)] == [["--quiet", "-e", "."]]
    assert any("vidstyle transcode samples/cup.mp4" in line and " -y" in line for line in lines)


def test_the_tests_install_every_extra_they_use(tmp_path):
    extras = " ".join(installs(dry_run("test", tmp_path)))
    assert "'.[dev,tf]'" in extras


def test_no_install_pulls_scikit_video():
    assert "scikit-video" not in (ROOT / "pyproject.toml").read_text()
