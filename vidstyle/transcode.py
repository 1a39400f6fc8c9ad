"""Offline transcoding: every frame, the source timestamps and the audio, in order."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import imageops, styles
from .frame import Frame
from .io import EncodeSettings, FileSink, FileSource, probe
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
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    queue_size: int = 8


@dataclass
class TranscodeResult:
    output: Path
    frames: int
    stats: RunStats

    @property
    def fps(self) -> float:
        return self.frames / self.stats.wall if self.stats.wall else 0.0


@dataclass
class _Work:
    """A frame on its way through prepare -> engine -> finish."""

    frame: Frame
    net: np.ndarray
    out: np.ndarray | None = None

    @property
    def index(self) -> int:
        return self.frame.index


def _batcher(size: int) -> tuple[Callable, Callable]:
    pending: list[_Work] = []

    def process(work: _Work):
        pending.append(work)
        if len(pending) == size:
            yield pending.copy()
            pending.clear()

    def flush():
        if pending:
            yield pending.copy()
            pending.clear()

    return process, flush


def stylize_stages(stylizer: Stylizer, geom: imageops.Geometry, batch: int) -> list[Stage]:
    """prepare -> batch -> engine -> finish, shared by every frame source."""

    def prepare(frame: Frame):
        yield _Work(frame, imageops.prepare(frame.image, geom))

    def infer(works: list[_Work]):
        out = stylizer.run(np.stack([w.net for w in works]), size=batch)
        for w, o in zip(works, out):
            w.out = o
        yield works

    def finish(works: list[_Work]):
        for w in works:
            f = w.frame
            yield Frame(f.index, f.pts, f.time_base, stylizer.finish(w.out, f.image, geom), f.captured)

    process, flush = _batcher(batch)
    return [Stage("prepare", prepare), Stage("batch", process, flush), Stage("engine", infer), Stage("finish", finish)]


def transcode(config: TranscodeConfig, progress: Progress | None = None,
              on_pipeline: Callable[[Pipeline], None] | None = None) -> TranscodeResult:
    """Stylize ``config.input`` into ``config.output``.

    Everything a user can get wrong (input, style, output folder) is checked
    before the first frame is decoded. The output appears only when complete;
    on any failure or cancellation nothing is left behind.
    ``on_pipeline`` receives the pipeline before it starts (to cancel it from
    another thread).
    """
    if config.batch < 1:
        raise ValueError("batch must be at least 1")
    info = probe(config.input)
    style = styles.parse(config.style)
    # The sink checks the output (same file as the input? writable folder?) before
    # the slow part: loading the engine.
    sink = FileSink(config.output, info, info.width, info.height, config.encode, audio_from=str(config.input))
    try:
        stylizer = Stylizer(style, strength=config.strength, preserve_color=config.preserve_color,
                            engine_name=config.engine, threads=config.threads)
    except BaseException:
        sink.abort()
        raise
    geom = imageops.plan(info.width, info.height, config.size)
    source = FileSource(config.input)
    written = 0

    def encode(frame: Frame):
        nonlocal written
        sink.write(frame)
        written += 1
        if progress:
            progress(written, info.frame_count)
        return ()

    def finalize():
        sink.close()  # flush the encoder, finish the audio, rename into place
        return ()

    stages = stylize_stages(stylizer, geom, config.batch) + [Stage("encode", encode, finalize)]
    pipeline = Pipeline(source.frames, stages, queue_size=config.queue_size)
    try:
        if on_pipeline:
            on_pipeline(pipeline)
        stats = pipeline.run()
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    return TranscodeResult(Path(config.output), written, stats)
