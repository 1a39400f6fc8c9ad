"""One browser viewer of ``vidstyle live --serve``: its frames, its pipeline, its stylized track.

Nothing here is shared between viewers except the engine (one per model and settings
per process, see :func:`vidstyle.engines.create`): each viewer has its own mailbox,
stylizer, sizing, temporal history and threads, so frames from two browsers cannot meet.

Threads: aiortc decodes on its own thread and queues decoded frames on the event loop
without bound, so :meth:`Viewer.receive` drains the remote track continuously into a
one-slot mailbox (the newest frame wins). A worker thread, started once the connection is
up, runs the live scheduler (:func:`vidstyle.pipeline.scheduler.run_live`) on that mailbox
and hands each stylized frame back to the loop, where :class:`StylizedTrack` gives the
newest one to aiortc's encoder. A style change or a new camera size ends the viewer's
pipeline and starts another.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterator

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from vidstyle.errors import VidstyleError
from vidstyle.frame import Frame
from vidstyle.io.feed import Latest
from vidstyle.pipeline.meter import Meter
from vidstyle.pipeline.keyframes import fill_sizing, key_geometry, live_flow
from vidstyle.pipeline.scheduler import run_live
from vidstyle.processing.reuse import LIVE_DEFAULT
from vidstyle.pipeline.sizing import Adaptive, Fixed, for_camera
from vidstyle.pipeline.stylizer import Stylizer, StylizeSettings
from vidstyle.processing.styles import Style

log = logging.getLogger("vidstyle.serve")

VIDEO_CLOCK = Fraction(1, 90000)  # the RTP clock rate of every video codec
STATS_EVERY = 0.5  # seconds between stats messages to the page
CAMERA_RATE = 30.0  # what a browser camera delivers; the adaptive size aims to keep up with it


@dataclass(frozen=True, kw_only=True)
class ViewerSettings(StylizeSettings):
    """How every viewer's pipeline is set up; ``style`` is where each viewer starts.
    Frames go back at the camera's size whatever the processing ``size``."""

    max_age: float = 0.25
    reuse: str | int = LIVE_DEFAULT  # keyframes on their own thread unless "off"


def plan_sizing(stylizer: Stylizer, settings: ViewerSettings, content: np.ndarray) -> Fixed | Adaptive:
    """Processing size for a camera whose frames look like ``content``: ``settings.size``, or
    a ladder calibrated on the engine as ``vidstyle live`` does (with reuse, the fill's
    ladder under keyframes at ``settings.size`` or 480 px). Every shape is traced here, so
    no frame waits on a trace later."""
    height, width = content.shape[:2]
    stylizer.vector(content)  # a picture style at strength < 1 takes the content's own vector from a real frame
    if settings.keyframes():
        return fill_sizing(stylizer, key_geometry(width, height, settings.size), CAMERA_RATE)
    return for_camera(stylizer.run, width, height, CAMERA_RATE, settings.size)


def _planned_for(sizing: Fixed | Adaptive | None, settings: ViewerSettings, size: tuple[int, int]) -> bool:
    """Whether ``sizing`` (from :func:`plan_sizing`) was planned for frames of ``size``."""
    if sizing is None:
        return False
    if settings.keyframes():
        key = key_geometry(*size, settings.size)
        return (sizing.current.src_w, sizing.current.src_h) == (key.proc_w, key.proc_h)
    return (sizing.current.src_w, sizing.current.src_h) == size


class StylizedTrack(MediaStreamTrack):
    """The outgoing video: the newest stylized frame; one that was never sent is replaced."""

    kind = "video"

    def __init__(self):
        super().__init__()
        self._frame: av.VideoFrame | None = None
        self._ready = asyncio.Event()

    def offer(self, frame: av.VideoFrame) -> None:
        """On the event loop: replace the frame waiting to be sent."""
        self._frame = frame
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        while self._frame is None:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()  # wake a waiting recv() so the sender ends


class Viewer:
    """One peer connection's pipeline. ``close()`` stops and joins everything it started.

    ``on_failure`` is called on the event loop when the pipeline fails, after
    the page has been told why; the server then closes the connection.
    """

    def __init__(self, viewer_id: str, settings: ViewerSettings, stylizer: Stylizer,
                 loop: asyncio.AbstractEventLoop, on_failure: Callable[["Viewer"], None]):
        self.id, self.settings, self._loop, self._on_failure = viewer_id, settings, loop, on_failure
        self.output = StylizedTrack()
        self.channel = None  # the page's data channel, for stats; set by the server
        self.inbox = Latest()  # (decoded av frame, arrival time); the newest wins
        self.held = None  # a frame the last pipeline left for the next (the camera changed size)
        self.restart = threading.Event()  # a new stylizer: end the running pipeline, start another
        self.last_image: np.ndarray | None = None  # the newest camera picture the pipeline took, RGB
        self.received = self.delivered = 0
        self._stylizer, self._sizing = stylizer, None
        self._keyframes = None  # with reuse: (policy, keyframe geometry, start) of the running pipeline
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pipeline = None
        self._drain: asyncio.Task | None = None
        self._t0 = time.monotonic()
        self._meter = Meter(span=2.0)
        self._last_stats = 0.0
        self._worker: threading.Thread | None = None

    @property
    def style(self) -> Style:
        return self._stylizer.style

    # -- event loop side ----------------------------------------------------

    def start(self) -> None:
        """Start the worker, once the connection is up: an offer that never connects costs no thread."""
        if not self._closed.is_set() and self._worker is None:
            self._worker = threading.Thread(target=self._work, name=f"vidstyle-viewer-{self.id[:8]}", daemon=True)
            self._worker.start()

    def receive(self, track: MediaStreamTrack) -> None:
        self._drain = asyncio.ensure_future(self._take_frames(track))

    async def _take_frames(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.received += 1
                self.inbox.put((frame, time.monotonic()))
        except MediaStreamError:  # the remote track ended
            pass

    def use(self, stylizer: Stylizer, sizing: Fixed | Adaptive | None = None) -> None:
        """Switch to a ready stylizer and its sizing (any thread; None: planned on the next
        frame). The running pipeline ends and a fresh one starts, so the old style's
        temporal history does not linger for seconds."""
        with self._lock:
            self._stylizer, self._sizing = stylizer, sizing
        self.restart.set()

    async def close(self) -> None:
        """Stop the drain and the worker and wait for both; idempotent."""
        self._closed.set()
        self.inbox.close()
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.cancel()
        if self._drain is not None:
            self._drain.cancel()
            await asyncio.gather(self._drain, return_exceptions=True)
            self._drain = None  # its coroutine refers back to this viewer: a cycle only the GC would free
        self.output.stop()
        if self._worker is None:  # never started
            return
        await asyncio.to_thread(self._worker.join, 10.0)
        if self._worker.is_alive():
            log.warning("viewer %s: worker did not stop within 10 s", self.id[:8])

    def _send(self, message: dict) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            channel.send(json.dumps(message))

    def _call_soon(self, callback, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop has closed: the server is gone, nobody to tell
            pass

    # -- worker thread --------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._closed.is_set():
                first = self._next_frame()
                if first is None:
                    return
                self._run_pipeline(first)
        except Exception as exc:  # noqa: BLE001 - one viewer's failure must not take the server down
            if isinstance(exc, VidstyleError):
                message = str(exc)
            else:
                log.exception("viewer %s failed", self.id[:8])
                message = f"{type(exc).__name__}: {exc}"
            log.error("viewer %s: %s", self.id[:8], message)
            self._call_soon(self._send, {"error": message})
            self._call_soon(self._on_failure, self)

    def _next_frame(self):
        """The held frame or the next one from the inbox; None once the viewer closes."""
        item, self.held = self.held, None
        while item is None and not self._closed.is_set():
            try:
                item = self.inbox.take(timeout=0.1)
            except EOFError:
                return None
        return item

    def _run_pipeline(self, first) -> None:
        """Stylize frames of ``first``'s size with the current stylizer until either changes."""
        self.restart.clear()
        frame_size = (first[0].width, first[0].height)
        with self._lock:
            stylizer, sizing = self._stylizer, self._sizing
        if not _planned_for(sizing, self.settings, frame_size):
            self.last_image = first[0].to_ndarray(format="rgb24")
            sizing = plan_sizing(stylizer, self.settings, self.last_image)
            with self._lock:
                if self._stylizer is stylizer:  # kept (and adapting) until the style or the size changes
                    self._sizing = sizing
        keyframes = self.settings.keyframes(asynchronous=True)
        key = key_geometry(*frame_size, self.settings.size) if keyframes else None
        self._keyframes = (keyframes, key, time.monotonic()) if keyframes else None
        run_live(_Frames(self, first, frame_size), stylizer, sizing,
                 live_flow() if keyframes else self.settings.smoother(), self._present,
                 max_age=self.settings.max_age, on_pipeline=self._on_pipeline, keyframes=keyframes, key=key)

    def _on_pipeline(self, pipeline) -> None:
        self._pipeline = pipeline
        if self._closed.is_set():  # closed while this pipeline was being built
            pipeline.cancel()

    def _present(self, frame: Frame) -> None:
        video = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        now = time.monotonic()
        # Stamped when sent, not when captured: the browser's jitter buffer would read the
        # spread of processing times as network jitter and hold every frame longer.
        video.pts, video.time_base = int((now - self._t0) / VIDEO_CLOCK), VIDEO_CLOCK
        self.delivered += 1
        self._call_soon(self.output.offer, video)
        self._meter.add(frame, now)
        if now - self._last_stats >= STATS_EVERY:
            self._last_stats = now
            self._call_soon(self._send, self._stats())

    def _stats(self) -> dict:
        """Frames sent per second, and arrival-to-send latency, over the last two seconds."""
        sizing, keyframes = self._sizing, self._keyframes
        stats = {"fps": round(self._meter.fps, 1),
                 "latency_ms": {k: round(v, 1) for k, v in self._meter.latency_percentiles(50, 95).items()},
                 "received": self.received, "delivered": self.delivered, "style": self.style.label,
                 "size": f"{sizing.current.proc_w}x{sizing.current.proc_h}" if sizing else None}
        if keyframes:  # the picture is the keyframes' size; "size" is the fill's
            policy, key, since = keyframes
            stats.update(keyframe_size=f"{key.proc_w}x{key.proc_h}",
                         keyframe_fps=round(policy.stats.keyframes / max(1e-3, time.monotonic() - since), 1),
                         recomputed=round(policy.stats.filled, 3))
        return stats


class _Frames:
    """A viewer's inbox as a live Source: frames of one size, until the size or the style changes.

    The inbox is the only newest-wins mailbox between the browser and the pipeline:
    a frame is converted to RGB only when the scheduler takes it."""

    rate = None

    def __init__(self, viewer: Viewer, first, size: tuple[int, int]):
        self.viewer, self.first, self.size = viewer, first, size
        self._overwritten = viewer.inbox.overwritten

    @property
    def dropped(self) -> int:
        return self.viewer.inbox.overwritten - self._overwritten

    def frames(self) -> Iterator[Frame]:
        viewer, item, index = self.viewer, self.first, 0
        while True:
            if item is not None:
                frame, arrived = item
                if (frame.width, frame.height) != self.size:
                    viewer.held = item  # the next pipeline, planned for this size, starts on it
                    return
                viewer.last_image = frame.to_ndarray(format="rgb24")
                yield Frame(index, None, None, viewer.last_image, arrived)
                index += 1
            if viewer.restart.is_set():
                return
            try:
                item = viewer.inbox.take(timeout=0.05)
            except EOFError:
                return

    def close(self) -> None:
        """The inbox is the viewer's: it stays open for the next pipeline."""
