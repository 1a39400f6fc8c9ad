"""The one interface every engine implements."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Engine(Protocol):
    name: str
    model: str

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        """Stylize ``batch`` (N,H,W,3 uint8, H and W multiples of 4) with the conditioning
        vector ``style`` ((D,) shared by the batch, or (N,D)); returns N,H,W,3 uint8."""
        ...

    def close(self) -> None:
        ...


def broadcast_style(style: np.ndarray, n: int) -> np.ndarray:
    style = np.asarray(style, np.float32)
    return np.ascontiguousarray(np.broadcast_to(style, (n, style.shape[-1])))
