"""Live scheduling: latency first, the newest frame wins, stale frames are dropped and counted.

A camera delivers frames at its own pace whether anyone reads them or not. The
source thread writes each one into a one-slot mailbox (:class:`Latest`),
overwriting a frame nobody took yet (counted as dropped at the source), so the
pipeline always starts on the newest picture. A frame that has nonetheless
grown older than ``max_age`` by the time inference could start is dropped
there (counted as stale) rather than making every later frame late too. With
more than one frame in flight the batcher works to a deadline: it waits for
another frame only while the oldest can still make half of ``max_age``. The
rest is the offline stage list (:func:`vidstyle.transcode.stylize_stages`),
temporal smoothing included: a dropped frame restarts its history.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import numpy as np

from .frame import Frame
from .errors import Cancelled
from .pipeline import Pipeline, Stage
from .transcode import batcher


class Latest:
    """A one-slot mailbox: ``put`` replaces an untaken frame, ``take`` waits for a new one."""

    def __init__(self):
        self._frame: Frame | None = None
        self._closed = False
        self._cond = threading.Condition()
        self.overwritten = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.overwritten += 1
            self._frame = frame
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float = 0.05) -> Frame | None:
        """The newest frame, or None after ``timeout``; raises EOFError once closed and empty."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            if frame is None and self._closed:
                raise EOFError
            return frame


class PacedSource:
    """Frames at ``rate`` per second in real time, like a camera: a file or synthetic pictures.

    ``pictures`` is called for a fresh iterator of RGB frames (again on each
    loop when ``loop``); ``count`` stops after that many frames.
    """

    def __init__(self, pictures: Callable[[], Iterable[np.ndarray]], rate: float, loop: bool = False,
                 count: int | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.pictures, self.rate, self.loop, self.count = pictures, rate, loop, count
        self._time_base = 1 / Fraction(rate).limit_denominator(1001)

    def run(self, mailbox: Latest, stop: threading.Event) -> None:
        start, index = time.monotonic(), 0
        try:
            while not stop.is_set() and (self.count is None or index < self.count):
                produced = False
                for image in self.pictures():
                    produced = True
                    due = start + index / self.rate
                    if stop.wait(max(0.0, due - time.monotonic())) or (self.count is not None and index >= self.count):
                        return
                    mailbox.put(Frame(index, index, self._time_base, image, time.monotonic()))
                    index += 1
                if not (self.loop and produced):
                    return
        finally:
            mailbox.close()


def moving_pictures(width: int, height: int) -> Callable[[], Iterator[np.ndarray]]:
    """Drifting texture with a moving block: optical flow and the encoder get real work.

    Each call of the returned function starts the same endless sequence; the
    texture is made once, each frame is a slice of it plus the block.
    """
    import cv2

    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (height + 64, width + 64, 3), dtype=np.uint8), (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    side = max(4, min(width, height) // 5)

    def pictures() -> Iterator[np.ndarray]:
        for t in itertools.count():
            image = texture[t % 64: t % 64 + height, (2 * t) % 64: (2 * t) % 64 + width].copy()
            x = (5 * t) % max(1, width - side)
            image[height // 3: height // 3 + side, x: x + side] = (230, 40, 40)
            yield image

    return pictures


@dataclass
class LiveStats:
    wall: float = 0.0
    delivered: int = 0
    dropped_source: int = 0  # overwritten in the mailbox before the pipeline took them
    dropped_stale: int = 0  # older than max_age when inference could start
    latencies: list[float] = field(default_factory=list)  # capture -> presented, seconds
    stages: dict = field(default_factory=dict)
    stopped: bool = False  # cancelled (a quit key, a time limit, SIGTERM) rather than the camera ending

    @property
    def fps(self) -> float:
        return self.delivered / self.wall if self.wall else 0.0

    @property
    def captured(self) -> int:
        return self.delivered + self.dropped_source + self.dropped_stale

    @property
    def drop_rate(self) -> float:
        return (self.dropped_source + self.dropped_stale) / self.captured if self.captured else 0.0


def run_live(source: PacedSource, stages: list[Stage], present: Callable[[Frame], None],
             max_age: float = 0.25, in_flight: int = 1,
             on_pipeline: Callable[[Pipeline], None] | None = None, sizing=None) -> LiveStats:
    """Run ``stages`` (from stylize_stages) on a live source; ``present`` shows each frame.

    ``sizing`` (the :mod:`vidstyle.adapt` sizing the stages were built
    with) is told each frame's service time, from leaving the mailbox to being
    presented, so the processing size follows what the machine can do.

    At most ``in_flight`` frames are between the mailbox and the screen: a new
    frame is taken only when one leaves, so frames wait (and are replaced) in
    the mailbox instead of queueing up behind inference. One (a batch's worth)
    is the latency-first choice: on 2 CPU cores, two in flight delivered the
    same frame rate at twice the latency.
    """
    mailbox, stop, stats = Latest(), threading.Event(), LiveStats()
    slots = threading.Semaphore(in_flight)
    taken: dict[int, float] = {}  # frame index -> when it left the mailbox
    pipeline: Pipeline | None = None
    feeder = threading.Thread(target=source.run, args=(mailbox, stop), name="vidstyle-camera", daemon=True)

    def frames() -> Iterator[Frame]:
        while True:
            while not slots.acquire(timeout=0.05):
                if stop.is_set() or pipeline.stopping:
                    return
            frame = None
            while frame is None:
                try:
                    frame = mailbox.take()
                except EOFError:
                    return
            taken[frame.index] = time.monotonic()
            yield frame

    def fresh(batch):
        now = time.monotonic()
        kept = []
        for w in batch:
            if now - w.frame.captured <= max_age:
                kept.append(w)
                continue
            stats.dropped_stale += 1
            taken.pop(w.index, None)
            slots.release()
        return (kept,) if kept else ()

    def show(frame: Frame):
        present(frame)
        stats.delivered += 1
        started = taken.pop(frame.index, None)
        if sizing is not None and started is not None:
            sizing.record((time.monotonic() - started) / in_flight)
        slots.release()
        return ()

    interval = 1.0 / (getattr(source, "rate", None) or 30.0)

    def due(pending) -> bool:
        # Wait for one more frame only if it would come while the oldest can still make half its deadline.
        return time.monotonic() + interval - pending[0].frame.captured > max_age / 2

    stages = [Stage("batch", *batcher(in_flight, due)) if s.name == "batch" else s for s in stages]
    # Staleness is judged just before inference, the step a late frame would make everyone wait for.
    at = next(i for i, s in enumerate(stages) if s.name == "engine")
    pipeline = Pipeline(frames, stages[:at] + [Stage("fresh", fresh)] + stages[at:] + [Stage("present", show)],
                        queue_size=1, source_name="capture")
    if on_pipeline:
        on_pipeline(pipeline)
    feeder.start()
    try:
        run = pipeline.run()
    except Cancelled:  # a stop (quit key, time limit, SIGTERM) is how a live run normally ends
        run = pipeline.stats
        stats.stopped = True
    finally:
        stop.set()
        mailbox.close()
        feeder.join(timeout=5.0)
    stats.wall, stats.stages, stats.latencies = run.wall, run.stages, run.latencies
    stats.dropped_source = mailbox.overwritten
    return stats


class CameraSource:
    """A camera through OpenCV: ``0`` / ``/dev/video2`` / a URL / a file, newest frame first.

    The driver buffer is asked to hold one frame so a slow reader sees the
    present, not the past. When a read fails the device is reopened, with
    backoff doubling from ``backoff`` seconds; after ``retries`` failed opens in
    a row the run ends and ``gone`` says why.
    """

    def __init__(self, spec: str, retries: int = 3, backoff: float = 0.5, loop: bool = False,
                 count: int | None = None, open_capture=None):
        from pathlib import Path

        self.spec = spec
        self.loop, self.count = loop, count
        self.is_file = Path(spec).is_file()  # a file ends (or loops); a device or stream is reconnected
        self.retries, self.backoff = retries, backoff
        self._open = open_capture or _open_capture
        self.gone: str | None = None
        self.rate: float | None = None

    def run(self, mailbox: Latest, stop: threading.Event) -> None:
        index, attempt = 0, 0
        capture = None
        try:
            while not stop.is_set() and (self.count is None or index < self.count):
                if capture is None:
                    capture = self._open(self.spec)
                    if capture is None:
                        attempt += 1
                        if attempt >= max(1, self.retries):
                            self.gone = (f"cannot open camera {self.spec}" if index == 0 else
                                         f"camera {self.spec} is gone ({attempt} attempt(s) to reopen it failed)")
                            return
                        stop.wait(self.backoff * 2 ** (attempt - 1))
                        continue
                    fps = capture.get(_cv2().CAP_PROP_FPS)
                    self.rate = fps if fps and fps > 0 else self.rate
                ok, bgr = capture.read()
                if not ok:
                    capture.release()
                    capture = None
                    if self.is_file and not self.loop:
                        return
                    continue
                attempt = 0
                rgb = _cv2().cvtColor(bgr, _cv2().COLOR_BGR2RGB)
                mailbox.put(Frame(index, None, None, rgb, time.monotonic()))
                index += 1
        finally:
            if capture is not None:
                capture.release()
            mailbox.close()


def _cv2():
    import cv2

    return cv2


def camera_format(spec: str) -> tuple[int, int, float]:
    """Width, height and frame rate a camera delivers; a one-line error if it cannot be opened."""
    capture = _open_capture(spec)
    if capture is None:
        from .errors import VidstyleError

        raise VidstyleError(f"cannot open camera {spec}")
    cv2 = _cv2()
    try:
        return (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                capture.get(cv2.CAP_PROP_FPS) or 30.0)
    finally:
        capture.release()


def _open_capture(spec: str):
    """An opened cv2.VideoCapture for ``spec`` (a digit is a device index), or None."""
    cv2 = _cv2()
    # OpenCV prints a page of backend warnings for a missing device; the caller says it in one line.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    capture = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
    if not capture.isOpened():
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # not every backend honours it; the mailbox still keeps the newest
    return capture
