"""Temporal smoothing: stylized video without flicker and without ghosts.

Per-frame stylization flickers: the network answers every small change of its
input (noise, compression, a sub-pixel shift, a hand moving elsewhere in the
frame, which shifts instance-norm statistics) with a different brush texture.
Denoising the input first was tried and removes little of it (excess 44 -> 34
on the sample clip), so vidstyle smooths the output.

``flow`` carries the previous *output* forward along the optical flow of the
*input* and blends it into the current stylized frame, recursively, per pixel,
with a weight that is high only where

- the warped previous input matches the current one up to noise: occlusions,
  disocclusions, motion boundaries and wrong flow fail this test, and pixels
  whose flow leaves the frame get no history at all (the weight is eroded, so
  a pixel next to a failure is not trusted either);
- the input is static. Where it moves, the history keeps only a small share
  (MOVING_SHARE): stylization of moving content changes for real, and blending
  more history there is what leaves trails.

A static area thus averages over many frames while moving things stay close to
their per-frame stylization. A scene cut restarts the history. A forward-
backward flow check and a gate on stylized disagreement were tried as well:
on the sample clip both cost more flicker than the ghosting they removed, so
the photometric check alone decides.

Work is split over two threads: :meth:`Temporal.observe` (flow between
consecutive input frames, which needs no stylized pixels and so runs beside
inference) and :meth:`Temporal.blend` (warp and blend). Each keeps its own
state and must be called in frame order from one thread.

``ema`` (blend with the previous output, no motion) is the baseline other tools
ship as "smooth"; it trades flicker for trails.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np

MODES = ("off", "ema", "flow")
DEFAULT_MODE = "flow"
DEFAULT_STRENGTH = 0.95

FLOW_SIDE = 320  # flow runs on luminance with the longer side scaled to this
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM  # ULTRAFAST/FAST misalign the history enough to show as flicker
PHOTO_NOISE = 0.04  # photometric mismatch (on [0, 1]) that compression and sensor noise alone cause ...
PHOTO_SIGMA = 0.10  # ... and the scale of the excess beyond it at which the warped history loses trust
CHANGE_LOW, CHANGE_HIGH = 0.04, 0.06  # input change (on [0, 1]) from "static" to "moving"
MOVING_SHARE = 0.4  # blend strength where the input moves, relative to static areas
CUT_ERROR = 0.04  # a scene cut: the mean photometric mismatch after warping (the sample clip peaks at 0.011)


@dataclass
class Motion:
    """Input frame ``index`` relative to input frame ``prev_index``, at flow resolution."""

    index: int
    prev_index: int
    flow: np.ndarray  # float32 h x w x 2: where each pixel of this frame was in the previous one
    weight: np.ndarray  # float32 h x w in [0, 1]: how much of the warped history to keep here
    cut: bool


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return xs, ys


class FlowEstimator:
    """Coarse DIS flow between consecutive input frames, and a per-pixel blend weight.

    The weight is 1 where the warped previous frame matches the current one up
    to noise and the input is static; it falls with photometric mismatch
    (occlusion, disocclusion, wrong flow, light change), to 0 where the flow
    leaves the frame, and to MOVING_SHARE where the input itself changed (ghosts
    appear where history is blended into moving content).
    """

    def __init__(self, side: int = FLOW_SIDE, preset: int = FLOW_PRESET):
        self.side = side
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._prev: tuple[int, np.ndarray] | None = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def _luma(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale = min(1.0, self.side / max(h, w))
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            g = cv2.resize(g, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return g

    def __call__(self, index: int, rgb: np.ndarray) -> Motion | None:
        g = self._luma(rgb)
        prev, self._prev = self._prev, (index, g)
        if prev is None or prev[1].shape != g.shape:
            return None
        prev_index, gp = prev
        h, w = g.shape
        if self._grid is None or self._grid[0].shape != g.shape:
            self._grid = _grid(g.shape)
        xs, ys = self._grid
        flow = self._dis.calc(g, gp, None)  # this frame -> previous
        mx, my = xs + flow[..., 0], ys + flow[..., 1]
        cur = cv2.GaussianBlur(g, (3, 3), 0).astype(np.float32) * (1 / 255)
        before = cv2.GaussianBlur(gp, (3, 3), 0).astype(np.float32) * (1 / 255)
        photo = np.abs(cur - cv2.remap(before, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        excess = np.maximum(photo - PHOTO_NOISE, 0.0) * (1 / PHOTO_SIGMA)
        weight = np.exp(-excess * excess)
        weight[(mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)] = 0.0
        # Distrust a pixel's neighbours too: the edges of a moving object are where
        # flow is least reliable and where trails would show.
        weight = cv2.erode(weight, self._kernel)
        change = cv2.GaussianBlur(np.abs(cur - before), (3, 3), 0)
        moving = np.clip((change - CHANGE_LOW) * (1 / (CHANGE_HIGH - CHANGE_LOW)), 0.0, 1.0)
        weight *= 1.0 - (1.0 - MOVING_SHARE) * moving
        cut = float(photo.mean()) > CUT_ERROR
        return Motion(index, prev_index, flow, weight, cut)


class Temporal:
    """Base: no smoothing."""

    mode = "off"
    needs_motion = False

    def __init__(self, strength: float = DEFAULT_STRENGTH):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"temporal strength must be between 0 and 1, got {strength}")
        self.strength = strength

    def observe(self, index: int, rgb: np.ndarray) -> Motion | None:
        """Called in frame order with each *input* frame (the motion thread)."""
        return None

    def blend(self, index: int, stylized: np.ndarray, motion: Motion | None) -> np.ndarray:
        """Called in frame order with each stylized frame (the blend thread)."""
        return stylized


class Ema(Temporal):
    """out = strength * previous out + (1 - strength) * current: the ghosting baseline."""

    mode = "ema"

    def __init__(self, strength: float = DEFAULT_STRENGTH):
        super().__init__(strength)
        self._prev: np.ndarray | None = None

    def blend(self, index, stylized, motion):
        if self._prev is None or self._prev.shape != stylized.shape or self.strength == 0:
            out = stylized
        else:
            out = cv2.addWeighted(self._prev, self.strength, stylized, 1.0 - self.strength, 0.0)
        self._prev = out
        return out


class Flow(Temporal):
    """Flow-guided recursive blending; see the module docstring.

    ``strength`` is the share of warped history kept where it is fully trusted.
    """

    mode = "flow"
    needs_motion = True

    def __init__(self, strength: float = DEFAULT_STRENGTH, **estimator_options):
        super().__init__(strength)
        self.estimator = FlowEstimator(**estimator_options)
        self._prev: tuple[int, np.ndarray] | None = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    def observe(self, index, rgb):
        return self.estimator(index, rgb)

    def blend(self, index, stylized, motion):
        prev, self._prev = self._prev, None
        out = stylized
        # History continues only from the very frame the flow points back to: a
        # dropped frame (live mode), a cut or a size change starts afresh.
        if (prev is not None and motion is not None and not motion.cut and self.strength > 0
                and motion.prev_index == prev[0] and prev[1].shape == stylized.shape):
            out = self._blend(prev[1], stylized, motion)
        self._prev = (index, out)
        return out

    def _blend(self, history: np.ndarray, current: np.ndarray, motion: Motion) -> np.ndarray:
        h, w = current.shape[:2]
        fh, fw = motion.flow.shape[:2]
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = _grid((h, w))
        xs, ys = self._grid
        flow = cv2.resize(motion.flow, (w, h), interpolation=cv2.INTER_LINEAR)
        warped = cv2.remap(history, xs + flow[..., 0] * (w / fw), ys + flow[..., 1] * (h / fh),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.resize(motion.weight * self.strength, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(warped, current, alpha, 1.0 - alpha)


def create(mode: str = DEFAULT_MODE, strength: float = DEFAULT_STRENGTH) -> Temporal:
    kinds = {"off": Temporal, "ema": Ema, "flow": Flow}
    if mode not in kinds:
        raise ValueError(f"unknown temporal mode {mode!r}; choose one of {', '.join(MODES)}")
    return kinds[mode](strength)


def smooth(inputs: Iterable[np.ndarray], stylized: Iterable[np.ndarray],
           temporal: Temporal) -> Iterator[np.ndarray]:
    """Apply ``temporal`` to a finished per-frame stylization, on one thread."""
    for index, (rgb, frame) in enumerate(zip(inputs, stylized)):
        yield temporal.blend(index, frame, temporal.observe(index, rgb))
