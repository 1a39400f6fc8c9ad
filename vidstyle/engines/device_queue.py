"""Batches queued on a GPU, shared by the engines that run there (tensorrt, torch).

Pinned host buffers, one non-default stream each for upload, inference and download
ordered by events, and ``SLOTS`` slots of buffers, so batch k+1 uploads while batch k
computes and k downloads while k+1 computes. ``submit`` returns at once with a
``Pending``; ``run`` is submit + result. The CUDA calls go through an adapter from
:mod:`vidstyle.engines.cuda_mem`; what inference means is a runner's ``execute``.
"""
from __future__ import annotations

import threading

import numpy as np

SLOTS = 2


class Slot:
    """One batch's buffers (host and device, frames and style) and its three events."""

    def __init__(self, cuda, frame_bytes: int, max_batch: int, style_bytes: int):
        n = frame_bytes * max_batch
        self.host_in, self.host_out = cuda.host(n), cuda.host(n)
        self.dev_in, self.dev_out = cuda.alloc(n), cuda.alloc(n)
        self.host_style, self.dev_style = cuda.host(style_bytes), cuda.alloc(style_bytes)
        self.uploaded, self.done, self.downloaded = cuda.event(), cuda.event(), cuda.event()
        self.pending: Pending | None = None

    def buffers(self):
        return (self.host_in, self.host_out, self.dev_in, self.dev_out, self.host_style, self.dev_style)

    def events(self):
        return (self.uploaded, self.done, self.downloaded)


class Pending:
    """A submitted batch; ``result()`` waits for its download and returns N,H,W,3 uint8."""

    def __init__(self, runner: SlotRunner, slot: Slot, n: int):
        self._runner, self._slot, self._n, self._out = runner, slot, n, None

    def result(self) -> np.ndarray:
        # Under the runner's lock: the slot's host buffer and its pending mark are what
        # submit() on another thread reuses.
        with self._runner.lock:
            if self._out is None:
                self._runner.cuda.sync(self._slot.downloaded)
                h, w = self._runner.height, self._runner.width
                self._out = self._slot.host_out.array[: self._n * h * w * 3].reshape(self._n, h, w, 3).copy()
                if self._slot.pending is self:
                    self._slot.pending = None
        return self._out


class SlotRunner:
    """One frame size: three streams and the slots. Subclasses say what inference is in
    ``execute(n, slot, stream)``: queue the network on ``stream``, reading the first n
    frames of ``slot.dev_in`` and the style in ``slot.dev_style``, writing ``slot.dev_out``."""

    def __init__(self, cuda, height: int, width: int, max_batch: int, dim: int):
        self.cuda, self.height, self.width, self.max_batch = cuda, height, width, max_batch
        self.up, self.compute, self.down = cuda.stream(), cuda.stream(), cuda.stream()
        self.frame_bytes = height * width * 3
        self.slots = [Slot(cuda, self.frame_bytes, max_batch, dim * 4) for _ in range(SLOTS)]
        self._next = 0
        self.lock = threading.RLock()  # submit() collects a slot's last batch while holding it

    def execute(self, n: int, slot: Slot, stream) -> None:
        raise NotImplementedError

    def submit(self, batch: np.ndarray, style: np.ndarray) -> Pending:
        n = len(batch)
        size = n * self.frame_bytes
        cuda = self.cuda
        with self.lock:
            slot = self.slots[self._next]
            self._next = (self._next + 1) % len(self.slots)
            if slot.pending is not None:  # its last batch was never collected: keep it before reuse
                slot.pending.result()
            cuda.sync(slot.downloaded)  # (recorded at least once below, or never: then a no-op)
            slot.host_in.array[:size] = batch.reshape(-1)
            slot.host_style.array[:] = np.ascontiguousarray(style, np.float32).view(np.uint8)
            cuda.h2d(slot.dev_in, slot.host_in, size, self.up)
            cuda.h2d(slot.dev_style, slot.host_style, style.nbytes, self.up)
            cuda.record(slot.uploaded, self.up)
            cuda.wait(self.compute, slot.uploaded)
            self.execute(n, slot, self.compute)
            cuda.record(slot.done, self.compute)
            cuda.wait(self.down, slot.done)
            cuda.d2h(slot.host_out, slot.dev_out, size, self.down)
            cuda.record(slot.downloaded, self.down)
            slot.pending = Pending(self, slot, n)
            return slot.pending

    def close(self) -> None:
        """Wait for uncollected batches, free the buffers, destroy the events and streams."""
        with self.lock:
            for slot in self.slots:
                if slot.pending is not None:
                    slot.pending.result()
                for buf in slot.buffers():
                    self.cuda.free(buf)
                for event in slot.events():
                    self.cuda.destroy_event(event)
            for stream in (self.up, self.compute, self.down):
                self.cuda.destroy_stream(stream)
            self.slots = []


class QueuedEngine:
    """An engine whose batches queue on a device: one ``SlotRunner`` per frame size, made by
    ``make_runner(height, width)``; batches above ``max_batch`` run as chunks."""

    queues = True  # upload, inference and download run on device streams after submit() returns
    regions = False
    max_batch: int

    def _init_runners(self) -> None:
        self._runners: dict[tuple[int, int], SlotRunner] = {}
        self._lock = threading.Lock()

    def make_runner(self, height: int, width: int) -> SlotRunner:
        raise NotImplementedError

    def runner(self, height: int, width: int) -> SlotRunner:
        with self._lock:
            if (height, width) not in self._runners:
                self._runners[(height, width)] = self.make_runner(height, width)
            return self._runners[(height, width)]

    def submit(self, batch: np.ndarray, style: np.ndarray) -> list[Pending]:
        """Queue ``batch`` (chunks of at most max_batch, one style row each run) and return
        at once; each Pending's result() is one chunk's frames, in order. Frames of any
        size: one that is not a multiple of 4 is padded and cropped on the device."""
        n, h, w, _ = batch.shape
        batch = np.ascontiguousarray(batch, np.uint8)
        rows = np.asarray(style, np.float32).reshape(-1, np.shape(style)[-1])
        runner = self.runner(h, w)
        if len(rows) == 1 or bool((rows == rows[:1]).all()):
            step = self.max_batch
            return [runner.submit(batch[i:i + step], rows[0]) for i in range(0, n, step)]
        # The network mixes one style's norm tables per run: frames with different styles run apart.
        return [runner.submit(batch[i:i + 1], rows[i]) for i in range(n)]

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        pending = self.submit(batch, style)  # every chunk queued before the first is awaited
        parts = [p.result() for p in pending]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def stream(self, batches, style: np.ndarray):
        """Stylize an iterable of batches with up to ``SLOTS`` in flight: batch k+1 is
        uploaded while k computes, and k is downloaded while k+1 computes."""
        queue: list[list[Pending]] = []
        for batch in batches:
            queue.append(self.submit(batch, style))
            if len(queue) >= SLOTS:
                yield np.concatenate([p.result() for p in queue.pop(0)])
        for pending in queue:
            yield np.concatenate([p.result() for p in pending])

    def close(self) -> None:
        with self._lock:
            for runner in self._runners.values():
                runner.close()
            self._runners.clear()
