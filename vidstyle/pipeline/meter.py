"""A rolling window over delivered frames: frames per second and capture-to-present latency."""
from __future__ import annotations

import time
from collections import deque

import numpy as np

from vidstyle.frame import Frame


class Meter:
    """Frames per second and latency over the last ``span`` seconds (an overlay, a web page's readout)."""

    def __init__(self, span: float = 1.0):
        self.span = span
        self._shown: deque[tuple[float, float]] = deque()  # (presented at, latency) per frame

    def add(self, frame: Frame, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._shown.append((now, now - frame.captured))
        while self._shown and now - self._shown[0][0] > self.span:
            self._shown.popleft()

    @property
    def fps(self) -> float:
        if len(self._shown) < 2:
            return 0.0
        return (len(self._shown) - 1) / max(self._shown[-1][0] - self._shown[0][0], 1e-6)

    @property
    def latency_ms(self) -> float:
        return 1000 * float(np.mean([lat for _, lat in self._shown])) if self._shown else 0.0

    def latency_percentiles(self, *qs: float) -> dict[str, float]:
        """{"p50": ms, ...} over the window; 0 when it is empty."""
        lat = [lat for _, lat in self._shown]
        return {f"p{q:g}": 1000 * float(np.percentile(lat, q)) if lat else 0.0 for q in qs}
