"""Stylize one segment of a file into a video-only segment file, with the source timestamps.

The frames of the segment and ``preroll`` frames before it are decoded (from the
keyframe at or before the first pre-roll frame) and run through the same stages
as :func:`vidstyle.offline.transcode` (:func:`stylize_stages`); the pre-roll's
output only warms temporal smoothing and is dropped before the encoder.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from vidstyle.processing import geometry
from vidstyle.pipeline import memory
from vidstyle.errors import InputError
from vidstyle.frame import Frame
from vidstyle.io import FileSink
from vidstyle.io.source import FileSource
from vidstyle.pipeline.runner import Pipeline, Stage
from vidstyle.pipeline.stylizer import Stylizer
from vidstyle.offline import TranscodeConfig
from vidstyle.pipeline.stages import stylize_stages
from vidstyle.cluster.plan import Segment

# Tests (and chaos drills) make a segment fail once: while the file this names exists, the
# first segment run that removes it raises, or, if the file says "exit", ends its process
# as a crashed or OOM-killed worker would.
FAIL_ONCE_ENV = "VIDSTYLE_CLUSTER_FAIL_ONCE"


class InjectedFailure(RuntimeError):
    pass


# Every segment starts with a keyframe, and a keyframe redraws the picture from scratch
# where the frames before it carried their coding noise forward: a small pulse at each
# join. Spending LANDING_BITS x the bits on the last LANDING frames before a join brings
# them closer to the keyframe: at crf 18 the pulse on the sample went from +0.49 to +0.32
# levels (a keyframe x264 places itself: +0.46), for a few frames' bits per segment.
LANDING = 5
LANDING_BITS = 3


def landing_options(codec: str, frames: int, last: bool) -> dict[str, str]:
    """Encoder options for a segment of ``frames`` frames (``last``: no join after it)."""
    if last or frames <= LANDING or codec != "libx264":  # measured with x264 only
        return {}
    return {"x264-params": f"zones={frames - LANDING},{frames - 1},b={LANDING_BITS}"}


def segment_source(config: TranscodeConfig, segment: Segment) -> FileSource:
    """A FileSource of ``segment.preroll_pts`` up to (not including) ``segment.end_pts``, indexed globally."""
    # Segment 0 starts at the file's first frame: no seek, exactly the single run's decode.
    seek = segment.seek_pts != segment.preroll_pts or segment.start > 0
    return FileSource(config.input, on_decode_error=config.on_decode_error,
                      start_pts=segment.preroll_pts if seek else None, seek_pts=segment.seek_pts,
                      end_pts=segment.end_pts, first_index=segment.start - segment.preroll)


def skipped_path(output) -> Path:
    """Where a finished segment lists the frames it skipped as undecodable (absent: none)."""
    output = Path(output)
    return output.with_name(output.name + ".skipped")


def read_skipped(output) -> list[int]:
    try:
        return [int(word) for word in skipped_path(output).read_text().split()]
    except FileNotFoundError:
        return []


def _maybe_fail(segment: Segment) -> None:
    flag = os.environ.get(FAIL_ONCE_ENV)
    if flag:
        try:
            with open(flag) as f:
                how = f.read().strip()
            os.unlink(flag)
        except FileNotFoundError:
            return
        if how == "exit":
            os._exit(70)
        raise InjectedFailure(f"injected failure in segment {segment.number} ({FAIL_ONCE_ENV})")


def transcode_segment(config: TranscodeConfig, segment: Segment, output,
                      stylizer: Stylizer | None = None,
                      progress: Callable[[int], None] | None = None,
                      on_pipeline: Callable[[Pipeline], None] | None = None) -> int:
    """Write ``segment`` of ``config.input`` to ``output`` (video only); returns the frames written.

    ``output`` appears only when complete (the sink writes a hidden temp file and renames it).
    ``progress(1)`` is called per frame written; ``on_pipeline`` gets the pipeline before it
    runs, so that another thread can cancel it (it then raises Cancelled).
    """
    _maybe_fail(segment)
    source = segment_source(config, segment)
    info = source.info
    smoother = config.smoother()
    geom = geometry.plan(info.width, info.height, config.size)
    queue_size = memory.plan_queue(geom, config.batch, 6 + smoother.needs_motion, config.queue_size,
                                   segment.frames + segment.preroll)
    sink = FileSink(output, info, info.width, info.height, config.encode, audio_from=None,
                    options=lambda codec: landing_options(codec, segment.frames, segment.end_pts is None))
    written = 0

    def encode(frame: Frame):
        nonlocal written
        if frame.pts is not None and frame.pts < segment.start_pts:
            return ()  # pre-roll: it warmed the smoothing, its picture belongs to the previous segment
        sink.write(frame)
        written += 1
        if progress:
            progress(1)
        return ()

    def finalize():
        # Frames skipped in the pre-roll belong to the previous segment, which counts them.
        skipped = [i for i in source.skipped if i >= segment.start]
        if written + len(skipped) != segment.frames:
            raise InputError(f"{config.input}: segment {segment.number} decoded {written} of its "
                             f"{segment.frames} frames")
        # Written before the segment file appears, so that a finished segment (reused by
        # --resume too) always has its list.
        listing = skipped_path(output)
        if skipped:
            listing.write_text(" ".join(map(str, skipped)) + "\n")
        else:
            listing.unlink(missing_ok=True)
        sink.close()
        return ()

    try:
        stylizer = stylizer or config.stylizer()
        pipeline = Pipeline(source.frames,
                            stylize_stages(stylizer, geom, config.batch, smoother, keyframes=config.keyframes())
                            + [Stage("encode", encode, finalize)], queue_size=queue_size)
        if on_pipeline:
            on_pipeline(pipeline)
        pipeline.run()
    except BaseException:
        sink.abort()
        raise
    finally:
        source.close()
    return written
