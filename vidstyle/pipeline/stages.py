"""The stage list every path shares: prepare -> [motion] -> batch -> [gate] -> engine -> finish -> temporal.

Offline, live, WebRTC and cluster paths all build their stages here; a mode that
needs another batching rule or a check before inference passes it in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from vidstyle.frame import Frame
from vidstyle.pipeline.runner import Stage
from vidstyle.pipeline.sizing import Adaptive, Fixed
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.processing import geometry
from vidstyle.processing import temporal as temporal_mod


@dataclass
class _Work:
    """A frame on its way through prepare -> motion -> engine -> finish -> temporal."""

    frame: Frame
    geom: geometry.Geometry  # the processing size this frame was prepared at
    small: np.ndarray  # the input at that size
    net: np.ndarray  # ... padded for the network
    out: np.ndarray | None = None
    motion: temporal_mod.Motion | None = None

    @property
    def index(self) -> int:
        return self.frame.index


def _shape(work) -> tuple | None:
    net = getattr(work, "net", None)
    return None if net is None else net.shape


def batcher(size: int, due: Callable[[list], bool] | None = None) -> tuple[Callable, Callable]:
    """A batch stage's (process, flush): batches of ``size``, released early when
    ``due(pending)`` says so (live video's deadline)."""
    pending: list[_Work] = []

    def process(work: _Work):
        if pending and _shape(pending[0]) != _shape(work):  # the live size changed: one shape per batch
            yield pending.copy()
            pending.clear()
        pending.append(work)
        if len(pending) == size or (due and due(pending)):
            yield pending.copy()
            pending.clear()

    def flush():
        if pending:
            yield pending.copy()
            pending.clear()

    return process, flush


def stylize_stages(stylizer: Stylizer, geom: geometry.Geometry | Fixed | Adaptive, batch: int,
                   temporal: temporal_mod.Temporal | None = None, smooth_at: str = "output",
                   overlap: bool = False, due: Callable[[list], bool] | None = None,
                   gate: Callable[[list], list] | None = None) -> list[Stage]:
    """prepare -> [motion] -> batch -> engine -> finish -> temporal, shared by every frame source.

    ``geom`` is one processing size, or an :class:`vidstyle.pipeline.sizing.Adaptive`
    ladder whose current rung each frame is prepared at (live video).
    Motion (optical flow between input frames) has its own thread so that it
    runs beside inference; the temporal stage then only warps and blends.
    Each owns its half of the smoothing state. ``smooth_at="processing"``
    smooths before the output is scaled up to the source size: flow and blend
    then cost in proportion to the (small) processing size, which is what a
    live picture can afford; ``"output"`` smooths the full-size frame.
    ``overlap`` (offline only: it holds each batch until the next one arrives) keeps one
    batch in flight on an engine that queues work on a device.

    ``due(pending)`` releases a batch before it is full (live video's deadline);
    ``gate(batch)`` runs just before inference and returns the frames still worth
    running (live video drops the stale ones there).
    """
    if smooth_at not in ("output", "processing"):
        raise ValueError(f"smooth_at must be 'output' or 'processing', not {smooth_at!r}")
    temporal = temporal or temporal_mod.Temporal()
    sizing = Fixed(geom) if isinstance(geom, geometry.Geometry) else geom
    small = smooth_at == "processing"

    def prepare(frame: Frame):
        g = sizing.current
        shrunk = geometry.shrink(frame.image, g)
        yield _Work(frame, g, shrunk, geometry.pad(shrunk, g))

    def motion(work: _Work):
        work.motion = temporal.observe(work.index, work.small if small else work.frame.image)
        yield work

    # One batch in flight on an engine that queues work (tensorrt): batch k+1 is submitted
    # before batch k is collected, so uploads, inference and downloads of consecutive
    # batches overlap. Other engines finish inside submit(), so this changes nothing there.
    in_flight: list[tuple[list[_Work], Callable[[], np.ndarray]]] = []

    def collect():
        works, result = in_flight.pop(0)
        for w, o in zip(works, result()):
            w.out = o
        return works

    def infer(works: list[_Work]):
        in_flight.append((works, stylizer.submit(np.stack([w.net for w in works]), size=batch)))
        if len(in_flight) > 1 or not (overlap and stylizer.engine.queues):
            yield collect()

    def infer_flush():
        while in_flight:
            yield collect()

    def finish(works: list[_Work]):
        for w in works:
            w.out = geometry.crop(w.out, w.geom)
            if not small:
                w.out = geometry.grow(w.out, w.geom)
            yield w

    def smooth(work: _Work):
        f = work.frame
        out = temporal.blend(f.index, work.out, work.motion)
        if small:
            # A plain resize: guided upsampling came closer by little and cost ~4 fps on
            # 2 cores here (docs/cpu-speed.md, benchmarks/internal_scale.py).
            out = geometry.grow(out, work.geom)
        yield Frame(f.index, f.pts, f.time_base, stylizer.touch_up(np.ascontiguousarray(out), f.image), f.captured)

    def check(works: list[_Work]):
        kept = gate(works)
        return (kept,) if kept else ()

    stages = [Stage("prepare", prepare)]
    if temporal.needs_motion:
        stages.append(Stage("motion", motion))
    stages.append(Stage("batch", *batcher(batch, due)))
    if gate is not None:
        stages.append(Stage("fresh", check))
    return stages + [Stage("engine", infer, infer_flush), Stage("finish", finish), Stage("temporal", smooth)]
