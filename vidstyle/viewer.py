"""One browser viewer of ``vidstyle live --serve``: its frames, its pipeline, its stylized track.

Nothing here is shared between viewers except the engine (one per model per
process, see :func:`vidstyle.engines.tf_engine.shared_engine`): each viewer has
its own mailbox, stylizer, temporal history and threads, so frames from two
browsers cannot meet.

Threads: aiortc decodes on its own thread and queues decoded frames on the
event loop without bound, so :meth:`Viewer.receive` drains the remote track
continuously into a one-slot mailbox (the newest frame wins). A worker thread
runs the live scheduler (:func:`vidstyle.live.run_live`) on that mailbox and
hands each stylized frame back to the loop, where :class:`StylizedTrack`
gives the newest one to aiortc's encoder.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from . import adapt, live
from . import temporal as temporal_mod
from .errors import VidstyleError
from .frame import Frame
from .styles import Style
from .stylize import Stylizer
from .transcode import stylize_stages

log = logging.getLogger("vidstyle.serve")

VIDEO_CLOCK = Fraction(1, 90000)  # the RTP clock rate of every video codec
STATS_EVERY = 0.5  # seconds between stats messages to the page
CAMERA_RATE = 30.0  # what a browser camera delivers; the adaptive size aims to keep up with it


@dataclass(frozen=True)
class ViewerSettings:
    """How every viewer's pipeline is set up; the style is each viewer's own choice."""

    style: str = "7"
    size: tuple[int, int] | int | None = None  # processing size; frames go back at the camera's size
    strength: float = 1.0
    preserve_color: bool = False
    temporal: str = temporal_mod.DEFAULT_MODE
    temporal_strength: float = temporal_mod.DEFAULT_STRENGTH
    max_age: float = 0.25
    engine: str = "auto"
    threads: int = 0
    precision: str = "auto"
    model: str = "auto"
    internal_scale: float = 1.0

    def stylizer(self, style: Style) -> Stylizer:
        return Stylizer(style, strength=self.strength, preserve_color=self.preserve_color,
                        engine_name=self.engine, threads=self.threads, precision=self.precision,
                        model=self.model, internal_scale=self.internal_scale)


def plan_sizing(stylizer: Stylizer, settings: ViewerSettings, content: np.ndarray) -> adapt.Fixed | adapt.Adaptive:
    """Processing size for a camera whose frames look like ``content``: ``settings.size``, or
    a ladder calibrated on the engine as ``vidstyle live`` does. Every shape is traced here,
    so no frame waits on a trace later."""
    height, width = content.shape[:2]
    stylizer.vector(content)  # a picture style at strength < 1 takes the content's own vector from a real frame
    return adapt.for_camera(stylizer.run, width, height, CAMERA_RATE, settings.size)


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
        self.inbox = live.Latest()  # (decoded av frame, arrival time); the newest wins
        self.held = None  # a frame the last pipeline left for the next (the camera changed size)
        self.restart = threading.Event()  # a new stylizer: end the running pipeline, start another
        self.last_image: np.ndarray | None = None  # the newest camera picture the pipeline took, RGB
        self.received = self.delivered = 0
        self._stylizer, self._sizing = stylizer, None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pipeline = None
        self._drain: asyncio.Task | None = None
        self._t0 = time.monotonic()
        self._window: deque[tuple[float, float]] = deque()  # (sent at, latency), for the stats
        self._last_stats = 0.0
        self._worker = threading.Thread(target=self._work, name=f"vidstyle-viewer-{viewer_id[:8]}", daemon=True)
        self._worker.start()

    @property
    def style(self) -> Style:
        return self._stylizer.style

    # -- event loop side ----------------------------------------------------

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

    def use(self, stylizer: Stylizer, sizing: adapt.Fixed | adapt.Adaptive | None = None) -> None:
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
        self.output.stop()
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
        if sizing is None or (sizing.current.src_w, sizing.current.src_h) != frame_size:
            self.last_image = first[0].to_ndarray(format="rgb24")
            sizing = plan_sizing(stylizer, self.settings, self.last_image)
            with self._lock:
                if self._stylizer is stylizer:  # kept (and adapting) until the style or the size changes
                    self._sizing = sizing
        smoother = temporal_mod.create(self.settings.temporal, self.settings.temporal_strength)
        stages = stylize_stages(stylizer, sizing, 1, smoother, smooth_at="processing")
        live.run_live(_Frames(self, first, frame_size), stages, self._present, max_age=self.settings.max_age,
                      on_pipeline=self._on_pipeline,
                      sizing=sizing)

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
        self._window.append((now, now - frame.captured))
        if now - self._last_stats >= STATS_EVERY:
            self._last_stats = now
            self._call_soon(self._send, self._stats(now))

    def _stats(self, now: float) -> dict:
        """Frames sent per second, and arrival-to-send latency, over the last two seconds."""
        while self._window[0][0] < now - 2.0:
            self._window.popleft()
        latencies = np.array([lat for _, lat in self._window]) * 1000
        span = now - self._window[0][0]
        sizing = self._sizing
        return {"fps": round((len(self._window) - 1) / span, 1) if span else 0.0,
                "latency_ms": {"p50": round(float(np.percentile(latencies, 50)), 1),
                               "p95": round(float(np.percentile(latencies, 95)), 1)},
                "received": self.received, "delivered": self.delivered, "style": self.style.label,
                "size": f"{sizing.current.proc_w}x{sizing.current.proc_h}" if sizing else None}


class _Frames:
    """A live source over a viewer's inbox; it ends when the frame size or the style changes."""

    def __init__(self, viewer: Viewer, first, size: tuple[int, int]):
        self.viewer, self.first, self.size = viewer, first, size

    def run(self, mailbox: live.Latest, stop: threading.Event) -> None:
        viewer, item, index = self.viewer, self.first, 0
        try:
            while True:
                if item is not None:
                    frame, arrived = item
                    if (frame.width, frame.height) != self.size:
                        viewer.held = item  # the next pipeline, planned for this size, starts on it
                        return
                    viewer.last_image = frame.to_ndarray(format="rgb24")
                    mailbox.put(Frame(index, None, None, viewer.last_image, arrived))
                    index += 1
                if stop.is_set() or viewer.restart.is_set():
                    return
                try:
                    item = viewer.inbox.take(timeout=0.05)
                except EOFError:
                    return
        finally:
            mailbox.close()
