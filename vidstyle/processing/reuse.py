"""Reusing work across frames: stylize keyframes, carry them along the motion, refresh the rest.

:class:`KeyframePolicy` runs on the motion thread, in frame order, and decides for
each frame from its :class:`~vidstyle.processing.temporal.Motion` whether the network
runs on the whole frame (a keyframe), on crops around the regions the carried picture
no longer fits (a fill), or not at all. :class:`Propagator` runs on the temporal
thread, in frame order: it carries the keyframe's stylization along the flow, puts
the fresh pixels in, and hands the result to the flow smoother in place of a fresh
stylization. How it was chosen and what it measured: docs/reuse.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vidstyle.processing.temporal import Flow, Motion, channel_max, grid

MODES = ("auto", "off")  # or a number N: a keyframe every N frames
# Offline, auto trades more of the picture than its speed is worth on 2 cores; live, it keeps
# 480 px keyframes where every frame through the network settles at 128 px (docs/reuse.md).
DEFAULT = "off"
LIVE_DEFAULT = "auto"

UNTRUSTED = 0.5  # trust below this: the flow does not explain the pixel
MISMATCH = 20  # levels (of 255) between the carried keyframe input and the present one: refresh
STRAIN = 2.0  # how far the flow may bend a carried picture (summed strain) before it is refreshed
FILL_SHARE = 0.003  # a fill runs when the regions to refresh (noise removed) cover more than this share
KEY_SHARE = 0.3  # ... and a keyframe when they cover more than this
# Live video fills only a change this large: a fill there is the network at a small size, and
# its look differs from a keyframe's more than a stale patch does until the next keyframe
# lands (a fifth of a second): fills on every small region doubled the flicker (docs/reuse.md).
LIVE_FILL_SHARE = 0.3
DEBT_LIMIT = 1.5  # a keyframe when the refreshed shares since the last one add up to this
MAX_GAP = 30  # frames between keyframes at most, whatever the motion says
FILL_SCALE = 0.5  # a cheap fill runs the network at this x the processing size (guided upsampling back)
MARGIN = 48  # context around a recomputed region: its crop matches the whole frame to within a level
ALIGN = 32  # crop sides are rounded up to this, so the runtime sees a few shapes rather than one per crop
REGION_SHARE = 0.4  # crops covering more than this share of the frame: a cheap whole-frame fill instead
EDGE = 3  # pixels at the frame's edge left to Edges: trust there reflects sub-pixel flow outside the frame
EDGE_BAND = 2.0  # a side's band of new picture is refreshed once it is wider than this (flow pixels)


def parse(spec: str | int) -> int | str:
    """``auto``, ``off``, or N (a keyframe every N frames); ValueError otherwise."""
    text = str(spec).strip().lower()
    if text in MODES:
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise ValueError(f"--reuse takes auto, off or a number of frames N >= 1, not {spec!r}")


@dataclass(frozen=True)
class Plan:
    """What the network does for one frame."""

    key: bool = False  # run at full size; the frame becomes the new keyframe
    fill: bool = False  # recompute where the flow is not trusted
    regions: np.ndarray | None = None  # ... there: uint8 mask at flow resolution


@dataclass
class Fill:
    """Fresh stylization for part of a frame: ``image`` counts where ``mask`` (float32 0..1) is set."""

    image: np.ndarray
    mask: np.ndarray


def boxes(regions: np.ndarray, width: int, height: int, limit: tuple[int, int] | None = None,
          margin: int = MARGIN, align: int = ALIGN) -> list[tuple[int, int, int, int]]:
    """Crops (x0, y0, x1, y1) covering ``regions`` (a mask over a ``width`` x ``height`` frame,
    at any resolution) with ``margin`` of context, inside ``limit`` (the padded frame the
    crops are cut from; default the frame itself); sides multiples of 4, overlaps merged."""
    rh, rw = regions.shape
    sx, sy = width / rw, height / rh
    width, height = limit or (width, height)
    count, _, stats, _ = cv2.connectedComponentsWithStats(regions, connectivity=8)
    found = []
    for x, y, w, h, _ in stats[1:count]:
        found.append(_expand(int(x * sx) - margin, int(y * sy) - margin, int(np.ceil((x + w) * sx)) + margin,
                             int(np.ceil((y + h) * sy)) + margin, width, height, align))
    merged = True
    while merged:
        merged = False
        for i in range(len(found)):
            for j in range(i + 1, len(found)):
                a, b = found[i], found[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    found[i] = _expand(min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]),
                                       width, height, align)
                    del found[j]
                    merged = True
                    break
            if merged:
                break
    return found


def _expand(x0: int, y0: int, x1: int, y1: int, width: int, height: int, align: int) -> tuple[int, int, int, int]:
    """The box grown to sides that are multiples of ``align`` (4 at the frame's edge), inside the frame."""
    def side(lo: int, hi: int, limit: int) -> tuple[int, int]:
        lo, hi = max(0, lo), min(limit, hi)
        length = min(limit - limit % 4, -(-(hi - lo) // align) * align)
        length = max(4, length - length % 4)
        lo = min(lo, limit - length)
        return max(0, lo), max(0, lo) + length
    (x0, x1), (y0, y1) = side(x0, x1, width), side(y0, y1, height)
    return x0, y0, x1, y1


@dataclass
class ReuseStats:
    frames: int = 0
    keyframes: int = 0
    fills: int = 0  # frames the network ran on in part
    network_pixels: int = 0  # pixels the network computed, at the network's input size
    frame_pixels: int = 0  # ... and what every frame through it at full size would have been
    regions: list[float] = field(default_factory=list)  # per fill: share of the frame refreshed

    @property
    def network_work(self) -> float:
        """The network's arithmetic as a share of running it on every frame at full size."""
        return self.network_pixels / self.frame_pixels if self.frame_pixels else 0.0

    @property
    def recomputed(self) -> float:
        """Mean share of each frame's pixels that came from the network this frame."""
        return (self.keyframes + sum(self.regions)) / self.frames if self.frames else 0.0

    @property
    def filled(self) -> float:
        """Mean share of each frame's pixels that a fill recomputed (live video, where
        keyframes land beside the frames rather than in place of one)."""
        return sum(self.regions) / self.frames if self.frames else 0.0

    def as_dict(self) -> dict:
        return {"frames": self.frames, "keyframes": self.keyframes, "fills": self.fills,
                "network_work": round(self.network_work, 4), "recomputed": round(self.recomputed, 4)}


def _regions(raw: np.ndarray) -> np.ndarray:
    """uint8 mask: ``raw`` without scattered noise (refreshing it costs more than it shows),
    grown a little, since the edges of what changed are where a mismatch shows first."""
    raw[:EDGE], raw[-EDGE:], raw[:, :EDGE], raw[:, -EDGE:] = 0, 0, 0, 0
    kernel = np.ones((5, 5), np.uint8)
    return cv2.dilate(cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel), kernel, iterations=2)


def _colour(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A keyframe's input at flow resolution, lightly blurred, as the flow estimator keeps
    each frame's (``Motion.colour``): what propagation is checked against."""
    h, w = shape
    if rgb.shape[:2] != (h, w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(rgb, (3, 3), 0)


def strain(flow: np.ndarray) -> np.ndarray:
    """How much the flow bends the picture at each pixel (the sum of its gradients' sizes):
    a shift moves strokes intact, a stretch or a shear smears them."""
    smooth = cv2.GaussianBlur(flow, (0, 0), 2.0)
    total = np.zeros(flow.shape[:2], np.float32)
    for c in range(2):
        total += np.abs(cv2.Sobel(smooth[..., c], cv2.CV_32F, 1, 0, ksize=3)) / 8
        total += np.abs(cv2.Sobel(smooth[..., c], cv2.CV_32F, 0, 1, ksize=3)) / 8
    return total


class Edges:
    """How far new picture has come in at each side of the frame since it was last refreshed.

    The warp replicates the edge where the flow reaches outside the frame; a camera that
    shakes moves the edge back and forth and cancels out, a pan builds up a stale band.
    Bands are (left, right, top, bottom) in flow pixels."""

    def __init__(self):
        self.bands = np.zeros(4, np.float32)

    def update(self, flow: np.ndarray) -> None:
        # flow points from this frame into the previous one: at the left edge a negative x
        # means the pixel came from beyond the frame, a positive one that the band left it.
        moves = np.array([-np.median(flow[:, 0, 0]), np.median(flow[:, -1, 0]),
                          -np.median(flow[0, :, 1]), np.median(flow[-1, :, 1])], np.float32)
        self.bands = np.maximum(0.0, self.bands + moves)

    def take(self, mask: np.ndarray) -> None:
        """Add the bands wider than EDGE_BAND to ``mask`` (uint8, in place), as refreshed."""
        for side, band in enumerate(self.bands):
            if band > EDGE_BAND:
                width = int(np.ceil(band)) + 2
                edge = (np.s_[:, :width], np.s_[:, -width:], np.s_[:width], np.s_[-width:])[side]
                mask[edge] = 1
                self.bands[side] = 0.0

    def reset(self) -> None:
        self.bands[:] = 0.0


class KeyframePolicy:
    """Decides, in frame order on the motion thread, what the network does for each frame.

    The policy carries the last keyframe's *input* along the same motion as the output is
    carried, so where the carried input no longer matches the present one the propagated
    output no longer fits either: those regions are recomputed (as are pixels whose flow is
    not trusted and new picture at the frame's edges). A keyframe comes when such regions
    cover more than KEY_SHARE of the frame, when their shares since the last keyframe add
    up to DEBT_LIMIT, after MAX_GAP frames, or at a cut, a size change, a dropped frame or
    the start. ``every`` = N fixes the rhythm instead (cuts still force one).

    ``asynchronous`` (live video): keyframes come from their own thread as fast as it
    can make them, and :meth:`rebase` tells the policy when one lands; the policy asks
    for a whole frame only where nothing can be carried (the start, a cut).
    """

    def __init__(self, every: int | None = None, max_gap: int = MAX_GAP, asynchronous: bool = False):
        self.every, self.max_gap, self.asynchronous = every, max_gap, asynchronous
        self.stats = ReuseStats()
        self._since = 0  # frames since the last keyframe
        self._debt = 0.0
        self._last: int | None = None  # index of the previous frame decided
        self._edges = Edges()
        self._carried: np.ndarray | None = None  # the keyframe's input carried to the last frame
        self._key_rgb: np.ndarray | None = None  # the keyframe's input, until the flow's size is known
        self._strain: np.ndarray | None = None  # per pixel: the strain its carried picture went through

    def decide(self, index: int, motion: Motion | None, rgb: np.ndarray) -> Plan:
        """The plan for frame ``index``; ``rgb`` is the input the motion was measured on."""
        continuous = motion is not None and not motion.cut and motion.prev_index == self._last
        self._last = index
        self.stats.frames += 1
        self._since += 1
        regions, carried, now = None, None, None
        if continuous:
            now = motion.colour
            carried, strained = self._carry(motion, now)
            mismatch = channel_max(cv2.absdiff(carried, now)) > MISMATCH
            # Each warp resamples and bends the carried picture a little; far enough and a
            # moving thing's strokes are smeared, even where the input still matches.
            regions = _regions((mismatch | (motion.trust < UNTRUSTED) | (strained > STRAIN)).astype(np.uint8))
            self._edges.update(motion.flow)
            self._edges.take(regions)
        share = float(regions.mean()) if regions is not None else 1.0
        self._debt += share
        if self.asynchronous:
            key = not continuous
        elif self.every is not None:
            key = not continuous or self._since >= self.every
        else:
            key = not continuous or share > KEY_SHARE or self._debt > DEBT_LIMIT or self._since >= self.max_gap
        if key:
            self._since, self._debt = 0, 0.0
            self._edges.reset()
            self._carried, self._key_rgb = now, (rgb if now is None else None)
            self._strain = None if now is None else np.zeros(now.shape[:2], np.float32)
            if self.asynchronous:  # a stand-in for the whole frame until a keyframe lands
                self.stats.fills += 1
                self.stats.regions.append(1.0)
            else:
                self.stats.keyframes += 1
            return Plan(key=True)
        fill = share > (LIVE_FILL_SHARE if self.asynchronous else FILL_SHARE)
        if fill:
            fresh = regions.astype(bool)
            carried = np.where(fresh[..., None], now, carried)
            strained[fresh] = 0.0
            self.stats.fills += 1
            self.stats.regions.append(share)
        self._carried, self._strain = carried, strained
        return Plan(fill=fill, regions=regions if fill else None)

    def rebase(self, carried: np.ndarray) -> None:
        """A keyframe landed (asynchronous mode): ``carried`` is its input, carried to the
        last frame decided, at flow size; the next frames are checked against it."""
        self._carried, self._key_rgb = carried, None
        self._strain = np.zeros(carried.shape[:2], np.float32)
        self._since, self._debt = 0, 0.0
        self._edges.reset()
        self.stats.keyframes += 1

    def _carry(self, motion: Motion, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keyframe's input, and the strain each pixel went through, carried to this frame."""
        h, w = now.shape[:2]
        if self._carried is None or self._carried.shape != now.shape:
            self._carried = _colour(self._key_rgb, (h, w))
            self._strain = np.zeros((h, w), np.float32)
        xs, ys = grid(h, w)
        mx, my = xs + motion.flow[..., 0], ys + motion.flow[..., 1]
        carried = cv2.remap(self._carried, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        strained = cv2.remap(self._strain, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return carried, strained + strain(motion.flow)


def paste(picture: np.ndarray, fill: Fill | None) -> np.ndarray:
    """``picture`` with ``fill``'s fresh pixels put in where its mask is set."""
    return picture if fill is None else cv2.blendLinear(fill.image, picture, fill.mask, 1.0 - fill.mask)


class Propagator:
    """Each frame's output, with the network run on a few frames only.

    Without reuse the smoother (flow) blends each frame's fresh stylization into the
    warped history. Here it blends the *latest keyframe's* stylization instead, carried
    along the flow to the present and refreshed where the policy recomputed part of the
    frame: the same smoothing, fed by a cheap stand-in for the network's output. A new
    keyframe then enters as any frame's stylization does, without a pop.
    """

    def __init__(self, smoother: Flow):
        self.smoother = smoother
        self._index: int | None = None
        self._key: np.ndarray | None = None  # the keyframe's stylization, carried to the previous frame

    def step(self, index: int, motion: Motion | None, key: np.ndarray | None = None,
             fill: Fill | None = None) -> np.ndarray:
        """The output of frame ``index``: ``key`` is its full stylization on a keyframe,
        ``fill`` its fresh stylization where one ran; both None when the network did not run."""
        if key is None:
            continuous = (self._key is not None and motion is not None and not motion.cut
                          and motion.prev_index == self._index)
            if not continuous:
                raise ValueError(f"frame {index} has no keyframe and no history to carry")
            key = paste(self.smoother.warp(self._key, motion), fill)
        self._index, self._key = index, key
        return self.smoother.blend(index, key, motion)


class Carrier:
    """Live video's output: the latest keyframe's stylization carried along the flow.

    Unlike :class:`Propagator` there is no smoother after it: consecutive outputs are the
    same picture moved, so nothing changes except where a fill puts fresh pixels in, and
    live video cannot afford a second warp and a blend per frame. The smoothing happens
    where the picture changes, when a keyframe lands: each keyframe is its own stylization,
    and replacing the carried one outright would show the network's frame-to-frame
    instability as a jump every few frames. So a landing keeps KEEP of the carried picture
    where that came from an earlier keyframe (the same time constant as the flow smoother
    at 30 fps with keyframes every ~6 frames), takes the keyframe where the carried picture
    came from a cheap fill or stand-in, and fades in over RAMP frames.
    """

    RAMP = 3
    KEEP = 0.7

    def __init__(self, smoother: Flow):
        self.smoother = smoother
        self._index: int | None = None
        self._key: np.ndarray | None = None  # the output of the previous frame, without the fade
        self._cheap: np.ndarray | None = None  # float32 0..1: where _key came from a fill or stand-in
        self._old: np.ndarray | None = None  # the picture being replaced, carried alike
        self._fade = 0  # frames left of the fade

    def step(self, index: int, motion: Motion | None, stand_in: np.ndarray | None = None,
             fill: Fill | None = None, landed: np.ndarray | None = None, cheap: bool = True) -> np.ndarray:
        """The output of frame ``index``: ``stand_in`` a whole-frame stylization where nothing
        can be carried (the start, a cut; ``cheap`` unless it is a keyframe's), ``fill``
        fresh pixels where the carried picture no longer fits, ``landed`` a keyframe
        finished since the previous frame and carried to that frame."""
        if stand_in is not None:
            self._index, self._key, self._old, self._fade = index, stand_in, None, 0
            self._cheap = np.full(stand_in.shape[:2], 1.0 if cheap else 0.0, np.float32)
            return stand_in
        if self._key is None or motion is None or motion.cut or motion.prev_index != self._index:
            raise ValueError(f"frame {index} has no keyframe and no history to carry")
        if landed is not None and landed.shape == self._key.shape:
            h, w = landed.shape[:2]
            keep = cv2.resize(1.0 - self._cheap, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(self.KEEP)
            self._old, self._fade = self._key, self.RAMP
            self._key = cv2.blendLinear(self._key, landed, keep, 1.0 - keep)
            self._cheap = np.zeros_like(self._cheap)
        self._key = paste(self.smoother.warp(self._key, motion), fill)
        # Where the picture is cheap matters at the flow's resolution, where warping it costs little.
        fh, fw = motion.flow.shape[:2]
        if self._cheap.shape != (fh, fw):
            self._cheap = cv2.resize(self._cheap, (fw, fh), interpolation=cv2.INTER_AREA)
        self._cheap = self.smoother.warp(self._cheap, motion)
        if fill is not None:
            self._cheap = np.maximum(self._cheap, cv2.resize(fill.mask, (fw, fh), interpolation=cv2.INTER_AREA))
        self._index = index
        if not self._fade:
            return self._key
        self._fade -= 1
        self._old = paste(self.smoother.warp(self._old, motion), fill)
        share = (self._fade + 1) / (self.RAMP + 1)
        out = cv2.addWeighted(self._old, share, self._key, 1.0 - share, 0.0)
        if not self._fade:
            self._old = None
        return out
