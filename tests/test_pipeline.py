"""The generic pipeline: order, end of stream, failures, cancellation and shutdown.

No video and no TensorFlow here: items are small numbered records, stages are
plain functions, and blocking is arranged with events, never with sleeps.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import pytest

from vidstyle.errors import Cancelled, PipelineError, VidstyleError
from vidstyle.pipeline.runner import Pipeline, Stage, item_index
from vidstyle.pipeline.stages import batcher

pytestmark = pytest.mark.timeout(30)

WAIT = 10  # seconds an event may take before the test gives up (a hang, not a timing)


@dataclass
class Item:
    index: int
    value: int = 0


class Source:
    """A generator of Items that records how far it got and whether it was closed."""

    def __init__(self, count: int | None = None, fail_at: int | None = None, on_request=None):
        self.count, self.fail_at, self.on_request = count, fail_at, on_request
        self.produced = 0
        self.closed = False

    def __call__(self):
        try:
            for i in itertools.count() if self.count is None else range(self.count):
                if self.on_request:
                    self.on_request(i)
                if i == self.fail_at:
                    raise OSError(f"camera unplugged before {i}")
                self.produced += 1
                yield Item(i, i)
        finally:
            self.closed = True


def collector(name: str = "collect"):
    """A last stage that keeps what reaches it, and "EOS" when it is flushed."""
    seen: list = []

    def process(item):
        seen.append(item)
        return ()

    def flush():
        seen.append("EOS")
        return ()

    return Stage(name, process, flush), seen


def must_wait(event: threading.Event) -> None:
    assert event.wait(WAIT), "the pipeline never reached the expected state"


# --- the happy path --------------------------------------------------------------------


def test_every_item_arrives_in_order_through_every_stage(threads):
    def explode(item):  # one item in, two out
        yield Item(item.index, item.value * 10)
        yield Item(item.index, item.value * 10 + 1)

    def drop_threes(item):  # one item in, zero or one out
        if item.value % 3:
            yield item

    last, seen = collector()
    stats = Pipeline(Source(100), [Stage("explode", explode), Stage("drop", drop_threes), last],
                     queue_size=2).run()

    expected = [v for i in range(100) for v in (i * 10, i * 10 + 1) if v % 3]
    assert [item.value for item in seen[:-1]] == expected and seen[-1] == "EOS"
    assert (stats.stages["decode"].items, stats.stages["explode"].items, stats.stages["drop"].items) == (100, 100, 200)
    threads.assert_back_to_start()


@pytest.mark.parametrize("count, batches", [
    (10, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]),  # the short last batch comes only from the flush
    (8, [[0, 1, 2, 3], [4, 5, 6, 7]]),  # nothing pending at EOS: the flush adds no empty batch
    (3, [[0, 1, 2]]),  # fewer items than one batch
    (0, []),  # an empty stream still ends
], ids=["partial", "exact", "short", "empty"])
def test_end_of_stream_flushes_the_batcher_then_every_later_stage(threads, count, batches):
    process, flush = batcher(4)
    last, seen = collector()
    Pipeline(Source(count), [Stage("batch", process, flush), last], queue_size=1).run()
    assert [[item.index for item in batch] for batch in seen[:-1]] == batches
    assert seen[-1] == "EOS"  # the flush reached the last stage, after every batch
    threads.assert_back_to_start()


@pytest.mark.parametrize("item, index", [
    (Item(7), 7),
    ([Item(8), Item(9)], 8),  # a batch is named by its first frame
    ((Item(4),), 4),
    ([], None),
    ("text", None),  # str.index is a method, not a frame number
    (None, None),
])
def test_item_index(item, index):
    assert item_index(item) == index


# --- failures ----------------------------------------------------------------------------


def test_a_failing_stage_stops_everything_and_names_the_stage_and_frame(threads):
    def explode(item):
        if item.index == 5:
            raise ValueError("kernel exploded")
        yield item

    source = Source()  # endless: only a working stop ends this run
    last, seen = collector()
    with pytest.raises(PipelineError) as caught:
        Pipeline(source, [Stage("double", lambda item: [item]), Stage("explode", explode), last],
                 queue_size=2).run()

    error = caught.value
    assert (error.stage, error.frame_index) == ("explode", 5)
    assert isinstance(error.cause, ValueError) and isinstance(error, VidstyleError)
    assert str(error) == "explode failed at frame 5: kernel exploded"
    assert source.closed  # the generator's finally ran: the container would be closed
    # Frames before the failure may or may not have been drained; none after it, and no EOS.
    indexes = [item.index for item in seen]
    assert indexes == list(range(len(indexes))) and len(indexes) <= 5
    threads.assert_back_to_start()


def test_a_failing_batch_stage_reports_the_first_frame_of_the_batch(threads):
    calls = itertools.count(1)

    def infer(batch):
        if next(calls) == 3:
            raise RuntimeError("out of memory")
        yield batch

    process, flush = batcher(4)
    last, _ = collector()
    with pytest.raises(PipelineError) as caught:
        Pipeline(Source(20), [Stage("batch", process, flush), Stage("engine", infer), last]).run()
    assert (caught.value.stage, caught.value.frame_index) == ("engine", 8)
    assert "engine failed at frame 8: out of memory" == str(caught.value)
    threads.assert_back_to_start()


@pytest.mark.parametrize("fail_at, index, where", [
    (0, None, "start of stream"),  # nothing was decoded yet
    (3, 3, "frame 3"),  # frames 0-2 came out; the one after them failed
])
def test_a_failing_source_stops_everything_and_names_the_frame(threads, fail_at, index, where):
    source = Source(fail_at=fail_at)
    last, seen = collector()
    with pytest.raises(PipelineError) as caught:
        Pipeline(source, [Stage("pass", lambda item: [item]), last], source_name="camera").run()
    assert (caught.value.stage, caught.value.frame_index) == ("camera", index)
    assert str(caught.value) == f"camera failed at {where}: camera unplugged before {fail_at}"
    assert isinstance(caught.value.cause, OSError)
    assert source.closed and "EOS" not in seen
    threads.assert_back_to_start()


class Jam:
    """queue_size=1 and a last stage that holds frame 0: ``full`` is set once the source
    asks for frame 4, and by then the "pass" stage holds frame 2 with the queue after it
    full (frame 1), and frame 3 fills the queue before it: upstream is blocked."""

    def __init__(self):
        self.full = threading.Event()
        self.source = Source(on_request=lambda i: i == 4 and self.full.set())


def test_a_stage_failing_while_upstream_is_blocked_on_a_full_queue_stops_everything(threads):
    jam = Jam()

    def consume(item):
        must_wait(jam.full)
        raise RuntimeError("disk full")

    with pytest.raises(PipelineError) as caught:
        Pipeline(jam.source, [Stage("pass", lambda item: [item]), Stage("encode", consume)], queue_size=1).run()
    assert (caught.value.stage, caught.value.frame_index) == ("encode", 0)
    assert jam.source.closed and jam.source.produced == 5
    threads.assert_back_to_start()


# --- cancellation ------------------------------------------------------------------------


def run_and_cancel(pipeline: Pipeline, when: threading.Event, then: threading.Event | None = None) -> None:
    """Run ``pipeline``; once ``when`` is set, cancel it from another thread (then set ``then``).
    The run must end with Cancelled."""

    def cancel():
        must_wait(when)
        pipeline.cancel()
        if then is not None:
            then.set()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        with pytest.raises(Cancelled):
            pipeline.run()
    finally:
        canceller.join(WAIT)


def test_cancel_from_another_thread_ends_run_with_cancelled(threads):
    reached = threading.Event()

    def count(item):
        if item.index == 20:
            reached.set()
        return ()

    source = Source()  # endless
    pipeline = Pipeline(source, [Stage("pass", lambda item: [item]), Stage("count", count)], queue_size=2)

    run_and_cancel(pipeline, when=reached)
    assert source.closed
    threads.assert_back_to_start()


def test_cancel_while_upstream_is_blocked_on_a_full_queue(threads):
    jam = Jam()
    cancelled = threading.Event()

    def consume(item):
        must_wait(cancelled)  # returns normally: only the stop flag ends the run
        return ()

    pipeline = Pipeline(jam.source, [Stage("pass", lambda item: [item]), Stage("encode", consume)], queue_size=1)

    run_and_cancel(pipeline, when=jam.full, then=cancelled)
    assert jam.source.closed and jam.source.produced == 5
    threads.assert_back_to_start()
