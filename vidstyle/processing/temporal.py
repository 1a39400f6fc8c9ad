"""Temporal smoothing: stylized video without flicker and without ghosts.

``create(mode, strength)`` makes a smoother: ``off``; ``ema`` (blend with the previous
output, no motion: trades flicker for trails); ``flow`` (the default): the previous
*output* carried along the optical flow of the *input* (DIS MEDIUM on luminance, the
longer side at most FLOW_SIDE) and blended into the current stylized frame per pixel:
``strength`` of the history where the input is static, a step of at most MOVING_STEP
toward the current frame where it moves, and no history where the warped input
disagrees with the current one or the flow leaves the frame. A scene cut, a dropped
frame or a size change starts the history afresh.

The work is split over two threads: :meth:`Temporal.observe` (flow between consecutive
input frames, which needs no stylized pixels and so runs beside inference) and
:meth:`Temporal.blend` (warp and blend). Each keeps its own state and must be called in
frame order from one thread. What was tried and measured: docs/design-notes.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np

MODES = ("off", "ema", "flow")
DEFAULT_MODE = "flow"
DEFAULT_STRENGTH = 0.95

FLOW_SIDE = 640  # flow runs on luminance with the longer side scaled to at most this
FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM  # coarser flow misaligns the history enough to show as flicker
PHOTO_NOISE = 0.04  # photometric mismatch (on [0, 1]) that compression and sensor noise alone cause ...
PHOTO_SIGMA = 0.10  # ... and the scale of the excess beyond it at which the warped history loses trust
CHANGE_LOW, CHANGE_HIGH = 0.04, 0.06  # input change (on [0, 1]) from "static" to "moving"
MOVING_STEP = 0.04  # where the input moves, the most the output may differ from warped history (on [0, 1]) ...
MOVING_FLOOR = 0.3  # ... yet at least this share of trusted history is kept (a pan: all moves, little swims)
DIS_MIN_SIDE = 12  # OpenCV's DIS needs the width or the height to be at least this
CUT_ERROR = 0.04  # a scene cut: the mean photometric mismatch after warping (the sample clip peaks at 0.011)


@dataclass
class Motion:
    """Input frame ``index`` relative to input frame ``prev_index``, at flow resolution."""

    index: int
    prev_index: int
    flow: np.ndarray  # float32 h x w x 2: where each pixel of this frame was in the previous one
    trust: np.ndarray  # float32 h x w in [0, 1]: how far the warped history can be trusted here
    moving: np.ndarray  # float32 h x w in [0, 1]: 0 where the input is static, 1 where it moves
    cut: bool
    colour: np.ndarray | None = None  # uint8 h x w x 3: this input frame, lightly blurred, at flow size


@functools.lru_cache(maxsize=8)
def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (xs, ys) of an h x w picture, float32, read-only: remap's identity."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


class FlowEstimator:
    """DIS flow between consecutive input frames, how far to trust it, and where the input moves.

    Trust is 1 where the warped previous frame matches the current one up to
    noise; it falls with photometric mismatch (occlusion, disocclusion, wrong
    flow, light change), and is 0 where the flow leaves the frame.
    """

    def __init__(self, side: int = FLOW_SIDE, preset: int = FLOW_PRESET):
        self.side = side
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._prev: tuple[int, np.ndarray, np.ndarray] | None = None  # index, luminance, colour
        self._kernel = np.ones((3, 3), np.uint8)

    @property
    def colour(self) -> np.ndarray | None:
        """The last frame seen, lightly blurred, at flow size (as ``Motion.colour``)."""
        return self._prev[2] if self._prev else None

    def _small(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Luminance for the flow, and lightly blurred colour for the checks, at flow size."""
        h, w = rgb.shape[:2]
        scale = min(1.0, self.side / max(h, w))
        if scale < 1.0:
            rgb = cv2.resize(rgb, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.GaussianBlur(rgb, (3, 3), 0)

    def __call__(self, index: int, rgb: np.ndarray) -> Motion | None:
        g, cur = self._small(rgb)
        prev, self._prev = self._prev, (index, g, cur)
        # DIS refuses pictures without a side of 12 px; a frame that small has no
        # motion worth following, so each one starts afresh.
        if prev is None or prev[1].shape != g.shape or max(g.shape) < DIS_MIN_SIDE:
            return None
        prev_index, gp, before = prev
        h, w = g.shape
        xs, ys = grid(h, w)
        flow = self._dis.calc(g, gp, None)  # this frame -> previous
        mx, my = xs + flow[..., 0], ys + flow[..., 1]
        diff = cv2.absdiff(cur, cv2.remap(before, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        # In colour, not luminance: a red object over a grey wall of the same brightness
        # is still an occlusion.
        trust = _TRUST[channel_max(diff)]
        trust[(mx < 0) | (mx > w - 1) | (my < 0) | (my > h - 1)] = 0.0
        # Distrust a pixel's neighbours too: the edges of a moving object are where
        # flow is least reliable and where trails would show.
        trust = cv2.erode(trust, self._kernel)
        moving = _MOVING[cv2.GaussianBlur(channel_max(cv2.absdiff(cur, before)), (3, 3), 0)]
        cut = sum(cv2.mean(diff)[:3]) / (3 * 255) > CUT_ERROR
        return Motion(index, prev_index, flow, trust, moving, cut, cur)


def _channel_sum(rgb: np.ndarray) -> np.ndarray:
    r, g, b = cv2.split(rgb)
    return cv2.add(cv2.add(r, g, dtype=cv2.CV_16U), b, dtype=cv2.CV_16U)


def channel_max(rgb: np.ndarray) -> np.ndarray:
    r, g, b = cv2.split(rgb)
    return cv2.max(cv2.max(r, g), b)


# Tables: uint8 mismatch -> trust; uint8 change -> how much the input moves.
_LEVELS = np.arange(256, dtype=np.float32) / 255
_TRUST = np.exp(-(np.maximum(_LEVELS - PHOTO_NOISE, 0.0) / PHOTO_SIGMA) ** 2).astype(np.float32)
_MOVING = np.clip((_LEVELS - CHANGE_LOW) / (CHANGE_HIGH - CHANGE_LOW), 0.0, 1.0).astype(np.float32)
# summed RGB gap between warped history and the current frame -> share of history kept
_GAPS = np.arange(3 * 255 + 1, dtype=np.float32) / (3 * 255)
_CAPPED = np.maximum(1.0 - MOVING_STEP / np.maximum(_GAPS, MOVING_STEP), MOVING_FLOOR).astype(np.float32)


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

    ``strength`` scales the share of warped history kept everywhere: 0 is per-frame
    stylization, 1 keeps all trusted history of a static area.
    """

    mode = "flow"
    needs_motion = True

    def __init__(self, strength: float = DEFAULT_STRENGTH, **estimator_options):
        super().__init__(strength)
        self.estimator = FlowEstimator(**estimator_options)
        self._prev: tuple[int, np.ndarray] | None = None

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

    def warp(self, history: np.ndarray, motion: Motion) -> np.ndarray:
        """``history`` (a frame's output) carried along ``motion`` to the next frame."""
        h, w = history.shape[:2]
        fh, fw = motion.flow.shape[:2]
        xs, ys = grid(h, w)
        if (fw, fh) == (w, h):
            map_x, map_y = xs + motion.flow[..., 0], ys + motion.flow[..., 1]
        else:
            flow = cv2.resize(motion.flow, (w, h), interpolation=cv2.INTER_LINEAR)
            map_x, map_y = xs + flow[..., 0] * (w / fw), ys + flow[..., 1] * (h / fh)
        # Bicubic: the history is resampled every frame, and bilinear blurs it away
        # (the output kept 42% of per-frame detail with bilinear, 61% with bicubic).
        return cv2.remap(history, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)

    def _blend(self, history: np.ndarray, current: np.ndarray, motion: Motion) -> np.ndarray:
        h, w = current.shape[:2]
        fh, fw = motion.flow.shape[:2]
        same = (fw, fh) == (w, h)
        warped = self.warp(history, motion)
        if same:
            near, now = warped, current
        else:
            near = cv2.resize(warped, (fw, fh), interpolation=cv2.INTER_AREA)
            now = cv2.resize(current, (fw, fh), interpolation=cv2.INTER_AREA)
        # Where the input moves: step from the history toward the current stylization
        # by at most MOVING_STEP (see the module docstring).
        capped = _CAPPED[_channel_sum(cv2.absdiff(near, now))]
        keep = 1.0 - motion.moving * (1.0 - capped)
        alpha = motion.trust * keep * np.float32(self.strength)
        if not same:
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.blendLinear(warped, current, alpha, 1.0 - alpha)


def create(mode: str = DEFAULT_MODE, strength: float = DEFAULT_STRENGTH, flow_side: int = FLOW_SIDE) -> Temporal:
    """A smoother; ``flow_side`` caps the flow's resolution (live video trades some of its accuracy for time)."""
    kinds = {"off": Temporal, "ema": Ema, "flow": Flow}
    if mode not in kinds:
        raise ValueError(f"unknown temporal mode {mode!r}; choose one of {', '.join(MODES)}")
    return Flow(strength, side=flow_side) if mode == "flow" else kinds[mode](strength)


def smooth(inputs: Iterable[np.ndarray], stylized: Iterable[np.ndarray],
           temporal: Temporal) -> Iterator[np.ndarray]:
    """Apply ``temporal`` to a finished per-frame stylization, on one thread."""
    for index, (rgb, frame) in enumerate(zip(inputs, stylized)):
        yield temporal.blend(index, frame, temporal.observe(index, rgb))
