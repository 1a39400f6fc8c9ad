"""A part of a video named in seconds (ffmpeg's ``-ss`` and ``-t``), as the pts a FileSource decodes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from vidstyle.errors import InputError
from vidstyle.io.source import VideoInfo

# With B-frames a keyframe is decoded before the pictures shown just ahead of it, and
# demuxers seek by decode time, which runs ahead of presentation time by up to the
# reorder depth (16 frames at most in H.264 and HEVC). Seeking that much before the
# start lands on a keyframe shown at or before it, so no picture of the part is lost.
REORDER_FRAMES = 16


@dataclass(frozen=True)
class Span:
    """The pictures with pts in [start_pts, end_pts) of a video stream (``time_base``).

    ``start_pts`` None: from the first picture, no seek; ``end_pts`` None: to the end.
    Decoding starts at the keyframe at or before ``seek_pts``.
    """

    start_pts: int | None
    end_pts: int | None
    seek_pts: int | None
    time_base: Fraction
    frames: int | None  # expected pictures, from the stated rate and length; None if unknown

    @property
    def start(self) -> Fraction | None:
        """Where the part begins on the file's clock, in seconds (None: at its first picture)."""
        return None if self.start_pts is None else self.start_pts * self.time_base

    @property
    def end(self) -> Fraction | None:
        return None if self.end_pts is None else self.end_pts * self.time_base


def cut(info: VideoInfo, start: float = 0.0, duration: float | None = None) -> Span | None:
    """The part of ``info``'s video from ``start`` seconds after its first picture, lasting
    ``duration`` seconds (None: to the end); None when that is the whole video.

    A start at or past the end of a video that states its length is an InputError.
    """
    if not start >= 0:
        raise ValueError(f"start must be 0 or more seconds, got {start}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be more than 0 seconds, got {duration}")
    if not start and duration is None:
        return None
    if info.duration is not None and start >= info.duration:
        raise InputError(f"{info.path}: the video lasts {info.duration:.2f} s; nothing starts at {start:g} s")
    time_base = info.time_base
    first = info.first_pts or 0
    start_pts = first + round(Fraction(start) / time_base) if start else None
    end_pts = (start_pts or first) + round(Fraction(duration) / time_base) if duration is not None else None
    seek_pts = None
    if start_pts is not None:
        seek_pts = max(first, start_pts - round(REORDER_FRAMES * Fraction(info.frame_period) / time_base))
    frames = None
    if info.duration is not None and info.average_rate:
        length = min(info.duration - start, duration if duration is not None else math.inf)
        frames = max(1, math.ceil(length * float(info.average_rate) - 1e-6))
    return Span(start_pts, end_pts, seek_pts, time_base, frames)
