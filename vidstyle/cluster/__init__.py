"""Scale-out: a long file split into keyframe-aligned segments, or many files, on Ray.

``plan`` finds keyframes by demuxing (no decode), ``segment`` stylizes one segment
(with warm-up pre-roll frames whose output is dropped) into a video-only file,
``join`` remuxes the segment files without re-encoding and copies the source audio
once, ``run`` executes segments inline or on Ray. Ray is imported only by
``vidstyle.cluster.ray_exec``, and only when a cluster is asked for.
"""
from __future__ import annotations

from vidstyle.cluster.plan import Segment, SegmentPlan, plan_segments
from vidstyle.cluster.segment import transcode_segment
from vidstyle.cluster.join import join_segments

__all__ = ["Segment", "SegmentPlan", "plan_segments", "transcode_segment", "join_segments"]
