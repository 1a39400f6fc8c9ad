"""FileSource / FileSink / probe against small videos made in code (tests/media.py)."""
from __future__ import annotations

import os
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media import draw_frame, make_audio_only, make_corrupt_video, make_video, read_video
from vidstyle.errors import InputError, OutputError
from vidstyle.frame import Frame
from vidstyle.io import EncodeSettings, FileSink, FileSource, VideoInfo, probe

AAC_FRAME = 1024 / 44100  # one AAC frame, the tolerance on audio length


def transcode(src, dst, settings=EncodeSettings(), audio=True) -> Path:
    info = probe(src)
    audio_from = str(src) if audio else None
    with FileSource(src) as source, \
            FileSink(dst, info, info.width, info.height, settings, audio_from) as sink:
        for frame in source.frames():
            sink.write(frame)
    return Path(dst)


def audio_packets(path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def files_in(folder) -> list[str]:
    return sorted(os.listdir(folder))


def write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


# --- probe ---------------------------------------------------------------------------


def test_probe_describes_the_stream(tmp_path):
    info = probe(make_video(tmp_path / "a.mp4", frames=30, size=(64, 48), fps=25))
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.rotation) == (64, 48, 0)
    assert info.average_rate == 25 and info.frame_count == 30
    assert info.duration == pytest.approx(1.2, abs=0.04)
    assert isinstance(info.time_base, Fraction) and info.codec == "h264" and info.has_audio
    assert not probe(make_video(tmp_path / "b.mp4", audio=False)).has_audio


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.mp4", "no such file"),
    (lambda d: d, "folder"),
    # plain text is not a container FFmpeg can open
    (lambda d: write_text(d / "notes.mp4", "not a video\n" * 20), "not a readable media file"),
    (lambda d: make_audio_only(d / "song.m4a"), "no video stream"),
    # Matroska keeps a declared video track even when no frame was ever written
    (lambda d: make_video(d / "empty.mkv", frames=0), "no frames"),
    # MP4 drops an empty track, so the same file has no video stream at all
    (lambda d: make_video(d / "empty.mp4", frames=0), "no video stream"),
], ids=["missing", "folder", "text", "audio-only", "zero-frames-mkv", "zero-frames-mp4"])
def test_probe_rejects_unusable_input_in_one_line(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        probe(path)
    message = str(caught.value)
    assert words in message and str(path) in message and "\n" not in message
    with pytest.raises(InputError):
        FileSource(path)


# --- FileSource ----------------------------------------------------------------------


@pytest.mark.parametrize("threads", [0, 1])
def test_source_yields_every_frame_with_source_timestamps(tmp_path, threads):
    path = make_video(tmp_path / "a.mp4", frames=20, vfr=True)
    expected = read_video(path)
    with FileSource(path, threads=threads) as source:
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(20))
    assert [f.pts for f in frames] == expected.pts
    assert all(f.time_base == expected.time_base for f in frames)
    for frame, image in zip(frames, expected.frames):
        assert frame.image.dtype == np.uint8 and frame.image.shape == (48, 64, 3)
        np.testing.assert_array_equal(frame.image, image)
    # every frame differs from the previous one, so nothing was repeated or dropped
    assert all(mean_error(a.image, b.image) > 1 for a, b in zip(frames, frames[1:]))


def test_source_decode_error_names_the_frame_and_ffmpeg_words(tmp_path):
    path = make_corrupt_video(tmp_path / "bad.mkv", frames=10, bad_frame=5)
    source = FileSource(path, threads=1)
    seen = []
    with pytest.raises(InputError, match=r"frame 5 .*Invalid data"):
        for frame in source.frames():
            seen.append(frame.index)
    assert seen == [0, 1, 2, 3, 4]


def test_source_close_stops_iteration_and_is_idempotent(tmp_path):
    source = FileSource(make_video(tmp_path / "a.mp4", audio=False))
    frames = source.frames()
    assert next(frames).index == 0
    source.close()
    source.close()
    with pytest.raises(StopIteration):
        next(frames)
    with pytest.raises(ValueError):
        source.frames()


def test_source_closed_from_another_thread_ends_the_iteration(tmp_path):
    # The pipeline's orchestrator closes the source while the decode thread is
    # parked outside the generator (e.g. blocked on a full queue).
    source = FileSource(make_video(tmp_path / "a.mp4", audio=False))
    frames = source.frames()
    next(frames)
    closer = threading.Thread(target=source.close)
    closer.start()
    closer.join(timeout=10)
    assert not closer.is_alive()
    assert list(frames) == []


def test_source_can_be_iterated_twice_before_close(tmp_path):
    with FileSource(make_video(tmp_path / "a.mp4", frames=5, audio=False)) as source:
        assert len(list(source.frames())) == len(list(source.frames())) == 5


@pytest.mark.parametrize("first, last", [(0, 8), (7, 19), (12, None)], ids=["head", "middle", "tail"])
def test_source_span_yields_the_frames_of_that_pts_range_with_global_indexes(tmp_path, first, last):
    # VFR with B-frames and one keyframe: the seek lands at frame 0 and the span is cut by pts alone.
    path = make_video(tmp_path / "a.mp4", frames=20, vfr=True, audio=False)
    expected = read_video(path)
    end = expected.pts[last] if last is not None else None
    with FileSource(path, start_pts=expected.pts[first], end_pts=end, first_index=first) as source:
        frames = list(source.frames())
    stop = last if last is not None else 20
    assert [f.index for f in frames] == list(range(first, stop))
    assert [f.pts for f in frames] == expected.pts[first:stop]
    for frame, image in zip(frames, expected.frames[first:stop]):
        np.testing.assert_array_equal(frame.image, image)


def test_source_span_seeks_to_a_given_keyframe(tmp_path):
    path = make_corrupt_video(tmp_path / "a.mkv", frames=10, bad_frame=99)  # intra only: every frame a keyframe
    pts = read_video(path).pts
    with FileSource(path, start_pts=pts[6], seek_pts=pts[4], end_pts=pts[8], first_index=6) as source:
        assert [(f.index, f.pts) for f in source.frames()] == [(6, pts[6]), (7, pts[7])]


@pytest.mark.parametrize("first, last", [(0, 5), (6, None), (2, 4)])
def test_source_span_does_not_report_damage_outside_it(tmp_path, first, last):
    path = make_corrupt_video(tmp_path / "bad.mkv", frames=10, bad_frame=5)
    pts = read_video(make_corrupt_video(tmp_path / "good.mkv", frames=10, bad_frame=99)).pts
    end = pts[last] if last is not None else None
    with FileSource(path, threads=1, start_pts=pts[first], end_pts=end, first_index=first) as source:
        frames = list(source.frames())
    assert [f.index for f in frames] == list(range(first, last or 10)) and source.skipped == []


@pytest.mark.parametrize("on_decode_error", ["stop", "skip"])
def test_source_span_reports_damage_inside_it_by_its_global_index(tmp_path, on_decode_error):
    path = make_corrupt_video(tmp_path / "bad.mkv", frames=10, bad_frame=5)
    pts = read_video(make_corrupt_video(tmp_path / "good.mkv", frames=10, bad_frame=99)).pts
    source = FileSource(path, threads=1, on_decode_error=on_decode_error, start_pts=pts[3], end_pts=pts[8],
                        first_index=3)
    with source:
        if on_decode_error == "stop":
            with pytest.raises(InputError, match=r"cannot decode frame 5 "):
                list(source.frames())
            return
        frames = list(source.frames())
    assert [(f.index, f.pts) for f in frames] == [(i, pts[i]) for i in (3, 4, 6, 7)]
    assert source.skipped == [5]


# --- FileSink: timing, audio, geometry -------------------------------------------------


@pytest.mark.parametrize("vfr", [False, True], ids=["cfr", "vfr"])
def test_round_trip_keeps_frames_timestamps_and_audio(tmp_path, vfr):
    src = make_video(tmp_path / "in.mp4", frames=30, vfr=vfr)
    dst = transcode(src, tmp_path / "out.mp4")
    a, b = read_video(src), read_video(dst)
    assert len(b.frames) == len(a.frames) == 30
    assert b.times == a.times  # exact: every frame kept its source pts
    assert (b.width, b.height, b.codec) == (64, 48, "h264")
    assert abs(probe(dst).duration - probe(src).duration) <= 1 / 25
    assert b.audio_codec == "aac"
    assert abs(b.audio_duration - a.audio_duration) <= AAC_FRAME
    assert abs(b.audio_end - a.audio_end) <= AAC_FRAME
    assert max(mean_error(x, y) for x, y in zip(a.frames, b.frames)) < 10
    assert files_in(tmp_path) == ["in.mp4", "out.mp4"]  # no temp file left behind


def test_audio_is_copied_untouched_when_the_container_takes_it(tmp_path):
    src = make_video(tmp_path / "in.mp4")
    dst = transcode(src, tmp_path / "out.mkv")
    assert audio_packets(dst) == audio_packets(src)


def test_every_audio_track_is_carried(tmp_path):
    src = make_video(tmp_path / "in.mkv", audio=2)
    dst = transcode(src, tmp_path / "out.mp4")
    with av.open(str(dst)) as container:
        assert len(container.streams.audio) == 2


def test_audio_is_reencoded_for_a_container_that_refuses_it(tmp_path):
    src = make_video(tmp_path / "in.mp4")  # AAC, which WebM does not accept
    dst = transcode(src, tmp_path / "out.webm", EncodeSettings(codec="libvpx-vp9", crf=30))
    a, b = read_video(src), read_video(dst)
    assert (b.codec, b.audio_codec) == ("vp9", "opus")
    assert len(b.frames) == 30
    assert abs(b.audio_duration - a.audio_duration) <= AAC_FRAME


def test_partial_close_keeps_audio_only_up_to_the_last_frame(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=30)
    info = probe(src)
    sink = FileSink(tmp_path / "out.mp4", info, 64, 48, audio_from=str(src))
    with FileSource(src) as source:
        for frame in source.frames():
            if frame.index == 10:
                break
            sink.write(frame)
    sink.close(partial=True)
    out = read_video(tmp_path / "out.mp4")
    assert len(out.frames) == 10
    assert abs(out.audio_end - 10 / 25) <= AAC_FRAME


@pytest.mark.parametrize("pix_fmt, coded", [("yuv420p", (34, 18)), ("yuv444p", (33, 17))])
def test_odd_sizes_are_padded_only_as_far_as_the_pixel_format_needs(tmp_path, pix_fmt, coded):
    src = make_video(tmp_path / "in.mkv", size=(33, 17), pix_fmt="yuv444p", frames=10)
    dst = transcode(src, tmp_path / "out.mp4", EncodeSettings(pix_fmt=pix_fmt))
    a, b = read_video(src), read_video(dst)
    assert (b.width, b.height) == coded and len(b.frames) == 10
    for x, y in zip(a.frames, b.frames):
        assert mean_error(x, y[:17, :33]) < 30  # 4:2:0 on a 33x17 picture is coarse
    if coded != (33, 17):  # the extra column/row repeats the edge, it is not black
        last = b.frames[0]
        assert mean_error(last[:, 33], last[:, 32]) < 12
        assert mean_error(last[17, :], last[16, :]) < 12


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_metadata_survives_so_the_output_displays_the_same(tmp_path, rotation):
    src = make_video(tmp_path / "phone.mp4", size=(64, 48), rotation=rotation, frames=5)
    assert probe(src).rotation == rotation
    dst = transcode(src, tmp_path / "out.mp4")
    a, b = read_video(src), read_video(dst)
    assert probe(dst).rotation == b.rotation == rotation
    k = rotation // 90  # the player turns the stored picture counter-clockwise
    for x, y in zip(a.frames, b.frames):
        upright_in, upright_out = np.rot90(x, k), np.rot90(y, k)
        assert upright_out.shape == (64, 48, 3)
        assert mean_error(upright_in, upright_out) < 10


def test_flat_colours_come_back_unshifted(tmp_path):
    # A BT.601/BT.709 mix-up moves saturated colours by 10+ levels.
    colours = [(200, 40, 30), (30, 180, 60), (40, 60, 220), (128, 128, 128)]
    info = probe(make_video(tmp_path / "in.mp4", frames=2, audio=False))
    with FileSink(tmp_path / "out.mp4", info, 64, 48) as sink:
        for i, colour in enumerate(colours):
            sink.write(Frame(i, i * 512, info.time_base, np.full((48, 64, 3), colour, np.uint8)))
    for colour, image in zip(colours, read_video(tmp_path / "out.mp4").frames):
        assert np.abs(image.reshape(-1, 3).mean(0) - colour).max() < 4


def test_frames_without_usable_timestamps_still_get_one_slot_each(tmp_path):
    info = probe(make_video(tmp_path / "in.mp4", frames=2, audio=False))
    stamps = [None, None, 5, 5, 3, None]  # missing, repeated and backwards
    with FileSink(tmp_path / "out.mp4", info, 64, 48) as sink:
        for i, pts in enumerate(stamps):
            time_base = info.time_base if pts is not None else None
            sink.write(Frame(i, pts, time_base, draw_frame(i, 64, 48)))
    out = read_video(tmp_path / "out.mp4")
    assert len(out.pts) == len(stamps) and out.pts == sorted(set(out.pts))


@pytest.mark.parametrize("codec, ext, expected", [
    ("libx265", "mkv", "hevc"),
    ("mpeg4", "avi", "mpeg4"),
    ("libvpx-vp9", "webm", "vp9"),
])
def test_other_encoders(tmp_path, codec, ext, expected):
    src = make_video(tmp_path / "in.mp4", frames=8)
    out = read_video(transcode(src, tmp_path / f"out.{ext}", EncodeSettings(codec=codec)))
    assert (out.codec, len(out.frames), out.width, out.height) == (expected, 8, 64, 48)
    assert out.audio_duration is not None


def test_copied_audio_refused_by_the_muxer_is_reencoded_instead(tmp_path):
    # MPEG-TS carries AAC as ADTS, which the AVI muxer rejects only when the
    # header is written: the sink starts again with the audio re-encoded.
    src = make_video(tmp_path / "in.ts", frames=8)
    out = read_video(transcode(src, tmp_path / "out.avi", EncodeSettings(codec="mpeg4")))
    assert len(out.frames) == 8 and out.audio_codec == "aac"
    assert abs(out.audio_duration - read_video(src).audio_duration) <= 2 * AAC_FRAME
    assert files_in(tmp_path) == ["in.ts", "out.avi"]


# --- FileSink: publishing and failure --------------------------------------------------


def test_output_appears_only_at_close_under_a_hidden_partial_name(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=5, audio=False)
    info = probe(src)
    sink = FileSink(tmp_path / "out.mp4", info, 64, 48)
    with FileSource(src) as source:
        for frame in source.frames():
            sink.write(frame)
    (temp,) = [name for name in files_in(tmp_path) if name != "in.mp4"]
    assert temp.startswith(".out.partial-") and temp.endswith(".mp4")
    assert not (tmp_path / "out.mp4").exists()
    assert sink.close() == tmp_path / "out.mp4"
    assert sink.close() == tmp_path / "out.mp4"  # idempotent
    assert files_in(tmp_path) == ["in.mp4", "out.mp4"]
    with pytest.raises(OutputError):
        sink.write(Frame(9, 9000, info.time_base, draw_frame(9, 64, 48)))


def test_abort_removes_the_temp_file_and_never_touches_the_final_path(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=5)
    (tmp_path / "out.mp4").write_bytes(b"previous result")
    info = probe(src)
    sink = FileSink(tmp_path / "out.mp4", info, 64, 48, audio_from=str(src))
    with FileSource(src) as source:
        sink.write(next(source.frames()))
    sink.abort()
    sink.abort()
    assert files_in(tmp_path) == ["in.mp4", "out.mp4"]
    assert (tmp_path / "out.mp4").read_bytes() == b"previous result"
    with pytest.raises(OutputError):
        sink.close()


def test_an_exception_inside_the_with_block_aborts(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=5)
    with pytest.raises(RuntimeError):
        with FileSink(tmp_path / "out.mp4", probe(src), 64, 48, audio_from=str(src)) as sink:
            sink.write(Frame(0, 0, Fraction(1, 25), draw_frame(0, 64, 48)))
            raise RuntimeError("stage failed")
    assert files_in(tmp_path) == ["in.mp4"]


def test_a_frame_of_the_wrong_shape_is_refused(tmp_path):
    info = probe(make_video(tmp_path / "in.mp4", frames=2, audio=False))
    with FileSink(tmp_path / "out.mp4", info, 64, 48) as sink:
        with pytest.raises(ValueError, match="frame 3"):
            sink.write(Frame(3, 0, info.time_base, np.zeros((48, 63, 3), np.uint8)))


@pytest.mark.parametrize("target, settings, words", [
    ("nowhere/out.mp4", EncodeSettings(), "does not exist"),
    ("in.mp4/out.mp4", EncodeSettings(), "does not exist"),  # parent is a file
    ("in.mp4", EncodeSettings(), "overwrite the input"),
    ("sub/../in.mp4", EncodeSettings(), "overwrite the input"),  # same file, other spelling
    ("link.mp4", EncodeSettings(), "overwrite the input"),  # symlink to the input
    ("sub", EncodeSettings(), "is a folder"),
    ("out.mp4", EncodeSettings(codec="no-such-codec"), "unknown video encoder"),
    ("out.mp4", EncodeSettings(codec="aac"), "not a video encoder"),
    ("out.mp4", EncodeSettings(pix_fmt="rgb24"), "pixel format"),
    ("out.mp4", EncodeSettings(preset="warp-speed"), "preset"),
    ("out.webm", EncodeSettings(codec="libx264"), "does not support"),
], ids=["missing-folder", "parent-is-file", "same-path", "same-file", "symlink", "folder",
        "unknown-codec", "audio-codec", "pix-fmt", "preset", "container-mismatch"])
def test_output_problems_fail_before_any_frame_in_one_line(tmp_path, target, settings, words):
    src = make_video(tmp_path / "in.mp4", frames=2)
    (tmp_path / "sub").mkdir()
    if hasattr(os, "symlink"):
        os.symlink(src, tmp_path / "link.mp4")
    before, input_bytes = files_in(tmp_path), src.read_bytes()
    with pytest.raises(OutputError) as caught:
        FileSink(tmp_path / target, probe(src), 64, 48, settings, audio_from=str(src))
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert files_in(tmp_path) == before and src.read_bytes() == input_bytes


def test_audio_source_that_is_the_output_is_refused(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=2)
    other = make_video(tmp_path / "other.mp4", frames=2)
    with pytest.raises(OutputError, match="overwrite the input"):
        FileSink(other, probe(src), 64, 48, audio_from=str(other))


def test_unwritable_folder_fails_at_construction(tmp_path):
    src = make_video(tmp_path / "in.mp4", frames=2, audio=False)
    if os.name == "posix" and os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
    elif sys.platform.startswith("linux") and os.path.isdir("/sys"):
        folder = Path("/sys")  # root ignores permission bits, but not sysfs
    else:
        pytest.skip("no folder this user cannot write to")
    try:
        with pytest.raises(OutputError, match="cannot write"):
            FileSink(folder / "out.mp4", probe(src), 64, 48)
    finally:
        if folder.is_relative_to(tmp_path):
            folder.chmod(0o700)  # so that pytest can remove tmp_path
