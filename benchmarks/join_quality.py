"""Warping error at segment joins against elsewhere (the target: joins within 10% of elsewhere).

Joins always fall on the source's keyframes, and a keyframe is where the source itself
pulses (its coding noise starts afresh), so a single-machine run is rougher at those very
frame pairs too (1.2-1.4x on real clips, over 10x on one). :func:`join_excess` divides that
out by comparing with a single-machine output of the same settings, pair by pair.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import av
import numpy as np

from vidstyle.measure.metrics import pair_motion, pair_warp_error


def _frames(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def pair_errors(input_path, output_path) -> list[float]:
    """Warping error of output pair (i-1, i) along the input's motion, for every i >= 1."""
    inputs, outputs = _frames(input_path), _frames(output_path)
    if len(inputs) != len(outputs):
        raise ValueError(f"{output_path}: {len(outputs)} frames, the input has {len(inputs)}")
    return [pair_warp_error(outputs[i - 1], outputs[i], pair_motion(inputs[i - 1], inputs[i]))
            for i in range(1, len(inputs))]


@dataclass
class JoinQuality:
    at_joins: float  # mean warping error of the pairs that straddle a join (frame start-1 -> start)
    elsewhere: float
    joins: int

    @property
    def ratio(self) -> float:
        return self.at_joins / self.elsewhere if self.elsewhere else math.nan


def join_quality(errors: list[float], starts: list[int]) -> JoinQuality:
    """``errors[i-1]`` is pair (i-1, i); ``starts`` the first frame of each segment after the first."""
    at = {s - 1 for s in starts if s > 0}
    join = [e for i, e in enumerate(errors) if i in at and not math.isnan(e)]
    rest = [e for i, e in enumerate(errors) if i not in at and not math.isnan(e)]
    mean = lambda v: float(np.mean(v)) if v else math.nan  # noqa: E731
    return JoinQuality(mean(join), mean(rest), len(join))


def join_excess(errors: list[float], reference: list[float], starts: list[int]) -> float:
    """(segmented / reference at the joins) / (segmented / reference elsewhere): 1.0 when
    the joins add nothing to what the content does there. ``reference``: the same pairs
    of a single-machine output."""
    seg, ref = join_quality(errors, starts), join_quality(reference, starts)
    if not (ref.at_joins and ref.elsewhere and seg.elsewhere):
        return math.nan
    return (seg.at_joins / ref.at_joins) / (seg.elsewhere / ref.elsewhere)
