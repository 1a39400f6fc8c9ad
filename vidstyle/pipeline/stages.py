"""The stage list every path shares: prepare -> [motion] -> batch -> [gate] -> engine -> finish -> temporal.

Offline, live, WebRTC and cluster paths all build their stages here; a mode that
needs another batching rule or a check before inference passes it in.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from vidstyle.frame import Frame
from vidstyle.pipeline.runner import Stage
from vidstyle.pipeline.sizing import Adaptive, Fixed
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.processing import geometry, reuse
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
    plan: reuse.Plan | None = None  # with reuse: what the network does for this frame
    fill: reuse.Fill | None = None  # ... and its fresh pixels, where the network ran on part of it

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
                   gate: Callable[[list], list] | None = None,
                   keyframes: reuse.KeyframePolicy | None = None) -> list[Stage]:
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

    ``keyframes`` reuses work across frames (:mod:`vidstyle.processing.reuse`): the
    policy decides on the motion thread what the network runs on (whole keyframes, crops
    around regions, or nothing), and the temporal stage gives the smoother the keyframe's
    stylization carried along the flow instead of a fresh one. It needs the flow, so it
    applies with flow smoothing only.
    """
    if smooth_at not in ("output", "processing"):
        raise ValueError(f"smooth_at must be 'output' or 'processing', not {smooth_at!r}")
    if keyframes is not None and gate is not None:
        # A frame dropped after the policy planned it would leave the frames carried from it
        # without their source; live video's keyframes run in vidstyle.pipeline.keyframes.
        raise ValueError("keyframes with a gate: use vidstyle.pipeline.keyframes for live video")
    temporal = temporal or temporal_mod.Temporal()
    sizing = Fixed(geom) if isinstance(geom, geometry.Geometry) else geom
    small = smooth_at == "processing"
    keyframes = keyframes if temporal.needs_motion else None
    propagator = reuse.Propagator(temporal) if keyframes else None

    def prepare(frame: Frame):
        g = sizing.current
        shrunk = geometry.shrink(frame.image, g)
        yield _Work(frame, g, shrunk, geometry.pad(shrunk, g))

    def motion(work: _Work):
        seen = work.small if small else work.frame.image
        work.motion = temporal.observe(work.index, seen)
        if keyframes:
            work.plan = keyframes.decide(work.index, work.motion, seen)
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

    measured: list = []  # norm statistics of the latest keyframe, for region recompute

    def infer_planned(works: list[_Work]):
        """With reuse: keyframes at full size (measuring their statistics where the engine
        can recompute regions), fresh pixels where the flow is not trusted, nothing else."""
        stats = keyframes.stats
        for w in works:
            whole = w.net.shape[0] * w.net.shape[1]
            stats.frame_pixels += whole
            if w.plan.key:
                if stylizer.regions:
                    w.out, measured[:] = stylizer.keyframe(w.net)
                else:
                    w.out = stylizer.run(w.net[None])[0]
                stats.network_pixels += whole
            elif w.plan.fill:
                w.fill, pixels = recompute(w)
                stats.network_pixels += pixels
        yield works

    def recompute(w: _Work) -> tuple[reuse.Fill, int]:
        """Fresh pixels where the flow is not trusted: crops around those regions with the
        keyframe's statistics, or a cheap whole-frame stylization where the engine cannot
        do that or the crops would cover most of the frame."""
        g = w.geom
        mask = np.zeros(w.net.shape[:2], np.float32)
        mask[: g.proc_h, : g.proc_w] = cv2.resize(w.plan.regions, (g.proc_w, g.proc_h),
                                                  interpolation=cv2.INTER_NEAREST)
        found = reuse.boxes(w.plan.regions, g.proc_w, g.proc_h, limit=(g.net_w, g.net_h)) if measured else []
        area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in found)
        if not found or area > reuse.REGION_SHARE * g.net_w * g.net_h:
            return (reuse.Fill(stylizer.run(w.net[None], scale=reuse.FILL_SCALE)[0], mask),
                    round(g.net_w * g.net_h * reuse.FILL_SCALE ** 2))
        image = np.zeros_like(w.net)
        for (x0, y0, x1, y1), patch in zip(found, stylizer.crops([w.net[y0:y1, x0:x1] for x0, y0, x1, y1 in found],
                                                                  measured)):
            image[y0:y1, x0:x1] = patch
        return reuse.Fill(image, mask), area

    def infer(works: list[_Work]):
        in_flight.append((works, stylizer.submit(np.stack([w.net for w in works]), size=batch)))
        if len(in_flight) > 1 or not (overlap and stylizer.engine.queues):
            yield collect()

    def infer_flush():
        while in_flight:
            yield collect()

    def resize(picture: np.ndarray, geom: geometry.Geometry) -> np.ndarray:
        """Network size -> the size smoothing runs at."""
        picture = geometry.crop(picture, geom)
        return picture if small else geometry.grow(picture, geom)

    def finish(works: list[_Work]):
        for w in works:
            if w.out is not None:
                w.out = resize(w.out, w.geom)
            if w.fill is not None:
                w.fill = reuse.Fill(resize(w.fill.image, w.geom), resize(w.fill.mask, w.geom))
            yield w

    def smooth(work: _Work):
        f = work.frame
        if propagator:
            out = propagator.step(f.index, work.motion, key=work.out, fill=work.fill)
        else:
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
    engine = Stage("engine", infer_planned) if keyframes else Stage("engine", infer, infer_flush)
    return stages + [engine, Stage("finish", finish), Stage("temporal", smooth)]
