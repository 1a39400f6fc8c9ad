"""The unit that flows through the pipeline, the end-of-stream marker, and where frames come from."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator, Protocol

import numpy as np


@dataclass
class Frame:
    """One decoded picture.

    ``pts`` and ``time_base`` are the source's own, so that variable frame rate
    and A/V sync survive the round trip; ``captured`` is a monotonic time used
    to measure latency.
    """

    index: int
    pts: int | None
    time_base: Fraction | None
    image: np.ndarray  # RGB uint8, H x W x 3
    captured: float = field(default_factory=time.monotonic)

    @property
    def time(self) -> float | None:
        if self.pts is None or self.time_base is None:
            return None
        return float(self.pts * self.time_base)


class EndOfStream:
    """Sentinel that flows through the queues; every stage flushes on it."""

    _instance: "EndOfStream | None" = None

    def __new__(cls) -> "EndOfStream":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "EOS"


EOS = EndOfStream()


class Source(Protocol):
    """Frames in: a video file, a camera, pictures paced like a camera, a browser's track.

    ``frames()`` yields Frames in order and ends with the input; ``close()``, from
    any thread, ends it early and frees what the source holds. ``rate`` is the
    frames per second a live source delivers (None: as fast as they are read);
    ``dropped`` counts frames a live source replaced by newer ones before anyone
    took them (the newest frame wins).
    """

    rate: float | None
    dropped: int

    def frames(self) -> Iterator[Frame]:
        ...

    def close(self) -> None:
        ...
