"""Offline transcoding: every frame, the source timestamps and the audio, in order.

``transcode(TranscodeConfig)`` checks everything a user can get wrong before the first
frame is decoded, then runs FileSource -> the shared stylize stages (one batch kept in
flight on an engine that queues) -> encode (FileSink) as one Pipeline. The output
appears only when complete; a cancel keeps nothing, or the finished frames as
``OUT.partial.EXT`` with ``keep_partial``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vidstyle.errors import Cancelled, InputError, OutputError
from vidstyle.frame import Frame
from vidstyle.io import EncodeSettings, FileSink, FileSource, probe
from vidstyle.io.sink import check_target
from vidstyle.io.source import DECODE_ERRORS
from vidstyle.io.span import cut
from vidstyle.pipeline import memory
from vidstyle.pipeline.runner import Pipeline, RunStats, Stage
from vidstyle.pipeline.stages import stylize_stages
from vidstyle.pipeline.stylizer import StylizeSettings
from vidstyle.processing import geometry, styles
from vidstyle.processing.reuse import ReuseStats

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class TranscodeConfig(StylizeSettings):
    """A transcode: the input, the output, and how to stylize (the StylizeSettings fields, by keyword)."""

    input: Path
    output: Path
    batch: int = 4
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    queue_size: int = 8
    on_decode_error: str = "stop"  # stop | skip: what an undecodable frame or an early end does
    keep_partial: bool = False  # on cancel, publish the finished frames as OUTPUT.partial.EXT
    # On cancel, stop waiting after this long for stages busy in one long call (an engine
    # batch); they end by themselves. None: wait for every thread (see Pipeline).
    cancel_wait: float | None = None
    # A part only (ffmpeg's -ss and -t): from ``start`` seconds after the first picture,
    # ``duration`` seconds long (None: to the end); the output's clock starts at 0 there.
    start: float = 0.0
    duration: float | None = None
    overwrite: bool = True  # False: an existing output is an OutputError, found before any work


@dataclass
class TranscodeResult:
    output: Path
    frames: int
    stats: RunStats
    skipped: list[int] = field(default_factory=list)  # indexes of undecodable frames dropped
    notes: list[str] = field(default_factory=list)  # what the user should hear about (an early end...)
    reuse: ReuseStats | None = None  # keyframes and fills, when work was reused across frames

    @property
    def fps(self) -> float:
        return self.frames / self.stats.wall if self.stats.wall else 0.0


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
    span = cut(info, config.start, config.duration)
    expected = span.frames if span else info.frame_count
    style = styles.parse(config.style)
    smoother = config.smoother()
    keyframes = config.keyframes()
    geom = geometry.plan(info.width, info.height, config.size)
    stages = 6 + smoother.needs_motion  # prepare, [motion], batch, engine, finish, temporal, encode
    queue_size = memory.plan_queue(geom, config.batch, stages, config.queue_size, expected)
    # The sink checks the output (same file as the input? writable folder?) before
    # the slow part: loading the engine.
    check_target(config.output, [config.input], overwrite=config.overwrite)
    sink = FileSink(config.output, info, info.width, info.height, config.encode, audio_from=str(config.input),
                    start=span and span.start, end=span and span.end)
    try:
        stylizer = config.stylizer(style)
        source = FileSource(config.input, on_decode_error=config.on_decode_error,
                            start_pts=span and span.start_pts, end_pts=span and span.end_pts,
                            seek_pts=span and span.seek_pts)
    except BaseException:
        sink.abort()
        raise
    written = 0

    def encode(frame: Frame):
        nonlocal written
        sink.write(frame)
        written += 1
        if progress:
            progress(written, expected)
        return ()

    def finalize():
        if not written and span and not source.skipped:
            until = f" and {config.start + config.duration:g} s" if config.duration is not None else ""
            raise InputError(f"{config.input}: no picture {'between' if until else 'after'} "
                             f"{config.start:g} s{until}")
        if not written:  # every frame was skipped as undecodable
            raise InputError(f"{config.input}: not one frame could be decoded")
        sink.close()  # flush the encoder, finish the audio, rename into place
        return ()

    pipeline = Pipeline(source.frames, stylize_stages(stylizer, geom, config.batch, smoother, overlap=True,
                                                       keyframes=keyframes)
                        + [Stage("encode", encode, finalize)], queue_size=queue_size,
                        cancel_wait=config.cancel_wait)
    try:
        if on_pipeline:
            on_pipeline(pipeline)
        stats = pipeline.run()
    except Cancelled:
        raise _stopped(config, sink, expected) from None
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    return TranscodeResult(Path(config.output), written, stats, list(source.skipped), list(source.notes),
                           keyframes.stats if keyframes else None)


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
