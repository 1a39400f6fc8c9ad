"""Carrying a picture over several frames of motion: a late keyframe brought to the present.

A live keyframe is stylized from frame k while the camera moves on; when it is ready,
frame m is being shown. :class:`Trail` keeps the last frames' flows (each from a frame
into the one before it) and composes the ones between k and m into one map, so the
keyframe is resampled once, not once per frame: each resampling blurs strokes a little.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from vidstyle.processing.temporal import Motion, grid

LENGTH = 45  # frames of motion kept: a keyframe later than this (1.5 s at 30 fps) is dropped


@dataclass(frozen=True)
class _Step:
    index: int
    colour: np.ndarray  # the frame's input at flow size, lightly blurred (Motion.colour)
    prev_index: int | None = None  # the frame the flow points back to; None: the chain starts here
    flow: np.ndarray | None = None


def compose(flows: list[np.ndarray]) -> np.ndarray:
    """One flow from the newest frame back to the oldest: ``flows`` newest first, each from
    its frame into the frame before it, all at one size."""
    total = flows[0].copy()
    h, w = total.shape[:2]
    xs, ys = grid(h, w)
    for flow in flows[1:]:
        # Where this pixel had got to, and the step that frame took from there.
        total += cv2.remap(flow, xs + total[..., 0], ys + total[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return total


def carry(picture: np.ndarray, flow: np.ndarray | None, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """``picture`` (of the oldest frame) carried along ``flow`` (a :func:`compose` result, at
    any resolution) to the newest frame, at the picture's size; None: no motion."""
    if flow is None:
        return picture
    h, w = picture.shape[:2]
    fh, fw = flow.shape[:2]
    if (fw, fh) != (w, h):
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([w / fw, h / fh])
    xs, ys = grid(h, w)
    return cv2.remap(picture, xs + flow[..., 0], ys + flow[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)


class Trail:
    """The motion of the last LENGTH frames: written in frame order by one thread, read by any."""

    def __init__(self, length: int = LENGTH):
        self._steps: deque[_Step] = deque(maxlen=length)
        self._lock = threading.Lock()

    def add(self, index: int, motion: Motion | None, colour: np.ndarray) -> None:
        """Frame ``index``, its motion from the frame before (None, or a cut: the chain
        restarts) and its input at flow size."""
        with self._lock:
            if motion is None or motion.cut or not self._steps or self._steps[-1].index != motion.prev_index:
                self._steps.clear()
                self._steps.append(_Step(index, colour))
            else:
                self._steps.append(_Step(index, colour, motion.prev_index, motion.flow))

    @property
    def newest(self) -> int | None:
        with self._lock:
            return self._steps[-1].index if self._steps else None

    def path(self, since: int) -> tuple[int, np.ndarray, np.ndarray | None] | None:
        """The newest frame's index, frame ``since``'s input and the flow from the newest
        frame back to it (None when ``since`` is the newest), or None when the chain does
        not reach back that far."""
        with self._lock:
            steps = list(self._steps)
        flows = []
        for step in reversed(steps):
            if step.index == since:
                return steps[-1].index, step.colour, compose(flows) if flows else None
            if step.flow is None:
                return None
            flows.append(step.flow)
        return None
