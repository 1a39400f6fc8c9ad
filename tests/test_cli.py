"""The command line as a user meets it: ``python -m vidstyle`` in a subprocess.

Every mistake a user can make ends in one ``vidstyle: error:`` line, a non-zero exit,
an untouched input and nothing written; the happy paths print where the result went.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from media import RUN_LIMIT, draw_frame, make_audio_only, read_video, vidstyle


pytestmark = pytest.mark.timeout(RUN_LIMIT + 30)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden temp files included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_png(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture
def workdir(tmp_path, clip):
    """A folder holding a good clip and picture, and the bad inputs the table below names."""
    shutil.copy(clip, tmp_path / "in.mp4")
    (tmp_path / "dir").mkdir()
    shutil.copy(clip, tmp_path / "dir" / "x.mp4")
    write_png(tmp_path / "in.png", draw_frame(2, 64, 48))
    (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
    (tmp_path / "notes.jpg").write_text("not a picture\n")
    make_audio_only(tmp_path / "song.m4a")
    return tmp_path


# --- mistakes, caught before any slow work ------------------------------------------------


@pytest.mark.parametrize("case", [
    ("transcode missing.mp4 -o out.mp4", "missing.mp4: no such file"),
    ("transcode notes.mp4 -o out.mp4", "not a readable media file"),  # text named .mp4
    ("transcode song.m4a -o out.mp4", "no video stream"),  # audio only
    ("transcode in.mp4 -o out.mp4 --style 40", "unknown style index 40"),
    ("transcode in.mp4 -o out.mp4 --style 3:0.5,30:0.5", "unknown style index 30"),
    ("transcode in.mp4 -o out.mp4 --style notes.jpg", "cannot read style picture notes.jpg"),
    ("transcode in.mp4 -o out.mp4 --style nowhere.jpg", "neither a style index"),
    ("transcode in.mp4 -o in.mp4", "overwrite the input"),
    ("transcode dir/x.mp4 -o ./dir/../dir/x.mp4", "overwrite the input"),  # same file, other spelling
    ("transcode in.mp4 -o nowhere/out.mp4", "does not exist"),
    ("transcode in.mp4 -o /proc/x.mp4", "cannot write in /proc"),  # even root cannot create files there
    ("transcode in.mp4 -o dir", "is a folder"),
    ("transcode in.mp4 -o out.mp4 --strength 2", "--strength must be between 0 and 1, got 2.0"),
    ("transcode in.mp4 -o out.mp4 --strength -0.5", "--strength must be between 0 and 1"),
    ("transcode in.mp4 -o out.mp4 --batch 0", "--batch must be at least 1"),
    ("transcode in.mp4 -o out.mp4 --size 0x48", "bad size"),
    ("transcode in.mp4 -o out.mp4 --codec nope", "unknown video encoder"),
    ("image missing.png -o out.png", "missing.png: no such file"),
    ("image notes.jpg -o out.png", "not an image OpenCV can decode"),
    ("image in.png -o ./in.png", "overwrite the input"),
    ("image in.png -o out.png --style 40", "unknown style index 40"),
    ("image in.png -o nowhere/out.png", "does not exist"),
    ("image in.png -o out.png --strength 2", "--strength must be between 0 and 1"),
], ids=lambda case: re.sub(r"[^\w.:/-]+", "_", case[0]))
def test_a_mistake_is_one_error_line_and_changes_nothing(workdir, case):
    args, words = case
    before = snapshot(workdir)
    result = vidstyle(*args.split(), cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("vidstyle: error: ") and words in result.stderr
    assert result.stdout == ""
    assert snapshot(workdir) == before  # inputs byte-identical; no output, no .partial file
    assert not Path("/proc/x.mp4").exists()


def test_an_unwritable_image_folder_fails_before_any_work(workdir):
    # os.access() says root may write in /proc; the folder is tried for real before the
    # model loads, so the error is the only line on stderr.
    before = snapshot(workdir)
    result = vidstyle("image", "in.png", "-o", "/proc/x.png", cwd=workdir)
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["vidstyle: error: /proc: output folder is not writable (No such file or directory)"]
    assert snapshot(workdir) == before


# --- happy paths -----------------------------------------------------------------------------


@pytest.mark.slow
def test_transcode_writes_the_stylized_clip(workdir):
    result = vidstyle("transcode", "in.mp4", "-o", "out.mp4", "--style", "3", "--no-progress",
                      "--preset", "ultrafast", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"wrote out\.mp4 \(10 frames, \d+\.\d fps\)\n", result.stdout)
    assert "Traceback" not in result.stderr and "stylizing" not in result.stderr  # no progress bar
    a, b = read_video(workdir / "in.mp4"), read_video(workdir / "out.mp4")
    assert len(b.frames) == 10 and b.times == a.times and b.audio_codec == "aac"
    assert np.abs(b.frames[0].astype(int) - a.frames[0]).mean() > 20  # stylized, not copied
    assert sorted(os.listdir(workdir / "dir")) == ["x.mp4"]
    assert not [name for name in os.listdir(workdir) if ".partial" in name]


@pytest.mark.slow
def test_image_writes_the_stylized_picture(workdir):
    result = vidstyle("image", "in.png", "-o", "out.png", "--style", "3:0.5,12:0.5", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote out.png\n"
    original, out = cv2.imread(str(workdir / "in.png")), cv2.imread(str(workdir / "out.png"))
    assert out.shape == original.shape == (48, 64, 3)
    assert np.abs(out.astype(int) - original).mean() > 20
    assert not [name for name in os.listdir(workdir) if ".partial" in name]


def test_styles_lists_the_builtins(tmp_path):
    result = vidstyle("styles", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("26 built-in styles (--style INDEX;")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [["--help"], ["transcode", "--help"], ["image", "--help"]])
def test_help(tmp_path, args):
    result = vidstyle(*args, cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: vidstyle")
    for word in (["transcode", "image", "styles"] if args == ["--help"] else ["--style", "--strength", "--output"]):
        assert word in result.stdout
