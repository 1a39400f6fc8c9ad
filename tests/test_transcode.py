"""transcode() end to end with the real TensorFlow engine on tiny clips from tests/media.py.

Every frame, its timestamp and the audio must survive; failures and cancellation
must leave neither an output nor a temp file, and no thread behind.
"""
from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import pytest

import vidstyle.pipeline.stylizer
from vidstyle.engines.base import RunsNow
from media import make_video, read_video
from vidstyle.errors import Cancelled, PipelineError
from vidstyle.io import probe
from vidstyle.offline import TranscodeConfig, transcode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CLIP_FRAMES = 10  # the conftest clip: batches of 4, 4 and a short 2
AAC_FRAME = 1024 / 44100  # one AAC frame, the tolerance on audio length
WAIT = 30  # seconds an event may take before the test gives up (a hang, not a timing)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def chroma(frames: np.ndarray) -> np.ndarray:
    """The Cr and Cb planes of a stack of RGB frames."""
    return np.stack([cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)[..., 1:] for rgb in frames]).astype(int)


def files_in(folder) -> list[str]:
    return sorted(os.listdir(folder))


def must_wait(event: threading.Event) -> None:
    assert event.wait(WAIT), "the transcode never reached the expected state"


class EngineSpy(RunsNow):
    """Stands in for the engine transcode() creates: runs the real one, records each
    batch's shape, and raises on batch number ``fail_on_batch`` (counting from 1)."""

    def __init__(self, monkeypatch):
        self.fail_on_batch: int | None = None
        self.shapes: list[tuple[int, ...]] = []
        # stylize imported engines.create under its own name: that name is the seam.
        real_create = vidstyle.pipeline.stylizer.create_engine

        def create(name, model, threads=0, precision="auto"):
            self.engine = real_create(name, model, threads=threads, precision=precision)
            self.name, self.model = self.engine.name, self.engine.model
            return self

        monkeypatch.setattr(vidstyle.pipeline.stylizer, "create_engine", create)

    def run(self, batch, style):
        self.shapes.append(batch.shape)
        if len(self.shapes) == self.fail_on_batch:
            raise RuntimeError("device lost")
        return self.engine.run(batch, style)

    def close(self):
        self.engine.close()


@pytest.fixture
def spy(monkeypatch):
    return EngineSpy(monkeypatch)


@pytest.fixture(scope="module")
def plain(clip, tmp_path_factory):
    """The session clip stylized with style 7 and every default; threads counted around it."""
    before = threading.active_count()
    result = transcode(TranscodeConfig(clip, tmp_path_factory.mktemp("plain") / "out.mp4"))
    return result, before, threading.active_count()


def check_timing_and_audio(src, dst):
    a, b = read_video(src), read_video(dst)
    assert len(b.frames) == len(a.frames)
    assert b.times == a.times  # exact: every frame kept its source pts, VFR included
    assert abs(probe(dst).duration - probe(src).duration) <= 1 / 25
    assert b.audio_codec == "aac"
    assert abs(b.audio_duration - a.audio_duration) <= AAC_FRAME
    assert abs(b.audio_end - a.audio_end) <= AAC_FRAME
    return a, b


# --- what comes out ------------------------------------------------------------------------


def test_every_frame_timestamp_and_the_audio_survive(clip, plain):
    result = plain[0]
    assert result.frames == CLIP_FRAMES and result.stats.stages["encode"].items == CLIP_FRAMES
    _, out = check_timing_and_audio(clip, result.output)
    assert (out.width, out.height, out.codec) == (64, 48, "h264")


def test_variable_frame_rate_timestamps_survive(tmp_path):
    src = make_video(tmp_path / "vfr.mp4", frames=CLIP_FRAMES, vfr=True)
    transcode(TranscodeConfig(src, tmp_path / "out.mp4"))
    a, _ = check_timing_and_audio(src, tmp_path / "out.mp4")
    assert len(set(np.diff(a.pts))) > 2  # the source really is irregular


def test_the_output_is_stylized(clip, plain):
    a, b = read_video(clip), read_video(plain[0].output)
    # An encode round trip alone stays under 5 (tests/test_io.py); style 7 moves every frame far.
    assert min(mean_error(x, y) for x, y in zip(a.frames, b.frames)) > 30


def test_threads_return_to_the_start_after_success(plain):
    _, before, after = plain
    assert after == before


def test_an_odd_size_round_trips_at_the_even_size(tmp_path):
    src = make_video(tmp_path / "odd.mkv", size=(33, 17), pix_fmt="yuv444p", frames=6)
    transcode(TranscodeConfig(src, tmp_path / "out.mp4"))
    a, b = read_video(src), read_video(tmp_path / "out.mp4")
    assert (b.width, b.height) == (34, 18)  # yuv420p needs whole 2x2 chroma blocks
    assert len(b.frames) == 6 and b.times == a.times
    assert min(mean_error(x, y[:17, :33]) for x, y in zip(a.frames, b.frames)) > 30


def test_a_smaller_processing_size_still_gives_the_source_size(clip, tmp_path, spy):
    result = transcode(TranscodeConfig(clip, tmp_path / "out.mp4", size=32))
    out = read_video(result.output)
    assert set(spy.shapes) == {(4, 24, 32, 3)}  # the network really ran at 32x24
    assert (out.width, out.height, len(out.frames)) == (64, 48, CLIP_FRAMES)
    assert all(frame.shape == (48, 64, 3) for frame in out.frames)


def test_preserve_color_keeps_the_input_chroma(clip, plain, tmp_path):
    transcode(TranscodeConfig(clip, tmp_path / "out.mp4", preserve_color=True))
    a, kept, free = (np.stack(read_video(p).frames) for p in (clip, tmp_path / "out.mp4", plain[0].output))
    kept_error = np.abs(chroma(kept) - chroma(a))
    free_error = np.abs(chroma(free) - chroma(a))
    # Stylized luminance under the clip's saturated colours leaves the RGB gamut on some
    # pixels (clipped there even before encoding), so judge the typical pixel.
    assert np.median(kept_error) <= 6 and np.median(free_error) > 25
    assert kept_error.mean() < free_error.mean() / 3
    assert mean_error(kept, a) > 20  # the luminance is still stylized


def test_strength_zero_of_a_builtin_style_gives_back_the_input(clip, tmp_path):
    transcode(TranscodeConfig(clip, tmp_path / "out.mp4", style="7", strength=0.0))
    a, b = read_video(clip), read_video(tmp_path / "out.mp4")
    assert len(b.frames) == CLIP_FRAMES
    assert max(mean_error(x, y) for x, y in zip(a.frames, b.frames)) < 6  # the encoder's loss only


# --- failure and cancellation --------------------------------------------------------------


def test_an_engine_error_mid_stream_leaves_nothing_behind(clip_copy, spy, threads):
    spy.fail_on_batch = 3
    with pytest.raises(PipelineError) as caught:
        transcode(TranscodeConfig(clip_copy, clip_copy.parent / "out.mp4", batch=4))
    assert (caught.value.stage, caught.value.frame_index) == ("engine", 8)  # batches 0-3, 4-7, 8-9
    assert str(caught.value) == "engine failed at frame 8: device lost"
    assert len(spy.shapes) == 3
    assert files_in(clip_copy.parent) == ["in.mp4"]  # no output, no .partial temp file
    threads.assert_back_to_start()


def test_cancel_from_the_progress_callback_leaves_nothing_behind(clip_copy, threads):
    pipelines, progress = [], []

    def on_progress(done, total):
        progress.append((done, total))
        if done == 5:
            pipelines[0].cancel()

    with pytest.raises(Cancelled):
        transcode(TranscodeConfig(clip_copy, clip_copy.parent / "out.mp4"),
                  progress=on_progress, on_pipeline=pipelines.append)
    assert progress == [(n, CLIP_FRAMES) for n in range(1, 6)]
    assert files_in(clip_copy.parent) == ["in.mp4"]
    threads.assert_back_to_start()


def test_cancel_from_another_thread_leaves_nothing_behind(clip_copy, threads):
    pipelines = []
    reached, cancelled = threading.Event(), threading.Event()

    def on_progress(done, total):
        if done == 5:  # hold the encoder here until the cancel has happened
            reached.set()
            must_wait(cancelled)

    def cancel():
        must_wait(reached)
        pipelines[0].cancel()
        cancelled.set()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        with pytest.raises(Cancelled):
            transcode(TranscodeConfig(clip_copy, clip_copy.parent / "out.mp4"),
                      progress=on_progress, on_pipeline=pipelines.append)
    finally:
        canceller.join(WAIT)
    assert files_in(clip_copy.parent) == ["in.mp4"]
    threads.assert_back_to_start()


class QueueingSpy(EngineSpy):
    """An engine that queues work, as tensorrt does on a GPU: submit() returns pending
    batches that compute only when collected. Records the order of both."""

    def __init__(self, monkeypatch):
        super().__init__(monkeypatch)
        self.queues = True
        self.events: list[tuple[str, int]] = []

    def submit(self, batch, style):
        k = len(self.shapes)
        self.shapes.append(batch.shape)
        self.events.append(("submit", k))
        spy = self

        class Pending:
            def result(self):
                spy.events.append(("collect", k))
                return spy.engine.run(batch, style)

        return [Pending()]


def test_a_queueing_engine_gets_the_next_batch_before_the_last_is_collected(clip, plain, tmp_path, monkeypatch):
    spy = QueueingSpy(monkeypatch)
    result = transcode(TranscodeConfig(clip, tmp_path / "out.mp4"))
    batches = len(spy.shapes)
    assert batches == 3  # 10 frames, batches of 4
    # batch k+1 is queued while k is still on the device; the last is collected at the end
    assert spy.events == [("submit", 0), ("submit", 1), ("collect", 0), ("submit", 2), ("collect", 1), ("collect", 2)]
    assert np.array_equal(np.stack(read_video(result.output).frames), np.stack(read_video(plain[0].output).frames))
