"""Live sources: a producer thread writes into a one-slot mailbox, the reader takes the newest frame."""
from __future__ import annotations

import threading
from typing import Callable, Iterator

from vidstyle.frame import Frame

POLL = 0.05  # seconds between looks at the stop flag while waiting for a frame


class Latest:
    """A one-slot mailbox: ``put`` replaces an untaken item, ``take`` waits for a new one."""

    def __init__(self):
        self._item = None
        self._closed = False
        self._cond = threading.Condition()
        self.overwritten = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.overwritten += 1
            self._item = item
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, timeout: float = POLL):
        """The newest item, or None after ``timeout``; raises EOFError once closed and empty."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            if item is None and self._closed:
                raise EOFError
            return item


class Feed:
    """A :class:`vidstyle.frame.Source` that runs at its own pace, like a camera.

    Subclasses implement ``produce(put, stop)``, which runs on its own thread from
    the first ``frames()`` call and hands each new Frame to ``put`` until the
    input ends or ``stop`` is set. The reader always gets the newest frame; one
    nobody took in time is replaced and counted in ``dropped``. ``gone`` says why
    a source ended before it was asked to (a camera that could not be reopened).
    """

    rate: float | None = None
    gone: str | None = None
    thread_name = "vidstyle-camera"

    def __init__(self):
        self._mailbox = Latest()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self._mailbox.overwritten

    def produce(self, put: Callable[[Frame], None], stop: threading.Event) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            self.produce(self._mailbox.put, self._stop)
        finally:
            self._mailbox.close()

    def frames(self) -> Iterator[Frame]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()
        while not self._stop.is_set():
            try:
                frame = self._mailbox.take()
            except EOFError:
                return
            if frame is not None:
                yield frame

    def close(self) -> None:
        """Stop the producer and wait for it (it may be inside one blocking read)."""
        self._stop.set()
        self._mailbox.close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
