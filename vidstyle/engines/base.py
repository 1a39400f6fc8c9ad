"""The one interface every engine implements: ``run`` (a batch, now), ``submit`` (a batch
started, results later) and ``queues`` (whether ``submit`` returns before the work is
done). ``RunsNow`` gives an engine that computes inside the call its ``submit``."""
from __future__ import annotations

from typing import Protocol

import numpy as np


class Pending(Protocol):
    def result(self) -> np.ndarray:
        """Wait for a submitted batch and return its N,H,W,3 uint8 frames."""
        ...


class Engine(Protocol):
    name: str
    model: str
    queues: bool  # submit() returns before the work is done (a device queue): keep a batch in flight
    regions: bool  # has run_stats / run_frozen: crops that match the whole frame (region recompute)

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        """Stylize ``batch`` (N,H,W,3 uint8, H and W multiples of 4) with the conditioning
        vector ``style`` ((D,) shared by the batch, or (N,D)); returns N,H,W,3 uint8."""
        ...

    def submit(self, batch: np.ndarray, style: np.ndarray) -> list[Pending]:
        """Start what :meth:`run` does; the results, concatenated in order, are its output."""
        ...

    def close(self) -> None:
        ...


class Done:
    """A Pending whose frames are already computed."""

    def __init__(self, out: np.ndarray):
        self._out = out

    def result(self) -> np.ndarray:
        return self._out


class RunsNow:
    """For engines that compute inside the call: ``submit`` is ``run``, finished on return."""

    queues = False
    regions = False

    def submit(self, batch: np.ndarray, style: np.ndarray) -> list[Pending]:
        return [Done(self.run(batch, style))]


def broadcast_style(style: np.ndarray, n: int) -> np.ndarray:
    style = np.asarray(style, np.float32)
    return np.ascontiguousarray(np.broadcast_to(style, (n, style.shape[-1])))
