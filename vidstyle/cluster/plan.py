"""Keyframe-aligned segments of a video file, found by demuxing packets (nothing decoded)."""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from pathlib import Path

from vidstyle.io.source import open_input
from vidstyle.errors import InputError

# Temporal smoothing keeps `strength` of its history per frame where the picture stands
# still, so a segment that starts it cold differs from the single run there by strength**n
# after n frames. Pre-roll lasts until SETTLE of that cold start is left: 90 frames at the
# default 0.95. 16 frames (0.44 left) made joins on a still real clip 1.8-2.5x rougher than
# the single run at the same frames; synthetic clips, which move everywhere, hid it.
SETTLE = 0.01
MAX_PREROLL = 300
MIN_SEGMENT = 250  # frames; and at least PREROLL_SHARE_INVERSE x the pre-roll, so it costs <= 10%
PREROLL_SHARE_INVERSE = 10


def preroll_frames(temporal: str, strength: float) -> int:
    """Frames decoded before a segment's start so that its smoothing starts warm (0 without smoothing)."""
    if temporal == "off" or strength <= 0:
        return 0
    if strength >= 1:
        return MAX_PREROLL
    return min(MAX_PREROLL, math.ceil(math.log(SETTLE) / math.log(strength)))


def default_segment_frames(preroll: int) -> int:
    return max(MIN_SEGMENT, PREROLL_SHARE_INVERSE * preroll)


@dataclass(frozen=True)
class Segment:
    """Frames [start, end) (indexes in presentation order) = pts [start_pts, end_pts).

    ``preroll_pts`` is the first frame decoded (``preroll`` frames before start; their
    output is dropped) and ``seek_pts`` the keyframe at or before it, where decoding begins.
    """

    number: int
    start: int
    end: int
    start_pts: int
    end_pts: int | None  # None: to the end of the file
    preroll: int
    preroll_pts: int
    seek_pts: int

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class SegmentPlan:
    path: str
    frame_count: int
    keyframes: list[int]  # frame indexes of keyframes
    segments: list[Segment]


def scan(path) -> tuple[list[int], list[int]]:
    """(every frame's pts in presentation order, the pts of keyframes), from packets only."""
    p = Path(path)
    with open_input(p) as container:
        if not container.streams.video:
            raise InputError(f"{p}: no video stream")
        stream = container.streams.video[0]
        pts, keys = [], []
        for packet in container.demux(stream):
            if packet.pts is None or not packet.size:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    if not pts:
        raise InputError(f"{p}: the video stream has no frames")
    pts.sort()
    return pts, sorted(keys)


def plan_segments(path, segment_frames: int, preroll: int) -> SegmentPlan:
    """Cut at keyframes into segments of at least ``segment_frames`` frames (the last may be shorter)."""
    if segment_frames < 1:
        raise ValueError("segment_frames must be at least 1")
    pts, keys = scan(path)
    index_of = {p: i for i, p in enumerate(pts)}
    key_index = sorted(index_of[k] for k in keys if k in index_of) or [0]
    if key_index[0] != 0:
        key_index.insert(0, 0)  # frames before the first keyframe (an open GOP) go with segment 0
    starts = [0]
    for k in key_index[1:]:
        if k - starts[-1] >= segment_frames:
            starts.append(k)
    segments = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(pts)
        first = max(0, start - preroll)
        seek = key_index[bisect.bisect_right(key_index, first) - 1]
        segments.append(Segment(n, start, end, pts[start], pts[end] if end < len(pts) else None,
                                start - first, pts[first], pts[seek]))
    return SegmentPlan(str(path), len(pts), key_index, segments)
