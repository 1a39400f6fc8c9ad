"""Live keyframes: the network on its own thread, every camera frame delivered from propagation.

The camera path (prepare -> motion -> fill -> temporal) never waits for a full
inference: each frame's output is the latest keyframe's stylization carried along the
flow, with a cheap stylization (the network at the adaptive ladder's size, guided back
up) where the flow cannot explain the picture. Beside it a :class:`KeyframeWorker`
stylizes the newest frame at the keyframe size, as fast as it can, on its own engine; a
keyframe that lands after the camera has moved on is carried from its capture frame to
the present through the flows since (:mod:`vidstyle.processing.carry`). So the picture
keeps the keyframe size whatever the machine, and the ladder sizes only the fill.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from vidstyle.frame import Frame
from vidstyle.pipeline.runner import Stage
from vidstyle.pipeline.sizing import LADDER, Adaptive, Fixed
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.processing import geometry, guided, reuse
from vidstyle.processing.carry import Trail, carry
from vidstyle.processing.temporal import Flow, Motion

KEY_SIDE = 480  # keyframes' longer side unless --size says otherwise (a 2-core CPU makes ~5 a second)
FLOW_SIDE = 320  # the flow's longer side: it runs on every frame, in the camera's time ...
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_FAST  # ... and so the fast preset (half the medium one's time)
FILL_THREADS = 1  # a pool of engine threads would spin between fills, taking time from the camera path
NICE = 10  # the keyframe thread's scheduling priority, below the camera path's
JOIN = 10.0  # seconds to wait for a keyframe in progress at shutdown


class KeyframeWorker:
    """Runs ``stylize(index, frame)`` on the newest frame offered, one at a time, on its own thread.

    ``offer`` replaces an untaken frame; ``landed`` returns the newest result once (and
    re-raises the worker's error, if it failed); a None result is dropped; ``close``
    stops and joins it.
    """

    def __init__(self, stylize: Callable[[int, np.ndarray], object], name: str = "vidstyle-keyframes"):
        self._stylize = stylize
        self._cond = threading.Condition()
        self._next: tuple[int, np.ndarray] | None = None  # the newest frame offered, not yet taken
        self._landed = None
        self._stopping = False
        self._error: BaseException | None = None
        self.done = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def offer(self, index: int, frame: np.ndarray) -> None:
        with self._cond:
            self._next = (index, frame)
            self._cond.notify()

    def landed(self):
        """What ``stylize`` returned for the latest keyframe finished since the last call, or None."""
        if self._error is not None:
            raise self._error
        with self._cond:
            item, self._landed = self._landed, None
        return item

    def _loop(self) -> None:
        _yield_to_camera()
        while True:
            with self._cond:
                while self._next is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                (index, frame), self._next = self._next, None
            try:
                out = self._stylize(index, frame)
            except BaseException as exc:  # noqa: BLE001 - raised on the camera path by landed()
                self._error = exc
                return
            with self._cond:
                self.done += 1
                if out is not None:
                    self._landed = out

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=JOIN)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _yield_to_camera() -> None:
    """Lower this thread's scheduling priority (Linux: threads have their own nice value),
    so that where the cores are short the camera path runs and keyframes come less often,
    rather than every frame coming late."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except OSError:
            pass  # a container may forbid it; keyframes then share the cores evenly


@dataclass
class _Live:
    """A camera frame on its way through prepare -> motion -> fill -> temporal."""

    frame: Frame
    small: np.ndarray  # the input at the keyframe size
    net: np.ndarray  # ... padded for the network
    motion: Motion | None = None
    plan: reuse.Plan | None = None
    landed: np.ndarray | None = None  # a keyframe finished since the previous frame, carried to it
    stand_in: np.ndarray | None = None  # a whole-frame stylization where nothing can be carried ...
    keyed: bool = False  # ... a keyframe's (the first frame) rather than a cheap one
    fill: reuse.Fill | None = None

    @property
    def index(self) -> int:
        return self.frame.index


def key_geometry(width: int, height: int, size: tuple[int, int] | int | None = None) -> geometry.Geometry:
    """The keyframes' (and so the picture's) processing size for a ``width`` x ``height`` camera."""
    return geometry.plan(width, height, size if size is not None else min(KEY_SIDE, max(width, height)))


def live_flow() -> Flow:
    """The flow estimator of the camera path (its warps need no smoothing strength)."""
    return Flow(side=FLOW_SIDE, preset=FLOW_PRESET)


def fill_sizing(stylizer: Stylizer, key: geometry.Geometry, rate: float) -> Adaptive:
    """The fill's size: the adaptive ladder on the keyframe-size picture, below that size,
    every rung traced (on the fill's own engine) before the camera starts."""
    top = max(key.proc_w, key.proc_h)
    sizing = Adaptive(key.proc_w, key.proc_h, rate, ladder=tuple(s for s in LADDER if s < top) or (top,))
    engine = stylizer.engine_with(FILL_THREADS)
    sizing.calibrate(lambda batch: stylizer.run(batch, engine=engine))
    return sizing


def keyframe_stages(stylizer: Stylizer, key: geometry.Geometry, sizing: Fixed | Adaptive, smoother: Flow,
                    policy: reuse.KeyframePolicy, worker: KeyframeWorker, trail: Trail,
                    gate: Callable[[list], list] | None = None,
                    key_run: Callable[[np.ndarray], np.ndarray] | None = None) -> list[Stage]:
    """prepare -> [fresh] -> motion -> fill -> temporal for one live source, keyframes from ``worker``.

    ``key`` is the keyframe geometry (the picture's size); ``sizing`` sizes the fill;
    ``policy`` (asynchronous) decides where the carried picture needs a fill; ``trail``
    is the one ``worker`` carries its keyframes along (:func:`start_worker`); ``gate``
    drops stale frames before the motion sees them; ``key_run`` (network input -> the
    picture at the keyframe size; default the stylizer's own engine) stylizes the first
    frame whole. Every stage runs in frame order.
    """
    first = [True]
    key_run = key_run or (lambda net: geometry.crop(stylizer.run(net[None])[0], key))
    carrier = reuse.Carrier(smoother)
    fill_engine = stylizer.engine_with(FILL_THREADS)
    every = policy.every or 1
    offered = [-every]

    def prepare(frame: Frame):
        small = geometry.shrink(frame.image, key)
        yield _Live(frame, small, geometry.pad(small, key))

    def fresh(work: _Live):
        return (work,) if gate([work]) else ()

    def motion(work: _Live):
        landed = worker.landed()  # (frame, its stylization and the keyframe's input, carried there)
        if landed is not None:
            found = trail.path(landed[0])
            if found is not None:  # else a cut came between, or it is too late to carry
                flow = found[2]
                policy.rebase(carry(landed[2], flow, cv2.INTER_LINEAR))
                work.landed = carry(landed[1], flow)
        work.motion = smoother.observe(work.index, work.small)
        trail.add(work.index, work.motion, smoother.estimator.colour)
        work.plan = policy.decide(work.index, work.motion, work.small)
        if work.index - offered[0] >= every:
            offered[0] = work.index
            worker.offer(work.index, work.net)
        yield work

    def cheap(work: _Live) -> np.ndarray:
        """The whole frame stylized at the fill size, guided back up to the keyframe size."""
        g = sizing.current  # planned on the keyframe size (fill_sizing)
        small = work.small if (g.proc_w, g.proc_h) == (key.proc_w, key.proc_h) else \
            cv2.resize(work.small, (g.proc_w, g.proc_h), interpolation=cv2.INTER_AREA)
        out = geometry.crop(stylizer.run(geometry.pad(small, g)[None], engine=fill_engine)[0], g)
        return out if out.shape == work.small.shape else guided.upsample(out, work.small)

    def fill(work: _Live):
        if work.plan.key and first[0]:
            # The very first frame waits for a whole keyframe: a cheap stand-in would be
            # replaced a few frames later, a jump at the start of every run.
            first[0], work.keyed = False, True
            work.stand_in = key_run(work.net)
        elif work.plan.key:
            work.stand_in = cheap(work)
        elif work.plan.fill:
            mask = cv2.resize(work.plan.regions, (key.proc_w, key.proc_h), interpolation=cv2.INTER_NEAREST)
            work.fill = reuse.Fill(cheap(work), mask.astype(np.float32))
        yield work

    def smooth(work: _Live):
        f = work.frame
        out = carrier.step(f.index, work.motion, stand_in=work.stand_in, fill=work.fill, landed=work.landed,
                           cheap=not work.keyed)
        yield Frame(f.index, f.pts, f.time_base, stylizer.touch_up(geometry.grow(out, key), f.image), f.captured)

    stages = [Stage("prepare", prepare)]
    if gate is not None:
        stages.append(Stage("fresh", fresh))
    return stages + [Stage("motion", motion), Stage("fill", fill), Stage("temporal", smooth)]


def keyframe_job(run: Callable[[np.ndarray], np.ndarray], key: geometry.Geometry, trail: Trail):
    """The worker's job: stylize a frame with ``run`` (network input -> output) and carry the
    result, with the frame's input, along ``trail`` to the newest frame there, so the camera
    path only bridges the steps since. None where a cut came between."""
    def job(index: int, net: np.ndarray):
        picture = geometry.crop(run(net), key)
        found = trail.path(index)
        if found is None:
            return None
        newest, colour, flow = found
        return newest, carry(picture, flow), carry(colour, flow, cv2.INTER_LINEAR)

    return job


def start_worker(stylizer: Stylizer, key: geometry.Geometry, threads: int, trail: Trail) -> KeyframeWorker:
    """A worker stylizing at ``key`` on its own engine with ``threads`` intra-op threads
    (the rest of the cores are the camera path's), its keyframes carried along ``trail``."""
    engine = stylizer.engine_with(threads)

    def run(net: np.ndarray) -> np.ndarray:
        return stylizer.run(net[None], engine=engine)[0]

    run(np.zeros((key.net_h, key.net_w, 3), np.uint8))  # traced before the camera starts
    return KeyframeWorker(keyframe_job(run, key, trail))
