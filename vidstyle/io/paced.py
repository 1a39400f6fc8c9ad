"""Frames in real time from pictures: a file played like a camera, or synthetic motion."""
from __future__ import annotations

import itertools
import threading
import time
from fractions import Fraction
from typing import Callable, Iterable, Iterator

import numpy as np

from vidstyle.frame import Frame
from vidstyle.io.feed import Feed


class PacedSource(Feed):
    """Frames at ``rate`` per second in real time, like a camera: a file or synthetic pictures.

    ``pictures`` is called for a fresh iterator of RGB frames (again on each
    loop when ``loop``); ``count`` stops after that many frames. Pictures given as
    Frames (a file's) keep their timestamps, each loop continuing after the last;
    plain arrays are stamped with their index at ``rate``.
    """

    def __init__(self, pictures: Callable[[], Iterable[np.ndarray]], rate: float, loop: bool = False,
                 count: int | None = None):
        if rate <= 0:
            raise ValueError("rate must be positive")
        super().__init__()
        self.pictures, self.rate, self.loop, self.count = pictures, rate, loop, count
        self._time_base = 1 / Fraction(rate).limit_denominator(1001)

    def produce(self, put: Callable[[Frame], None], stop: threading.Event) -> None:
        start, index = time.monotonic(), 0
        offset, end = 0.0, 0.0  # seconds: where this loop's timestamps start, and the last frame's end
        while not stop.is_set() and (self.count is None or index < self.count):
            produced = False
            for item in self.pictures():
                produced = True
                due = start + index / self.rate
                if stop.wait(max(0.0, due - time.monotonic())) or (self.count is not None and index >= self.count):
                    return
                if isinstance(item, Frame) and item.pts is not None:
                    seconds = offset + float(item.pts * item.time_base)
                    pts = round(seconds / item.time_base)
                    put(Frame(index, pts, item.time_base, item.image, time.monotonic()))
                    end = seconds + 1 / self.rate
                else:
                    put(Frame(index, index, self._time_base, getattr(item, "image", item), time.monotonic()))
                index += 1
            offset = end
            if not (self.loop and produced):
                return


def moving_pictures(width: int, height: int) -> Callable[[], Iterator[np.ndarray]]:
    """Drifting texture with a moving block: optical flow and the encoder get real work.

    Each call of the returned function starts the same endless sequence; the
    texture is made once, each frame is a slice of it plus the block.
    """
    import cv2

    rng = np.random.default_rng(7)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (height + 64, width + 64, 3), dtype=np.uint8), (0, 0), 3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    side = max(4, min(width, height) // 5)

    def pictures() -> Iterator[np.ndarray]:
        for t in itertools.count():
            image = texture[t % 64: t % 64 + height, (2 * t) % 64: (2 * t) % 64 + width].copy()
            x = (5 * t) % max(1, width - side)
            image[height // 3: height // 3 + side, x: x + side] = (230, 40, 40)
            yield image

    return pictures
