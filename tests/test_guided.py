"""Guided upsampling (vidstyle.processing.guided) and --internal-scale: edges come back, S = 1 changes
nothing, a bad S is one error line, and a transcode at S = 0.5 keeps every frame at full size."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import draw_frame, read_video
from vidstyle.engines.base import RunsNow
from vidstyle.processing import geometry, guided

ROOT = Path(__file__).resolve().parents[1]


def sharp_picture(width: int = 640, height: int = 480) -> np.ndarray:
    """Flat coloured shapes and thin lines: edges everywhere, no texture."""
    rgb = np.full((height, width, 3), (40, 90, 160), np.uint8)
    cv2.rectangle(rgb, (60, 50), (300, 260), (230, 200, 30), -1)
    cv2.circle(rgb, (450, 300), 120, (200, 30, 60), -1)
    cv2.putText(rgb, "vidstyle", (80, 420), cv2.FONT_HERSHEY_SIMPLEX, 3, (250, 250, 250), 5, cv2.LINE_8)
    for x in range(20, width, 37):
        cv2.line(rgb, (x, 0), (x + 40, height), (10, 10, 10), 1, cv2.LINE_8)
    return rgb


def _edges(rgb: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))


@pytest.mark.parametrize("guide_mode", guided.GUIDES)
def test_guided_upsampling_recovers_edges_better_than_bilinear(guide_mode):
    full = sharp_picture()
    low = cv2.resize(full, (320, 240), interpolation=cv2.INTER_AREA)
    plain = guided.plain(low, 640, 480)
    out = guided.upsample(low, full, guide_mode=guide_mode)
    assert out.shape == full.shape and out.dtype == np.uint8
    err = lambda x: np.abs(x.astype(np.float32) - full).mean()  # noqa: E731
    assert err(out) < 0.6 * err(plain), (err(out), err(plain))
    # Edge strength where the picture has edges: closer to the original's than the blurred resize.
    mask = _edges(full) > 100
    gap = lambda x: np.abs(_edges(x)[mask] - _edges(full)[mask]).mean()  # noqa: E731
    assert gap(out) < 0.7 * gap(plain), (gap(out), gap(plain))


def test_guided_upsampling_keeps_what_the_low_image_has():
    # Where the guide is flat the result is the plain resize: the stylized texture is kept.
    guide = np.full((96, 128, 3), 128, np.uint8)
    low = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert np.abs(guided.upsample(low, guide).astype(int) - guided.plain(low, 128, 96)).max() <= 1
    np.testing.assert_array_equal(guided.upsample(low, cv2.resize(guide, (64, 48))), low)


def test_internal_size_is_a_multiple_of_four():
    assert geometry.internal_size(640, 480, 1.0) == (640, 480)
    assert geometry.internal_size(640, 480, 0.5) == (320, 240)
    assert geometry.internal_size(640, 480, 0.75) == (480, 360)
    assert geometry.internal_size(352, 200, 0.75) == (264, 152)
    assert geometry.internal_size(64, 48, 0.1) == (16, 16)
    assert geometry.internal_size(16, 16, 0.5) == (16, 16)
    for w, h in [(100, 60), (1280, 720), (20, 16)]:
        for s in (0.3, 0.5, 0.75, 0.9):
            iw, ih = geometry.internal_size(w, h, s)
            assert iw % 4 == 0 and ih % 4 == 0 and iw <= w and ih <= h


class _Recorder(RunsNow):
    """An engine stand-in: a fixed per-pixel function of the input, and the shapes it saw."""

    name, model = "fake", "multistyle26"

    def __init__(self):
        self.shapes = []

    def run(self, batch, style):
        self.shapes.append(batch.shape)
        return (255 - batch).astype(np.uint8)


def test_internal_scale_one_is_the_plain_path_bit_for_bit():
    from vidstyle.processing.styles import parse
    from vidstyle.pipeline.stylizer import Stylizer

    batch = np.stack([draw_frame(i, 64, 48) for i in range(3)])
    engine = _Recorder()
    default = Stylizer(parse("7"), engine).run(batch, size=4)
    one = Stylizer(parse("7"), engine, internal_scale=1.0).run(batch, size=4)
    np.testing.assert_array_equal(default, one)
    np.testing.assert_array_equal(one, 255 - batch)
    assert engine.shapes == [(4, 48, 64, 3)] * 2


def test_internal_scale_runs_the_network_smaller_and_returns_full_size():
    from vidstyle.processing.styles import parse
    from vidstyle.pipeline.stylizer import Stylizer

    batch = np.stack([draw_frame(i, 64, 48) for i in range(3)])
    engine = _Recorder()
    out = Stylizer(parse("7"), engine, internal_scale=0.5).run(batch, size=4)
    assert engine.shapes == [(4, 24, 32, 3)]
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - (255 - batch)).mean() < 20  # an inversion, upsampled


@pytest.mark.slow
def test_internal_scale_one_transcode_is_bit_identical(clip, tmp_path):
    from vidstyle.offline import TranscodeConfig, transcode

    transcode(TranscodeConfig(clip, tmp_path / "a.mp4", temporal="off"))
    transcode(TranscodeConfig(clip, tmp_path / "b.mp4", temporal="off", internal_scale=1.0))
    a, b = read_video(tmp_path / "a.mp4"), read_video(tmp_path / "b.mp4")
    assert len(a.frames) == len(b.frames) == 10
    for x, y in zip(a.frames, b.frames):
        np.testing.assert_array_equal(x, y)


def vidstyle(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "vidstyle", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [
    "transcode in.mp4 -o out.mp4 --internal-scale 0",
    "transcode in.mp4 -o out.mp4 --internal-scale 1.5",
    "transcode in.mp4 -o out.mp4 --internal-scale -0.5",
    "image in.png -o out.png --internal-scale 2",
    "live --camera synthetic --seconds 1 --internal-scale 0",
])
def test_internal_scale_out_of_range_is_one_error_line(clip_copy, args):
    cv2.imwrite(str(clip_copy.parent / "in.png"), draw_frame(1, 64, 48))
    before = sorted(os.listdir(clip_copy.parent))
    result = vidstyle(*args.split(), cwd=clip_copy.parent)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("vidstyle: error: --internal-scale must be above 0 and at most 1")
    assert sorted(os.listdir(clip_copy.parent)) == before


@pytest.mark.slow
def test_transcode_at_internal_scale_half_keeps_every_frame_full_size(clip_copy):
    workdir = clip_copy.parent
    result = vidstyle("transcode", "in.mp4", "-o", "out.mp4", "--internal-scale", "0.5", "--no-progress",
                      "--preset", "ultrafast", cwd=workdir)
    assert result.returncode == 0, result.stderr
    a, b = read_video(workdir / "in.mp4"), read_video(workdir / "out.mp4")
    assert (b.width, b.height) == (a.width, a.height) == (64, 48)
    assert len(b.frames) == len(a.frames) == 10 and b.times == a.times
    assert np.abs(b.frames[0].astype(int) - a.frames[0]).mean() > 20  # stylized, not copied

