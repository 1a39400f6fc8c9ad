"""Live scheduling on a paced synthetic camera: order, drops, bounded latency, clean ends."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vidstyle.engines.base import RunsNow
from vidstyle.errors import PipelineError
from vidstyle.frame import Frame
from vidstyle.io.camera import CameraSource
from vidstyle.io.feed import Latest
from vidstyle.io.paced import PacedSource, moving_pictures
from vidstyle.pipeline.scheduler import run_live
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.processing import geometry, styles, temporal


class SlowEngine(RunsNow):
    """Stands in for inference: inverts the picture after ``delay`` seconds; fails on request."""

    name, model = "fake", "multistyle26"

    def __init__(self, delay: float, fail_after: int | None = None):
        self.delay, self.fail_after, self.calls = delay, fail_after, 0

    def run(self, batch, style):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("device lost")
        time.sleep(self.delay)
        return 255 - batch


def live(source, engine, present, mode="flow", size=(64, 48), **options):
    """``source`` through the live scheduler, the stages at one fixed size, smoothing at the output."""
    stylizer = Stylizer(styles.parse("7"), engine=engine)
    return run_live(source, stylizer, geometry.plan(*size), temporal.create(mode), present, smooth_at="output",
                    **options)


def source(rate, count, size=(64, 48)):
    return PacedSource(moving_pictures(*size), rate=rate, loop=True, count=count)


def test_the_mailbox_keeps_the_newest_and_counts_the_rest():
    box = Latest()
    for i in range(3):
        box.put(Frame(i, i, None, np.zeros((2, 2, 3), np.uint8)))
    assert box.take().index == 2 and box.overwritten == 2
    assert box.take(timeout=0.01) is None
    box.close()
    with pytest.raises(EOFError):
        box.take()


def test_a_fast_engine_gets_every_frame_in_order(threads):
    shown = []
    # 100 ms between frames: a loaded machine still takes each one before the next replaces it
    stats = live(source(rate=10, count=20), SlowEngine(0.0), lambda f: shown.append(f))
    assert [f.index for f in shown] == list(range(20))
    assert stats.delivered == 20 and stats.drop_rate == 0
    assert np.array_equal(shown[0].image, 255 - moving_pictures(64, 48)().__next__())  # the "stylized" frame
    threads.assert_back_to_start()


def test_a_slow_engine_drops_frames_and_latency_stays_bounded(threads):
    shown = []
    stats = live(source(rate=60, count=60), SlowEngine(0.05), lambda f: shown.append(f.index),
                          max_age=0.25)
    assert stats.dropped_source + stats.dropped_stale > 20  # ~20 fps of work for a 60 fps camera
    assert stats.delivered + stats.dropped_source + stats.dropped_stale == 60
    assert shown == sorted(shown)  # order survives dropping
    # bounded by the in-flight limit, not by how far behind the camera the engine fell
    assert max(stats.latencies) < 1.0
    threads.assert_back_to_start()


def test_an_engine_failure_ends_the_stream_with_the_error(threads):
    with pytest.raises(PipelineError, match="device lost"):
        live(source(rate=30, count=None), SlowEngine(0.0, fail_after=5), lambda f: None)
    threads.assert_back_to_start()


def test_a_camera_that_stops_ends_the_run_cleanly(threads):
    stats = live(source(rate=50, count=7), SlowEngine(0.0), lambda f: None, mode="off")
    assert stats.captured == 7
    threads.assert_back_to_start()


def test_cancel_from_another_thread_stops_a_camera_that_never_ends(threads):
    started = threading.Event()
    ref = []
    timer = threading.Timer(0.5, lambda: ref[0].cancel())
    timer.start()
    stats = live(source(rate=30, count=None), SlowEngine(0.0), lambda f: started.set(),
                          on_pipeline=ref.append)
    assert started.is_set() and stats.stopped and stats.delivered > 0
    timer.join()
    threads.assert_back_to_start()


class FlakyCapture:
    """A cv2.VideoCapture stand-in: ``frames`` good reads, then the device vanishes."""

    def __init__(self, frames: int):
        self.left = frames

    def get(self, prop):
        return 30.0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        time.sleep(0.01)
        return True, np.full((48, 64, 3), 50 + self.left, np.uint8)

    def release(self):
        pass


def test_a_camera_that_vanishes_is_retried_then_ends_cleanly(threads):
    opens = []

    def open_capture(spec):
        opens.append(spec)
        return FlakyCapture(5) if len(opens) == 1 else None  # gone after the first session

    camera = CameraSource("0", retries=2, backoff=0.01, open_capture=open_capture)
    stats = live(camera, SlowEngine(0.0), lambda f: None)
    assert len(opens) == 3  # the first open, then two reconnect attempts
    assert camera.gone == "camera 0 is gone (2 attempt(s) to reopen it failed)"
    assert stats.delivered >= 1 and stats.captured == 5
    threads.assert_back_to_start()


def test_a_missing_camera_is_one_clear_line(capsys):
    from vidstyle.apps.cli import main

    assert main(["bench", "--mode", "live", "--camera", "/dev/video-none", "--no-peak", "--frames", "4"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "vidstyle: error: cannot open camera /dev/video-none"


def test_a_file_opened_as_a_camera_plays_through_opencv(tmp_path, threads):
    from media import make_video

    clip = make_video(tmp_path / "cam.mp4", frames=12, size=(64, 48), audio=False)
    camera = CameraSource(str(clip))
    stats = live(camera, SlowEngine(0.0), lambda f: None)
    assert stats.captured == 12 and camera.gone is None  # a file ends; it is not a lost camera
    threads.assert_back_to_start()


@pytest.mark.slow
def test_vidstyle_live_on_a_file_camera_reports_its_stats(tmp_path, capsys, threads):
    import json

    from media import make_video
    from vidstyle.apps.cli import main

    clip = make_video(tmp_path / "cam.mp4", frames=20, size=(64, 48), audio=False)
    out = tmp_path / "stats.json"
    assert main(["live", "--camera", str(clip), "--stats-json", str(out)]) == 0
    stats = json.loads(out.read_text())
    assert stats["delivered"] + stats["dropped_source"] + stats["dropped_stale"] == 20
    assert stats["delivered"] > 0 and stats["latency_ms"]["p50"] > 0 and not stats["stopped"]
    assert "frames," in capsys.readouterr().out
    threads.assert_back_to_start()


def test_live_outputs_that_cannot_start_are_one_line_errors(capsys, monkeypatch):
    from vidstyle.apps.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["live", "--camera", "synthetic", "--window"]) == 1
    assert "--window needs a display" in capsys.readouterr().err
    assert main(["live", "--camera", "/dev/video-none"]) == 1
    assert capsys.readouterr().err.strip().endswith("vidstyle: error: cannot open camera /dev/video-none")


def test_a_style_switch_takes_effect_on_the_next_batch():
    seen = []

    class Recorder(SlowEngine):
        def run(self, batch, style):
            seen.append(np.argmax(style))
            return batch

    stylizer = Stylizer(styles.parse("3"), engine=Recorder(0.0))
    batch = np.zeros((1, 8, 8, 3), np.uint8)
    stylizer.run(batch)
    stylizer.switch(styles.parse("12"))
    stylizer.run(batch)
    assert seen == [3, 12]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_ctrl_c_ends_a_live_run_like_a_time_limit(tmp_path, signum):
    """Ctrl-C is how people quit a live filter: the run ends with its figures, the stats file
    and the recording, exit 0; nothing is left running."""
    import json
    import signal

    from test_reliability import Process

    stats, rec = tmp_path / "stats.json", tmp_path / "rec.mp4"
    run = Process(["live", "--camera", "synthetic", "--size", "64", "--stats-json", stats, "--record", rec], tmp_path)
    run.wait_for(lambda out, err: "camera 640x480" in out)
    time.sleep(1.5)  # some frames delivered
    run.stop(getattr(signal, signum))
    code, out, err = run.finish()
    assert code == 0, err
    assert "frames," in out and "fps" in out and err.strip() == ""
    figures = json.loads(stats.read_text())
    assert figures["stopped"] and figures["delivered"] > 0
    assert rec.stat().st_size > 0 and not list(tmp_path.glob(".rec.partial-*"))
    assert run.survivors() == []


def test_a_second_ctrl_c_ends_a_live_run_at_once_and_keeps_no_half_recording(tmp_path):
    import signal

    from test_reliability import Process

    rec = tmp_path / "rec.mp4"
    # The run is kept from ending by itself: the first signal finds its camera stalled.
    prelude = ("import sys, time\nfrom vidstyle.io import paced\nslow = paced.PacedSource.produce\n"
               "paced.PacedSource.produce = lambda self, put, stop: (slow(self, put, stop), time.sleep(3600))")
    run = Process(["live", "--camera", "synthetic", "--size", "64", "--record", rec], tmp_path, prelude=prelude)
    run.wait_for(lambda out, err: "camera 640x480" in out)
    time.sleep(1.0)
    run.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert run.stop(signal.SIGINT) < 5
    code, out, err = run.finish()
    assert code == 128 + signal.SIGINT and "interrupted again" in err
    assert list(tmp_path.iterdir()) == []  # the recording's temp file is gone, nothing published


def test_the_virtual_camera_sends_each_frame_through_pyvirtualcam(monkeypatch):
    """Through pyvirtualcam's own backend registry: the frames arrive as pyvirtualcam hands
    them to a device (no v4l2loopback can be loaded on a test machine)."""
    pyvirtualcam = pytest.importorskip("pyvirtualcam")
    from vidstyle.io.display import VirtualCamera

    got = []

    class Device:  # what pyvirtualcam calls a backend: a v4l2loopback or OBS stand-in
        def __init__(self, *, width, height, fps, fourcc, device, **kw):
            self.size, self.fourcc = (width, height), fourcc

        def device(self):
            return "stand-in"

        def native_fourcc(self):
            return None

        def send(self, frame):
            got.append(frame.copy())

        def close(self):
            got.append("closed")

    import pyvirtualcam.camera

    monkeypatch.setattr(pyvirtualcam.camera, "BACKENDS", dict(pyvirtualcam.camera.BACKENDS))  # left as found
    pyvirtualcam.register_backend("vidstyle-test", Device)
    camera = VirtualCamera(64, 48, 30, backend="vidstyle-test")
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    for i in range(3):
        camera(Frame(i, i, None, image))
    camera.close()
    assert len(got) == 4 and got[-1] == "closed"
    assert all(np.array_equal(np.reshape(g, image.shape), image) for g in got[:3])  # RGB, as given


def test_without_a_virtual_camera_device_the_error_is_one_line():
    pytest.importorskip("pyvirtualcam")
    import os

    from vidstyle.errors import VidstyleError
    from vidstyle.io.display import VirtualCamera

    if any(name.startswith("video") for name in os.listdir("/dev")):
        pytest.skip("this machine has video devices; the refusal needs a machine without")
    with pytest.raises(VidstyleError, match="^--virtual-cam: ") as caught:
        VirtualCamera(64, 48, 30)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("platform, environ, opens", [
    ("darwin", {}, True), ("win32", {}, True), ("linux", {}, False),
    ("linux", {"DISPLAY": ":0"}, True), ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, True)])
def test_a_window_needs_a_display_variable_only_where_x11_or_wayland_draw_it(platform, environ, opens):
    from vidstyle.io.display import has_display

    assert has_display(platform, environ) is opens
