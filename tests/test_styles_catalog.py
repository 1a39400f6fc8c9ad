"""The built-in styles are named and pictured: in the package, on the command line and on the live page."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidstyle.models import NUM_STYLES
from vidstyle.models.catalog import NAMES, THUMBNAILS, thumbnail

ROOT = Path(__file__).resolve().parents[1]


def test_every_style_has_a_name_and_a_small_thumbnail():
    assert len(NAMES) == len(set(NAMES)) == NUM_STYLES
    assert all(name == name.lower() and " " not in name for name in NAMES)
    assert sorted(p.name for p in THUMBNAILS.glob("*.jpg")) == [f"{i:02d}.jpg" for i in range(NUM_STYLES)]
    for index in range(NUM_STYLES):
        path = thumbnail(index)
        picture = cv2.imread(str(path))
        assert picture.shape == (120, 160, 3), path
        assert path.stat().st_size < 16_000, path  # the wheel carries all of them
    with pytest.raises(IndexError):
        thumbnail(NUM_STYLES)


def test_thumbnails_differ_from_style_to_style():
    pictures = [cv2.imread(str(thumbnail(i))).astype(int) for i in range(NUM_STYLES)]
    closest = min(np.abs(a - b).mean() for n, a in enumerate(pictures) for b in pictures[n + 1:])
    assert closest > 5  # no style's file is another's copy


def test_the_styles_command_prints_index_name_and_thumbnail(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "vidstyle", "styles"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    rows = [line.split() for line in result.stdout.splitlines()[1:-1]]
    assert rows == [[str(i), NAMES[i], str(thumbnail(i))] for i in range(NUM_STYLES)]
    assert os.listdir(tmp_path) == []


def test_the_docs_sheet_is_a_modest_jpeg():
    sheet = ROOT / "docs" / "images" / "styles.jpg"
    assert cv2.imread(str(sheet)).shape[1] <= 1600 and sheet.stat().st_size < 400_000


def test_the_live_page_serves_names_and_thumbnails():
    pytest.importorskip("aiortc")
    pytest.importorskip("aiohttp")
    from test_serve import SETTINGS

    from vidstyle.apps.serve.server import running

    with running(SETTINGS) as server:
        import json

        with urllib.request.urlopen(server.url + "styles", timeout=10) as response:
            listing = json.load(response)
        assert listing["names"] == list(NAMES)
        assert listing["thumbnails"][7] == "styles/7.jpg"
        with urllib.request.urlopen(server.url + listing["thumbnails"][7], timeout=10) as response:
            assert response.headers["Content-Type"] == "image/jpeg"
            assert response.read() == thumbnail(7).read_bytes()
        for wrong in ("styles/26.jpg", "styles/x.jpg", "styles/..%2Fserver.jpg"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(server.url + wrong, timeout=10)
            assert refused.value.code == 404, wrong
