"""Offline transcoding: every frame, the source timestamps and the audio, in order."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import adapt, imageops, memory, styles
from . import temporal as temporal_mod
from .errors import Cancelled, InputError, OutputError
from .frame import Frame
from .io import EncodeSettings, FileSink, FileSource, probe
from .io.source import DECODE_ERRORS
from .pipeline import Pipeline, RunStats, Stage
from .stylize import Stylizer

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class TranscodeConfig:
    input: Path
    output: Path
    style: str = "7"
    strength: float = 1.0
    preserve_color: bool = False
    size: tuple[int, int] | int | None = None  # processing size; the output keeps the source size
    batch: int = 4
    engine: str = "auto"
    threads: int = 0  # engine intra-op threads; 0 = the runtime's default
    precision: str = "auto"  # auto | fp32 | bf16 | int8 (vidstyle.engines.PRECISIONS)
    model: str = "auto"  # the network for built-in styles: auto | multistyle26 | student26
    internal_scale: float = 1.0  # the network runs at this x the processing size (guided upsampling back)
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    queue_size: int = 8
    temporal: str = temporal_mod.DEFAULT_MODE  # off | ema | flow
    temporal_strength: float = temporal_mod.DEFAULT_STRENGTH
    on_decode_error: str = "stop"  # stop | skip: what an undecodable frame or an early end does
    keep_partial: bool = False  # on cancel, publish the finished frames as OUTPUT.partial.EXT
    # On cancel, stop waiting after this long for stages busy in one long call (an engine
    # batch); they end by themselves. None: wait for every thread (see Pipeline).
    cancel_wait: float | None = None


@dataclass
class TranscodeResult:
    output: Path
    frames: int
    stats: RunStats
    skipped: list[int] = field(default_factory=list)  # indexes of undecodable frames dropped
    notes: list[str] = field(default_factory=list)  # what the user should hear about (an early end...)

    @property
    def fps(self) -> float:
        return self.frames / self.stats.wall if self.stats.wall else 0.0


@dataclass
class _Work:
    """A frame on its way through prepare -> motion -> engine -> finish -> temporal."""

    frame: Frame
    geom: imageops.Geometry  # the processing size this frame was prepared at
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


def stylize_stages(stylizer: Stylizer, geom: imageops.Geometry | adapt.Fixed | adapt.Adaptive, batch: int,
                   temporal: temporal_mod.Temporal | None = None, smooth_at: str = "output",
                   overlap: bool = False) -> list[Stage]:
    """prepare -> [motion] -> batch -> engine -> finish -> temporal, shared by every frame source.

    ``geom`` is one processing size, or an :class:`vidstyle.adapt.Adaptive`
    ladder whose current rung each frame is prepared at (live video).
    Motion (optical flow between input frames) has its own thread so that it
    runs beside inference; the temporal stage then only warps and blends.
    Each owns its half of the smoothing state. ``smooth_at="processing"``
    smooths before the output is scaled up to the source size: flow and blend
    then cost in proportion to the (small) processing size, which is what a
    live picture can afford; ``"output"`` smooths the full-size frame.
    ``overlap`` (offline only: it holds each batch until the next one arrives) keeps one
    batch in flight on an engine that queues work on a device.
    """
    if smooth_at not in ("output", "processing"):
        raise ValueError(f"smooth_at must be 'output' or 'processing', not {smooth_at!r}")
    temporal = temporal or temporal_mod.Temporal()
    sizing = adapt.Fixed(geom) if isinstance(geom, imageops.Geometry) else geom
    small = smooth_at == "processing"

    def prepare(frame: Frame):
        g = sizing.current
        shrunk = imageops.shrink(frame.image, g)
        yield _Work(frame, g, shrunk, imageops.pad(shrunk, g))

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
        if len(in_flight) > 1 or not (overlap and hasattr(stylizer.engine, "submit")):
            yield collect()

    def infer_flush():
        while in_flight:
            yield collect()

    def finish(works: list[_Work]):
        for w in works:
            w.out = imageops.crop(w.out, w.geom)
            if not small:
                w.out = imageops.grow(w.out, w.geom)
            yield w

    def smooth(work: _Work):
        f = work.frame
        out = temporal.blend(f.index, work.out, work.motion)
        if small:
            # A plain resize. Guided upsampling (vidstyle.guided) came closer to the full-size
            # stylization in every measured case, but by little (SSIM +0.002..0.011 from 160x120)
            # and, inside this one-frame-in-flight loop, cost 2 cores ~4 fps (26 -> 21) and
            # +10 ms p50: benchmarks/internal_scale.py, issue 7.
            out = imageops.grow(out, work.geom)
        yield Frame(f.index, f.pts, f.time_base, stylizer.touch_up(np.ascontiguousarray(out), f.image), f.captured)

    process, flush = batcher(batch)
    stages = [Stage("prepare", prepare), Stage("batch", process, flush), Stage("engine", infer, infer_flush),
              Stage("finish", finish), Stage("temporal", smooth)]
    if temporal.needs_motion:
        stages.insert(1, Stage("motion", motion))
    return stages


def partial_path(output: Path) -> Path:
    """Where an interrupted transcode keeps its finished frames: OUT.partial.EXT."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def transcode(config: TranscodeConfig, progress: Progress | None = None,
              on_pipeline: Callable[[Pipeline], None] | None = None) -> TranscodeResult:
    """Stylize ``config.input`` into ``config.output``.

    Everything a user can get wrong (input, style, output folder, a frame too
    big for this machine's memory) is checked before the first frame is
    decoded. The output appears only when complete; on any failure nothing is
    left behind. A cancel leaves nothing either, or with ``keep_partial`` the
    frames finished so far in :func:`partial_path` (raised ``Cancelled`` says
    which). ``on_pipeline`` receives the pipeline before it starts (to cancel
    it from another thread).
    """
    if config.batch < 1:
        raise ValueError("batch must be at least 1")
    if config.on_decode_error not in DECODE_ERRORS:
        raise ValueError(f"on_decode_error must be one of {', '.join(DECODE_ERRORS)}, not {config.on_decode_error!r}")
    info = probe(config.input)
    style = styles.parse(config.style)
    smoother = temporal_mod.create(config.temporal, config.temporal_strength)
    geom = imageops.plan(info.width, info.height, config.size)
    stages = 6 + smoother.needs_motion  # prepare, [motion], batch, engine, finish, temporal, encode
    queue_size = memory.plan_queue(geom, config.batch, stages, config.queue_size, info.frame_count)
    # The sink checks the output (same file as the input? writable folder?) before
    # the slow part: loading the engine.
    sink = FileSink(config.output, info, info.width, info.height, config.encode, audio_from=str(config.input))
    try:
        stylizer = Stylizer(style, strength=config.strength, preserve_color=config.preserve_color,
                            engine_name=config.engine, threads=config.threads, precision=config.precision,
                            model=config.model, internal_scale=config.internal_scale)
        source = FileSource(config.input, on_decode_error=config.on_decode_error)
    except BaseException:
        sink.abort()
        raise
    written = 0

    def encode(frame: Frame):
        nonlocal written
        sink.write(frame)
        written += 1
        if progress:
            progress(written, info.frame_count)
        return ()

    def finalize():
        if not written:  # every frame was skipped as undecodable
            raise InputError(f"{config.input}: not one frame could be decoded")
        sink.close()  # flush the encoder, finish the audio, rename into place
        return ()

    pipeline = Pipeline(source.frames, stylize_stages(stylizer, geom, config.batch, smoother, overlap=True)
                        + [Stage("encode", encode, finalize)], queue_size=queue_size,
                        cancel_wait=config.cancel_wait)
    try:
        if on_pipeline:
            on_pipeline(pipeline)
        stats = pipeline.run()
    except Cancelled:
        raise _stopped(config, sink, info.frame_count) from None
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    return TranscodeResult(Path(config.output), written, stats, list(source.skipped), list(source.notes))


def _stopped(config: TranscodeConfig, sink: FileSink, total: int | None) -> Cancelled:
    """After a cancel: keep the finished frames as OUT.partial.EXT if asked, else nothing.

    The sink counts the frames: an encode stage left running (``cancel_wait``)
    may still add one until the sink is closed."""
    target = partial_path(config.output)
    if not config.keep_partial or not sink.frames:
        sink.abort()
        return Cancelled("no frame was finished; nothing was written" if config.keep_partial else "cancelled")
    if target.exists() and os.path.samefile(target, config.input):
        sink.abort()
        return Cancelled(f"{target} is the input; nothing was written")
    try:
        # Flushing the encoder and cutting the audio at the last frame: a playable file.
        kept = sink.close(partial=True, path=target)
        count = sink.frames
        return Cancelled(f"kept {count} of {total} frames in {kept}" if total else f"kept {count} frame(s) in {kept}",
                         count, total, kept)
    except OutputError as error:  # e.g. the disk filled; the sink removed its temp file
        return Cancelled(f"could not keep the {sink.frames} finished frame(s) ({error}); nothing was written")
