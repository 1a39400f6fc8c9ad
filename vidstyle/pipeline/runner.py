"""Threads joined by bounded queues.

A source generator runs on its own thread; each stage runs on its own thread
and turns every item into zero or more items for the next queue. End of stream
is the ``EOS`` value: a stage flushes its state when it arrives and passes it
on. A stage that fails hands its exception to the orchestrator, which stops
every other stage (queue operations poll a stop flag, so no thread stays
blocked on a full or empty queue) and re-raises it in the caller's thread as a
``PipelineError`` carrying the stage and frame index.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from vidstyle.errors import Cancelled, PipelineError
from vidstyle.frame import EOS

POLL = 0.05  # seconds between stop-flag checks while blocked on a queue


@dataclass
class Stage:
    """``process(item)`` yields outputs for one item; ``flush()`` yields what is left at EOS."""

    name: str
    process: Callable[[Any], Iterable[Any]]
    flush: Callable[[], Iterable[Any]] = lambda: ()


@dataclass
class StageStats:
    items: int = 0
    busy: float = 0.0  # seconds spent in process/flush, not waiting on queues


@dataclass
class QueueStats:
    """Occupancy of the queue in front of a stage, sampled while the pipeline runs."""

    capacity: int
    samples: int = 0
    total: int = 0
    peak: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.samples if self.samples else 0.0


@dataclass
class RunStats:
    wall: float = 0.0
    stages: dict[str, StageStats] = field(default_factory=dict)
    queues: dict[str, QueueStats] = field(default_factory=dict)  # keyed by the stage the queue feeds
    latencies: list[float] = field(default_factory=list)  # seconds from capture to the last stage, per item


def item_index(item: Any) -> int | None:
    """Frame index of an item (a Frame, or a batch whose first element is one)."""
    # Batches first: list and tuple have an ``index`` method, which is no frame index.
    if isinstance(item, (list, tuple)):
        return item_index(item[0]) if item else None
    index = getattr(item, "index", None)
    return index if isinstance(index, int) else None


class _Stopped(Exception):
    """Raised inside a worker when the pipeline is stopping."""


class Pipeline:
    def __init__(self, source: Callable[[], Iterator[Any]], stages: list[Stage], queue_size: int = 8,
                 source_name: str = "decode", cancel_wait: float | None = None):
        """``cancel_wait``: after cancel(), how long ``run`` waits for stages still busy
        inside one long call (an engine batch: seconds at HD on a CPU) before it raises
        Cancelled anyway. They are daemons and end by themselves at their next queue
        operation. None: wait for every thread, as after a failure or the end."""
        self._source = source
        self._cancel_wait = cancel_wait
        self._source_name = source_name
        self._stages = stages
        self._queues = [queue.Queue(maxsize=queue_size) for _ in stages]
        self._stop = threading.Event()
        self._error: PipelineError | None = None
        self._error_lock = threading.Lock()
        self._cancelled = False
        self._completed = False  # the last stage saw EOS and flushed: the output is whole
        self.stats = RunStats(stages={s.name: StageStats() for s in [Stage(source_name, lambda i: ())] + stages},
                              queues={s.name: QueueStats(queue_size) for s in stages})

    # -- queue operations that give up when the pipeline stops ----------------

    def _put(self, q: queue.Queue, item: Any) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                q.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue) -> Any:
        while True:
            if self._stop.is_set():
                raise _Stopped
            try:
                return q.get(timeout=POLL)
            except queue.Empty:
                continue

    def _fail(self, stage: str, index: int | None, exc: BaseException, at_end: bool = False) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = PipelineError(stage, index, exc, at_end=at_end)
        self._stop.set()

    # -- workers ------------------------------------------------------------

    def _run_source(self) -> None:
        stats, index = self.stats.stages[self._source_name], None
        items = self._source()
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    break
                finally:
                    stats.busy += time.perf_counter() - t0
                index = item_index(item)
                stats.items += 1
                self._put(self._queues[0], item)
            self._put(self._queues[0], EOS)
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001 - every failure goes to the orchestrator
            self._fail(self._source_name, None if index is None else index + 1, exc)
        finally:
            close = getattr(items, "close", None)
            if close:
                close()  # runs the generator's finally (closes the container) on this thread

    def _run_stage(self, i: int) -> None:
        stage, stats = self._stages[i], self.stats.stages[self._stages[i].name]
        inbox = self._queues[i]
        outbox = self._queues[i + 1] if i + 1 < len(self._queues) else None
        item = None
        try:
            while True:
                item = self._get(inbox)
                t0 = time.perf_counter()
                outputs = stage.flush() if item is EOS else stage.process(item)
                for out in outputs:
                    stats.busy += time.perf_counter() - t0
                    if outbox is not None:
                        self._put(outbox, out)
                    t0 = time.perf_counter()
                stats.busy += time.perf_counter() - t0
                if outbox is None and hasattr(item, "captured"):
                    self.stats.latencies.append(time.monotonic() - item.captured)
                if item is EOS:
                    if outbox is not None:
                        self._put(outbox, EOS)
                    else:
                        self._completed = True
                    return
                stats.items += 1
        except _Stopped:
            pass
        except BaseException as exc:  # noqa: BLE001
            self._fail(stage.name, item_index(item), exc, at_end=item is EOS)

    # -- orchestration --------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once the pipeline is stopping (failure, cancel, or the end): sources poll it."""
        return self._stop.is_set()

    @property
    def _hurry(self) -> bool:
        return self._cancelled and self._cancel_wait is not None

    def cancel(self) -> None:
        """Stop every stage; ``run`` then raises Cancelled. Safe from any thread."""
        self._cancelled = True
        self._stop.set()

    def _sample_queues(self) -> None:
        for stage, q in zip(self._stages, self._queues):
            stats, size = self.stats.queues[stage.name], q.qsize()
            stats.samples += 1
            stats.total += size
            stats.peak = max(stats.peak, size)

    def run(self) -> RunStats:
        threads = [threading.Thread(target=self._run_source, name=f"vidstyle-{self._source_name}", daemon=True)]
        threads += [threading.Thread(target=self._run_stage, args=(i,), name=f"vidstyle-{s.name}", daemon=True)
                    for i, s in enumerate(self._stages)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive() and not self._hurry:
                    t.join(timeout=POLL)
                    self._sample_queues()
        except BaseException:  # KeyboardInterrupt in the caller's thread
            self.cancel()
            raise
        finally:
            self._stop.set()
            deadline = time.monotonic() + self._cancel_wait if self._hurry else None
            for t in threads:
                t.join(timeout=5.0 if deadline is None else max(0.0, deadline - time.monotonic()))
            self.stats.wall = time.perf_counter() - start
        if self._error is not None:
            # Handed over, not kept: its traceback runs through the stage frames, which hold
            # this pipeline, so keeping it would make a cycle that holds every stage's
            # resources (a decoder's threads) until the garbage collector runs (found by fuzzing).
            error, self._error = self._error, None
            try:
                raise error
            finally:
                del error
        if self._cancelled and not self._completed:  # a cancel after the last flush changes nothing
            raise Cancelled("cancelled")
        return self.stats
