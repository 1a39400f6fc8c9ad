"""Live processing size: calibrated on the engine, then following the measured service time."""
from __future__ import annotations

import numpy as np
import pytest

from vidstyle.engines.base import RunsNow
from vidstyle.frame import Frame
from vidstyle.io.paced import PacedSource, moving_pictures
from vidstyle.pipeline import sizing as adapt
from vidstyle.pipeline.runner import Pipeline, Stage
from vidstyle.pipeline.scheduler import run_live
from vidstyle.pipeline.stages import stylize_stages
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.processing import geometry, styles, temporal


class Clock:
    """A fake perf_counter: ``run`` advances it by a cost proportional to the pixels it was given."""

    def __init__(self, seconds_per_pixel: float):
        self.now, self.rate, self.shapes = 0.0, seconds_per_pixel, []

    def __call__(self) -> float:
        return self.now

    def run(self, batch: np.ndarray) -> None:
        self.shapes.append(batch.shape)
        self.now += self.rate * batch.shape[0] * batch.shape[1] * batch.shape[2]


def test_calibration_starts_at_the_largest_size_that_fits(monkeypatch):
    clock = Clock(30e-3 / (320 * 240))  # 30 ms at 320x240: the frame interval at 30 fps is 33 ms
    monkeypatch.setattr(adapt.time, "perf_counter", clock)
    sizing = adapt.Adaptive(640, 480, rate=30)
    sizing.calibrate(clock.run)
    # 0.7 of 33 ms fits ~23 ms: 288x216 (~27 ms) does not, 256x192 (~19 ms) does
    assert (sizing.current.proc_w, sizing.current.proc_h) == (256, 192)
    # traced from the smallest up, stopping past the first rung slower than the whole interval
    traced = {s[1:3] for s in clock.shapes}
    assert (96, 128) in traced and (240, 320) in traced and (480, 640) not in traced
    assert max(max(g.proc_w, g.proc_h) for g in sizing.rungs) == 352  # the ladder ends there


def sized(start: int, rate: float = 30) -> adapt.Adaptive:
    sizing = adapt.Adaptive(640, 480, rate)
    sizing.index = [max(g.proc_w, g.proc_h) for g in sizing.rungs].index(start)
    return sizing


def test_a_slow_loop_steps_down_one_rung_after_settling():
    sizing = sized(320)
    for _ in range(adapt.SETTLE - 1):
        sizing.record(0.040)  # longer than the 33 ms interval
    assert sizing.side == 320  # not before SETTLE frames were seen at this rung
    sizing.record(0.040)
    assert sizing.side == 288
    for _ in range(adapt.SETTLE):
        sizing.record(0.040)
    assert sizing.side == 256


def test_a_fast_loop_steps_up_and_a_fitting_one_stays():
    sizing = sized(256)
    for _ in range(adapt.SETTLE):
        sizing.record(0.010)  # 288x216 would take ~13 ms: well inside the interval
    assert sizing.side == 288
    steady = sized(256)
    for _ in range(5 * adapt.SETTLE):
        steady.record(0.025)  # fits (under 95%), but the next rung up (~32 ms) would not leave slack
    assert steady.side == 256 and [side for _, side in steady.changes] == []


class PixelEngine(RunsNow):
    """Inference that takes time in proportion to the pixels, like the real one; inverts the picture."""

    name, model = "fake", "multistyle26"

    def __init__(self, seconds_at_vga: float):
        self.rate = seconds_at_vga / (640 * 480)
        self.sides = []

    def run(self, batch, style):
        import time

        self.sides.append(max(batch.shape[1:3]))
        time.sleep(self.rate * batch.shape[1] * batch.shape[2])
        return 255 - batch


@pytest.mark.timeout(60)
def test_a_live_run_settles_at_a_size_that_keeps_up(threads):
    engine = PixelEngine(0.12)  # 120 ms at 640x480 against a 30 fps camera
    stylizer = Stylizer(styles.parse("7"), engine=engine)
    sizing = adapt.Adaptive(640, 480, rate=30)
    sizing.index = 0  # start too large, uncalibrated, so the run has to find its size
    shown = []
    source = PacedSource(moving_pictures(640, 480), rate=30, count=150)
    stats = run_live(source, stylizer, sizing, temporal.create("off"), lambda f: shown.append(f.image.shape))
    assert sizing.side < 640 and len(sizing.changes) > 1
    assert engine.sides[-1] == sizing.side  # the frames really were prepared at the new size
    assert set(shown) == {(480, 640, 3)}  # the output keeps the camera's size throughout
    assert stats.delivered > 0
    threads.assert_back_to_start()


@pytest.mark.slow
def test_smoothing_at_the_processing_size_is_flow_on_the_small_frames(threads):
    """smooth_at="processing": flow and blend on the network-size pictures, then scaled up."""
    from media import draw_frame

    inputs = [draw_frame(i, 128, 96) for i in range(7)]
    stylizer = Stylizer(styles.parse("7"))
    geom = geometry.plan(128, 96, 64)

    def run(mode):
        got = []
        stages = stylize_stages(stylizer, geom, 1, temporal.create(mode, 0.9), smooth_at="processing")
        stages.append(Stage("collect", lambda f: got.append(f.image) or ()))
        Pipeline(lambda: (Frame(i, i, None, f) for i, f in enumerate(inputs)), stages).run()
        return got

    plain = run("off")
    small_out = [geometry.crop(stylizer.run(geometry.prepare(f, geom)[None])[0], geom) for f in inputs]
    small_in = [geometry.shrink(f, geom) for f in inputs]
    expected = [geometry.grow(o, geom) for o in temporal.smooth(small_in, small_out, temporal.create("flow", 0.9))]
    for a, b in zip(run("flow"), expected, strict=True):
        assert a.shape == (96, 128, 3)
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(expected, plain))
    threads.assert_back_to_start()


def test_with_frames_in_flight_the_batcher_keeps_to_the_deadline(threads):
    from test_live import SlowEngine, live

    def batches(rate, max_age):
        stats = live(PacedSource(moving_pictures(64, 48), rate=rate, count=12), SlowEngine(0.0), lambda f: None,
                     mode="off", max_age=max_age, in_flight=2)
        return stats.stages["engine"].items, stats.delivered

    # a 50 fps camera, 1 s deadline: the second frame comes in time, so frames go in pairs
    # (a frame the loaded machine took too long to pick up may be replaced, never queued)
    items, delivered = batches(50, 1.0)
    assert delivered >= 6 and items <= delivered // 2 + 1
    # a 5 fps camera: waiting 200 ms for a partner would break the 150 ms half-deadline, so one by one
    items, delivered = batches(5, 0.3)
    assert items == delivered >= 10
    threads.assert_back_to_start()
