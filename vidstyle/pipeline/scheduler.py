"""Live scheduling: latency first, the newest frame wins, stale frames are dropped and counted.

A live source (a camera) keeps only its newest frame (see :mod:`vidstyle.io.feed`),
and the scheduler takes one only when a slot is free, so frames wait and are
replaced at the source instead of queueing behind inference. Just before
inference, a frame older than ``max_age`` is dropped (counted as stale). With
more than one frame in flight the batch is released to a deadline. The stages
themselves are the shared list (:func:`vidstyle.pipeline.stages.stylize_stages`),
given :meth:`LiveScheduler.due` as its batching rule and :meth:`LiveScheduler.gate`
as its check before inference.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from vidstyle.errors import Cancelled
from vidstyle.frame import Frame, Source
from vidstyle.engines.cpu import usable_cores
from vidstyle.pipeline import keyframes as keyframes_mod
from vidstyle.pipeline.runner import POLL, Pipeline, Stage
from vidstyle.pipeline.sizing import Fixed
from vidstyle.pipeline.stages import stylize_stages
from vidstyle.processing.carry import Trail
from vidstyle.processing.geometry import Geometry


@dataclass
class LiveStats:
    wall: float = 0.0
    delivered: int = 0
    dropped_source: int = 0  # overwritten in the mailbox before the pipeline took them
    dropped_stale: int = 0  # older than max_age when inference could start
    latencies: list[float] = field(default_factory=list)  # capture -> presented, seconds
    stages: dict = field(default_factory=dict)
    stopped: bool = False  # cancelled (a quit key, a time limit, SIGTERM) rather than the camera ending
    # with keyframes: keyframe_size, keyframe_fps (landed a second), recomputed (the share of
    # each frame's pixels a fill recomputed)
    reuse: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.delivered / self.wall if self.wall else 0.0

    @property
    def captured(self) -> int:
        return self.delivered + self.dropped_source + self.dropped_stale

    @property
    def drop_rate(self) -> float:
        return (self.dropped_source + self.dropped_stale) / self.captured if self.captured else 0.0


class LiveScheduler:
    """Runs the stages of one live source; build the stages with its ``due`` and ``gate``.

    ``sizing`` (the :mod:`vidstyle.pipeline.sizing` object the stages were built
    with) is told each frame's service time, from leaving the source to being
    presented, so the processing size follows what the machine can do.

    At most ``in_flight`` frames are between the source and the screen (the
    stages' batch size). One is the latency-first choice: on 2 CPU cores, two in
    flight delivered the same frame rate at twice the latency.
    """

    def __init__(self, source: Source, max_age: float = 0.25, in_flight: int = 1, sizing=None):
        self.source, self.max_age, self.in_flight, self.sizing = source, max_age, in_flight, sizing
        self.stats = LiveStats()
        self._slots = threading.Semaphore(in_flight)
        self._taken: dict[int, float] = {}  # frame index -> when it left the source

    def due(self, pending: list) -> bool:
        """Release a batch early unless one more frame would still let the oldest make half its deadline."""
        interval = 1.0 / (self.source.rate or 30.0)
        return time.monotonic() + interval - pending[0].frame.captured > self.max_age / 2

    def gate(self, batch: list) -> list:
        """The frames of ``batch`` young enough to be worth inference; the others are dropped."""
        now = time.monotonic()
        kept = []
        for work in batch:
            if now - work.frame.captured <= self.max_age:
                kept.append(work)
                continue
            self.stats.dropped_stale += 1
            self._taken.pop(work.index, None)
            self._slots.release()
        return kept

    def run(self, stages: list[Stage], present: Callable[[Frame], None],
            on_pipeline: Callable[[Pipeline], None] | None = None) -> LiveStats:
        """Run until the source ends or the pipeline is cancelled (a quit key, a time limit,
        SIGTERM: how a live run normally ends); ``present`` shows each frame. The source is
        closed on the way out."""
        stats, slots, taken, pipeline = self.stats, self._slots, self._taken, None

        def capture() -> Iterator[Frame]:
            frames = self.source.frames()
            try:
                while True:
                    while not slots.acquire(timeout=POLL):
                        if pipeline.stopping:
                            return
                    frame = next(frames, None)
                    if frame is None:
                        return
                    taken[frame.index] = time.monotonic()
                    yield frame
            finally:
                frames.close()

        def show(frame: Frame):
            present(frame)
            stats.delivered += 1
            started = taken.pop(frame.index, None)
            if self.sizing is not None and started is not None:
                self.sizing.record((time.monotonic() - started) / self.in_flight)
            slots.release()
            return ()

        pipeline = Pipeline(capture, stages + [Stage("present", show)], queue_size=1, source_name="capture")
        if on_pipeline:
            on_pipeline(pipeline)
        try:
            run = pipeline.run()
        except Cancelled:
            run = pipeline.stats
            stats.stopped = True
        finally:
            self.source.close()
        stats.wall, stats.stages, stats.latencies = run.wall, run.stages, run.latencies
        stats.dropped_source = self.source.dropped
        return stats


def run_live(source: Source, stylizer, sizing, smoother, present: Callable[[Frame], None], *,
             max_age: float = 0.25, in_flight: int = 1, smooth_at: str = "processing",
             on_pipeline: Callable[[Pipeline], None] | None = None, keyframes=None,
             key: Geometry | None = None, key_threads: int = 0) -> LiveStats:
    """One live run: the shared stages (:func:`stylize_stages`) under a :class:`LiveScheduler`.

    ``sizing`` is a :mod:`vidstyle.pipeline.sizing` ladder or one Geometry; ``smooth_at``
    as in :func:`stylize_stages` (live video smooths at the processing size).

    ``keyframes`` (an asynchronous :class:`~vidstyle.processing.reuse.KeyframePolicy`)
    reuses work across frames instead (:mod:`vidstyle.pipeline.keyframes`): keyframes at
    ``key`` (:func:`~vidstyle.pipeline.keyframes.key_geometry`) on their own thread with
    ``key_threads`` engine threads (0: all cores but one), every frame carried from them,
    and ``sizing`` sizing the fill (:func:`~vidstyle.pipeline.keyframes.fill_sizing`).
    """
    sizing = Fixed(sizing) if isinstance(sizing, Geometry) else sizing
    scheduler = LiveScheduler(source, max_age=max_age, in_flight=in_flight, sizing=sizing)
    if keyframes is None:
        stages = stylize_stages(stylizer, sizing, in_flight, smoother, smooth_at=smooth_at,
                                due=scheduler.due, gate=scheduler.gate)
        return scheduler.run(stages, present, on_pipeline)
    if not keyframes.asynchronous:
        raise ValueError("live keyframes run on their own thread: give an asynchronous KeyframePolicy")
    if key is None:
        raise ValueError("live keyframes need their geometry (key)")
    trail = Trail()
    worker = keyframes_mod.start_worker(stylizer, key, key_threads or max(1, usable_cores() - 1), trail)
    try:
        stages = keyframes_mod.keyframe_stages(stylizer, key, sizing, smoother, keyframes, worker, trail,
                                               gate=scheduler.gate)
        stats = scheduler.run(stages, present, on_pipeline)
    finally:
        worker.close()
    stats.reuse = {"keyframe_size": f"{key.proc_w}x{key.proc_h}",
                   "keyframe_fps": keyframes.stats.keyframes / stats.wall if stats.wall else 0.0,
                   "recomputed": keyframes.stats.filled}
    return stats
