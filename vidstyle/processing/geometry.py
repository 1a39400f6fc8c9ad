"""Per-frame geometry, shared by the video and image paths: how a source frame maps onto
the network's input and back (``plan`` -> ``Geometry``; ``shrink`` and ``pad`` to a
multiple of 4 on the way in, ``crop`` and ``grow`` on the way out), and ``--size``."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MULTIPLE = 4  # two stride-2 convs and two x2 upsamplings
# The networks reflect-pad by 4 px at full size and by 1 px at a quarter of it,
# which needs sides of at least 5 and 8 px; smaller frames (a 1x1 or 2x2 video)
# are scaled up to this for the network and back down afterwards.
MIN_SIDE = 16


@dataclass(frozen=True)
class Geometry:
    """How a source frame maps onto the network's input and back."""

    src_w: int
    src_h: int
    proc_w: int  # the frame is resized to this ...
    proc_h: int
    net_w: int  # ... then reflect-padded up to a multiple of 4 (never resized by a few pixels)
    net_h: int

    @property
    def needs_resize(self) -> bool:
        return (self.proc_w, self.proc_h) != (self.src_w, self.src_h)


def parse_size(text: str) -> tuple[int, int] | int:
    """'640x480' -> (640, 480); '640' -> 640 (the longer side)."""
    try:
        if "x" in text.lower():
            w, h = (int(v) for v in text.lower().split("x"))
            if w > 0 and h > 0:
                return w, h
        elif int(text) > 0:
            return int(text)
    except ValueError:
        pass
    raise ValueError(f"bad size {text!r}; use WxH (e.g. 640x480) or the longer side in pixels (e.g. 640)")


def plan(src_w: int, src_h: int, size: tuple[int, int] | int | None = None) -> Geometry:
    """Processing geometry for a source of src_w x src_h at the requested size."""
    if size is None:
        proc_w, proc_h = src_w, src_h
    elif isinstance(size, tuple):
        proc_w, proc_h = size
    else:
        scale = size / max(src_w, src_h)
        proc_w, proc_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    proc_w, proc_h = max(proc_w, MIN_SIDE), max(proc_h, MIN_SIDE)
    up = lambda v: max(MULTIPLE, -(-v // MULTIPLE) * MULTIPLE)  # noqa: E731
    return Geometry(src_w, src_h, proc_w, proc_h, up(proc_w), up(proc_h))


def internal_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The network's size for a ``width`` x ``height`` network input at internal scale
    ``scale``: each side scaled and rounded to a multiple of 4, at least ``MIN_SIDE``."""
    side = lambda v: max(MIN_SIDE, round(v * scale / MULTIPLE) * MULTIPLE)  # noqa: E731
    return (width, height) if scale >= 1.0 else (min(width, side(width)), min(height, side(height)))


def shrink(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """Source RGB frame -> processing size (the first half of :func:`prepare`)."""
    if not geom.needs_resize:
        return image
    shrinking = geom.proc_w * geom.proc_h < geom.src_w * geom.src_h
    return cv2.resize(image, (geom.proc_w, geom.proc_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def pad(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """Processing size -> network input, reflect-padded up to a multiple of 4."""
    ph, pw = geom.net_h - geom.proc_h, geom.net_w - geom.proc_w
    if ph or pw:
        # Reflection needs a side longer than the pad; tiny frames fall back to edge copies.
        mode = cv2.BORDER_REFLECT_101 if min(geom.proc_h, geom.proc_w) > max(ph, pw) else cv2.BORDER_REPLICATE
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, mode)
    return np.ascontiguousarray(image)


def prepare(image: np.ndarray, geom: Geometry) -> np.ndarray:
    """Source RGB frame -> network input (resized, reflect-padded), uint8."""
    return pad(shrink(image, geom), geom)


def crop(stylized: np.ndarray, geom: Geometry) -> np.ndarray:
    """Network output -> processing size (the pad cut off)."""
    return stylized[: geom.proc_h, : geom.proc_w]


def grow(out: np.ndarray, geom: Geometry) -> np.ndarray:
    """Processing size -> source size."""
    if geom.needs_resize:
        out = cv2.resize(out, (geom.src_w, geom.src_h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out)


def finish(stylized: np.ndarray, geom: Geometry) -> np.ndarray:
    """Network output -> frame at the source size (crop the pad, resize back)."""
    return grow(crop(stylized, geom), geom)


def square_crop(image: np.ndarray, side: int) -> np.ndarray:
    """Centre square crop resized to side x side (the style predictor's input)."""
    h, w = image.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = image[top : top + s, left : left + s]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA if s > side else cv2.INTER_LINEAR)
