"""The Python examples in README.md and docs/ run as written, on a clip made here."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from media import make_video, read_video

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for i, code in enumerate(FENCE.findall(doc.read_text())):
            found.append((f"{doc.relative_to(ROOT)}#{i + 1}", code))
    return found


def test_the_readme_has_a_python_example():
    assert any(name.startswith("README.md") for name, _ in examples())


@pytest.mark.parametrize("name,code", examples(), ids=[name for name, _ in examples()])
def test_example_runs(name, code, tmp_path):
    make_video(tmp_path / "in.mp4", frames=12, size=(64, 48), audio=True)
    # A fresh interpreter: the example's own imports are what is tested (a package that
    # loads lazily can fail on first import and pass in a process that imported it before).
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, f"{name} failed:\n{run.stderr[-3000:]}"
    if '"out.mp4"' in code:  # an example that transcodes in.mp4 writes every frame
        assert len(read_video(tmp_path / "out.mp4").frames) == 12
