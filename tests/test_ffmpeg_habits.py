"""What an ffmpeg user types works: ``-i``, ``-y``/``-n``, ``-ss``/``-t``, help with defaults.

An existing output is never replaced without ``-y``; a part of a video (``--start``,
``--duration``) keeps every picture of that part, in time, with its audio.
"""
from __future__ import annotations

import argparse
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import RUN_LIMIT, draw_frame, make_video, read_video, vidstyle
from vidstyle.apps.cli import _seconds, create_parser
from vidstyle.errors import InputError
from vidstyle.io.source import FileSource, probe
from vidstyle.io.span import cut


pytestmark = pytest.mark.timeout(RUN_LIMIT + 60)


def nearest_index(image: np.ndarray, candidates: range, size: tuple[int, int]) -> int:
    """Which drawn frame ``image`` shows (after lossy coding: the closest one)."""
    errors = {i: np.abs(image.astype(int) - draw_frame(i, *size)).mean() for i in candidates}
    return min(errors, key=errors.get)


def short_gop_clip(path: Path, frames: int = 60, size=(64, 48), fps: int = 25) -> Path:
    """H.264 with B-frames and a keyframe every 10 frames: decode order differs from display
    order, and a seek lands on a keyframe near any start."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        video.codec_context.thread_count = 1
        video.codec_context.options = {"g": "10", "keyint_min": "10", "sc_threshold": "0", "bf": "3"}
        for i in range(frames):
            picture = av.VideoFrame.from_ndarray(draw_frame(i, *size), format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
    return path


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """Six seconds at 25 fps with an AAC tone: room for a 3 s part in the middle."""
    return make_video(tmp_path_factory.mktemp("long") / "long.mp4", frames=150, size=(64, 48), fps=25)


# --- times, as ffmpeg writes them ------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0),
    ("1.5", 1.5),
    ("1:30", 90.0),  # MM:SS
    ("01:02:03.5", 3723.5),  # HH:MM:SS.frac
    ("0", 0.0),
])
def test_a_time_is_seconds_or_clock_time(text, seconds):
    assert _seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "-2", "1:60", "1:2:3:4", "1::2"])
def test_a_bad_time_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        _seconds(text)


# --- a part of a video -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])  # MPEG-TS seeks by decode time
@pytest.mark.parametrize("first", [
    0,   # from the start: no seek at all
    3,   # in the first group of pictures
    15,  # in the middle of a group
    19,  # the picture before a keyframe
    20,  # a keyframe
    23,  # a few pictures after one: a seek by decode time alone lands on the next keyframe
])
def test_a_part_holds_exactly_its_pictures(tmp_path, suffix, first):
    path = short_gop_clip(tmp_path / f"gop{suffix}")
    info = probe(path)
    span = cut(info, start=first / 25, duration=8 / 25)
    source = FileSource(path, start_pts=span.start_pts, end_pts=span.end_pts, seek_pts=span.seek_pts)
    with source:
        shown = [nearest_index(frame.image, range(60), (64, 48)) for frame in source.frames()]
    assert shown == list(range(first, first + 8))


def test_a_start_past_the_end_is_refused_before_any_work(long_clip):
    with pytest.raises(InputError, match="lasts 6.00 s; nothing starts at 7 s"):
        cut(probe(long_clip), start=7)


def test_the_whole_video_is_no_part(long_clip):
    assert cut(probe(long_clip)) is None


@pytest.mark.slow
def test_start_and_duration_give_that_many_seconds_of_video_and_audio(tmp_path, long_clip):
    shutil.copy(long_clip, tmp_path / "in.mp4")
    result = vidstyle("transcode", "in.mp4", "-o", "out.mp4", "--start", "2", "--duration", "3",
                      "--strength", "0", "--temporal", "off", "--preset", "ultrafast", "--no-progress",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote out.mp4 (75 frames")
    out = read_video(tmp_path / "out.mp4")
    assert len(out.frames) == 75
    assert out.times[0] == 0 and out.times[-1] == Fraction(74, 25)  # the output's clock starts at the part
    # --strength 0 gives the pictures back: the first is the source's frame at 2 s.
    assert nearest_index(out.frames[0], range(40, 60), (64, 48)) == 50
    assert nearest_index(out.frames[-1], range(115, 135), (64, 48)) == 124
    # Audio is cut in whole AAC packets (1024 samples, 23 ms): each end within one of the
    # part's. (PyAV 18 and 19 decode the same packets to lengths 20 ms apart: their
    # FFmpegs treat the encoder's priming samples differently.)
    packet = 1024 / 44100
    assert out.audio_end - out.audio_duration == pytest.approx(0.0, abs=packet)
    assert out.audio_end == pytest.approx(3.0, abs=packet)


# --- never replaced without -y ---------------------------------------------------------------


@pytest.fixture
def existing(tmp_path, clip):
    """A clip, a picture, and outputs of both that exist already."""
    shutil.copy(clip, tmp_path / "in.mp4")
    shutil.copy(clip, tmp_path / "out.mp4")
    (tmp_path / "in.png").write_bytes(_png(draw_frame(1, 64, 48)))
    (tmp_path / "out.png").write_bytes(b"an older picture")
    (tmp_path / "videos").mkdir()
    shutil.copy(clip, tmp_path / "videos" / "a.mp4")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "a.mp4").write_bytes(b"an older video")
    return tmp_path


def _png(rgb: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.mark.parametrize("args, refused", [
    ("transcode in.mp4 -o out.mp4", "out.mp4"),
    ("transcode -i in.mp4 -o out.mp4 -n", "out.mp4"),  # -n: never replace
    ("-i in.mp4 -o out.mp4", "out.mp4"),  # ffmpeg's order: no command word
    ("image in.png -o out.png", "out.png"),
    ("image -i in.png -o out.png -n", "out.png"),
    ("batch videos -o done", "done/a.mp4"),
])
def test_an_existing_output_is_refused_in_one_line(existing, args, refused):
    before = {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()}
    result = vidstyle(*args.split(), cwd=existing)
    assert result.returncode == 1
    assert result.stderr == f"vidstyle: error: {refused}: already exists; -y replaces it\n"
    assert result.stdout == ""
    assert {p: p.read_bytes() for p in existing.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_minus_y_replaces_and_minus_n_skips_in_a_batch(existing):
    result = vidstyle("-y", "-i", "in.mp4", "-o", "out.mp4", "-ss", "0.1", "-t", "0.2", "--temporal", "off",
                      "--preset", "ultrafast", "--no-progress", cwd=existing)
    assert result.returncode == 0, result.stderr
    assert len(read_video(existing / "out.mp4").frames) == 5  # replaced by 0.2 s at 25 fps
    shutil.copy(existing / "in.mp4", existing / "videos" / "b.mp4")
    result = vidstyle("batch", "-i", "videos", "-o", "done", "-n", "--temporal", "off", "--preset", "ultrafast",
                      "--no-progress", cwd=existing)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote 1 file(s) to done (1 already there)\n"
    assert (existing / "done" / "a.mp4").read_bytes() == b"an older video"
    assert len(read_video(existing / "done" / "b.mp4").frames) == 10


@pytest.mark.parametrize("args, words", [
    ("transcode in.mp4 -i in.mp4 -o x.mp4", "give the input once, as IN or -i IN (got in.mp4 and in.mp4)"),
    ("transcode -o x.mp4", "give the input once"),
    ("transcode in.mp4 -o x.mp4 --start 9", "nothing starts at 9 s"),
    ("transcode in.mp4 -o x.mp4 -ss 0.1 --cluster local", "--start and --duration run on this machine"),
])
def test_input_and_part_mistakes_are_one_line(existing, args, words):
    result = vidstyle(*args.split(), cwd=existing)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and words in result.stderr, result.stderr
    assert not (existing / "x.mp4").exists()


@pytest.mark.parametrize("args", [
    "transcode in.mp4 -o x.mp4 --engine nope",
    "transcode in.mp4 -o x.mp4 --model nope",
    "image in.png -o x.png --engine onnx",
    "transcode in.mp4 -o x.mp4 -t 0",
    "transcode in.mp4 -o x.mp4 -y -n",
])
def test_fixed_choices_and_bad_values_stop_at_the_parser(existing, args):
    result = vidstyle(*args.split(), cwd=existing)
    assert result.returncode == 2 and "error: argument" in result.stderr
    assert not (existing / "x.mp4").exists() and not (existing / "x.png").exists()


# --- help ------------------------------------------------------------------------------------


def _commands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


@pytest.mark.parametrize("name, command", list(_commands(create_parser())), ids=lambda x: x if isinstance(x, str) else "")
def test_every_option_has_help_that_names_its_default(name, command):
    formatter = command.formatter_class(prog=name)
    for action in command._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings or action.dest}: no help text"
        if action.option_strings and not (action.default is None or action.default is False
                                          or action.default == argparse.SUPPRESS):
            shown = formatter._get_help_string(action)
            assert "default" in shown, f"{name} {action.option_strings}: default {action.default!r} not shown"
