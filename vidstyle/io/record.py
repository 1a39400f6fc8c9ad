"""``live --record``: the delivered frames into a video file, encoded beside the live loop.

Frames from a file camera keep the source frame's timestamp (a second pass of a looped
file continues after the first), so a recording can be compared frame by frame with the
source; a device camera's frames are stamped with their capture time. Encoding runs on
its own thread with the fastest x264 preset, so the picture does not wait for it; the
file appears under its name only when the run ends without an error.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from vidstyle.frame import Frame
from vidstyle.io.sink import EncodeSettings, FileSink, check_target
from vidstyle.io.source import VideoInfo

SETTINGS = EncodeSettings(crf=16, preset="ultrafast")  # near-lossless at a few ms a frame
CLOCK = Fraction(1, 1000)  # a device camera's timestamps: milliseconds since the first frame
BACKLOG = 60  # frames waiting for the encoder before the live loop waits for it


class Recorder:
    """A live output writing every delivered frame to ``path``."""

    def __init__(self, path, width: int, height: int, rate: float, time_base: Fraction | None = None,
                 inputs=()):
        self.path = Path(path)
        check_target(self.path, inputs)
        self._stamped = time_base is not None
        # The sink refuses to overwrite the info's path: the camera's file, if it is one.
        info = VideoInfo(path=str(inputs[0]) if inputs else "", width=width, height=height, rotation=0,
                         time_base=time_base or CLOCK, average_rate=Fraction(rate).limit_denominator(1001),
                         frame_count=None, duration=None, codec="", has_audio=False)
        self._sink = FileSink(self.path, info, width, height, SETTINGS)
        self._queue: queue.Queue = queue.Queue(BACKLOG)
        self._first: float | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._encode, name="vidstyle-record", daemon=True)
        self._thread.start()

    def __call__(self, frame: Frame) -> None:
        if self._error is not None:
            raise self._error
        if not self._stamped:
            self._first = frame.captured if self._first is None else self._first
            frame = replace(frame, pts=round((frame.captured - self._first) / CLOCK), time_base=CLOCK)
        self._queue.put(frame)

    def _encode(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is None:
                try:
                    self._sink.write(frame)
                except BaseException as exc:  # noqa: BLE001 - raised on the live loop by the next call
                    self._error = exc

    def close(self, ok: bool = True) -> None:
        """Finish the file (``ok``) or drop it; either way the encoder thread is joined."""
        self._queue.put(None)
        self._thread.join()
        if ok and self._error is None:
            self._sink.close()
        else:
            self._sink.abort()
        if ok and self._error is not None:
            raise self._error

    @property
    def frames(self) -> int:
        return self._sink.frames
