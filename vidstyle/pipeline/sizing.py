"""Processing size for live video: the largest that keeps up with the camera.

``Fixed`` is one size (offline, or ``--size``). ``Adaptive`` is a ladder of sizes for
one source (longer side LADDER, 640 down to 128): ``calibrate`` traces and times the
rungs before the camera starts and picks the largest whose engine time fits FIT of the
frame interval; ``record`` takes each frame's service time (left the source ->
presented) and, after SETTLE frames at a rung, moves one rung down above DOWN of the
interval or one up when the next rung is predicted under UP. ``current`` is the
geometry the next frame is prepared at; the output keeps the source size.
``for_camera`` builds either, every shape traced. Why: docs/design-notes.md.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidstyle.processing.geometry import Geometry, plan

# Longer side of each rung, pixels.
LADDER = (640, 576, 512, 448, 384, 352, 320, 288, 256, 224, 192, 160, 128)
FIT = 0.7  # calibration: the engine alone may use this share of the frame interval; the rest is for the other stages
DOWN = 0.95  # measured service time above this share of the interval: one rung down
UP = 0.7  # predicted service time on the next rung up below this share: one rung up
SETTLE = 20  # frames measured at a rung before it may change again


@dataclass
class Fixed:
    """One processing size for the whole stream (offline, or ``--size`` given)."""

    geom: Geometry

    @property
    def current(self) -> Geometry:
        return self.geom

    def record(self, per_frame: float) -> None:
        """A fixed size ignores the measured service time."""


class Adaptive:
    """A ladder of processing sizes for a ``src_w`` x ``src_h`` source at ``rate`` frames/s.

    ``record`` is called with each frame's service time; ``current`` is the
    geometry the next frame is prepared at. ``changes`` logs each move as
    (frame count, longer side) for reports.
    """

    def __init__(self, src_w: int, src_h: int, rate: float, ladder: tuple[int, ...] = LADDER):
        top = min(max(src_w, src_h), max(ladder))
        sides = sorted({s for s in ladder if s <= top} | {top}, reverse=True)
        self.rungs = [plan(src_w, src_h, side) for side in sides]
        self.interval = 1.0 / rate
        self.index = 0
        self.costs: dict[int, float] = {}  # rung -> measured seconds per frame (calibration, then running)
        self.changes: list[tuple[int, int]] = []
        self._frames = 0
        self._since = 0

    @property
    def current(self) -> Geometry:
        return self.rungs[self.index]

    @property
    def side(self) -> int:
        g = self.current
        return max(g.proc_w, g.proc_h)

    def calibrate(self, run: Callable[[np.ndarray], object], batch: int = 1, repeats: int = 2) -> None:
        """Trace and time the rungs with ``run(batch of frames)``, smallest first, up to the
        first that costs more than the whole frame interval (the ladder ends there: an
        untraced rung would stall the picture); start at the largest that fits."""
        costs: list[float] = []
        for g in reversed(self.rungs):
            zeros = np.zeros((batch, g.net_h, g.net_w, 3), np.uint8)
            run(zeros)  # trace
            t0 = time.perf_counter()
            for _ in range(repeats):
                run(zeros)
            costs.insert(0, (time.perf_counter() - t0) / (repeats * batch))
            if costs[0] > self.interval:
                break
        self.rungs = self.rungs[len(self.rungs) - len(costs):]
        self.costs = dict(enumerate(costs))
        fitting = [i for i, c in enumerate(costs) if c <= FIT * self.interval]
        self._move(fitting[0] if fitting else len(costs) - 1)

    def record(self, per_frame: float) -> None:
        """Seconds one frame kept the live loop busy (service time / frames in flight)."""
        self._frames += 1
        self._since += 1
        old = self.costs.get(self.index) if self._since > 1 else None  # calibration timed the engine alone
        self.costs[self.index] = per_frame if old is None else 0.8 * old + 0.2 * per_frame
        if self._since < SETTLE:
            return
        cost = self.costs[self.index]
        if cost > DOWN * self.interval and self.index + 1 < len(self.rungs):
            self._move(self.index + 1)
        elif self.index > 0 and self._predict(self.index - 1) < UP * self.interval:
            self._move(self.index - 1)

    def _predict(self, i: int) -> float:
        """Cost at rung ``i`` scaled from the current rung's running cost by pixel count."""
        here, there = self.rungs[self.index], self.rungs[i]
        return self.costs[self.index] * (there.net_w * there.net_h) / (here.net_w * here.net_h)

    def _move(self, i: int) -> None:
        if i != self.index or not self.changes:
            self.index = i
            self.changes.append((self._frames, self.side))
        self._since = 0


def for_camera(run: Callable[[np.ndarray], object], width: int, height: int, rate: float,
               size: tuple[int, int] | int | None = None) -> Fixed | Adaptive:
    """The processing size of a live camera: ``size`` when given, else the ladder calibrated
    with ``run`` (a stylizer's). Either way every shape the engine will see is traced here,
    before the camera starts."""
    if size is not None:
        sizing = Fixed(plan(width, height, size))
        g = sizing.current
        run(np.zeros((1, g.net_h, g.net_w, 3), np.uint8))
        return sizing
    sizing = Adaptive(width, height, rate)
    sizing.calibrate(run)
    return sizing
