"""Cameras through OpenCV: a device, a stream URL or a file, newest frame first."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from vidstyle.errors import VidstyleError
from vidstyle.frame import Frame
from vidstyle.io.feed import Feed


class CameraSource(Feed):
    """A camera through OpenCV: ``0`` / ``/dev/video2`` / a URL / a file, newest frame first.

    The driver buffer is asked to hold one frame so a slow reader sees the
    present, not the past. When a read fails the device is reopened, with
    backoff doubling from ``backoff`` seconds; after ``retries`` failed opens in
    a row the run ends and ``gone`` says why.
    """

    def __init__(self, spec: str, retries: int = 3, backoff: float = 0.5, loop: bool = False,
                 count: int | None = None, open_capture=None):
        super().__init__()
        self.spec = spec
        self.loop, self.count = loop, count
        self.is_file = Path(spec).is_file()  # a file ends (or loops); a device or stream is reconnected
        self.retries, self.backoff = retries, backoff
        self._open = open_capture or _open_capture

    def produce(self, put: Callable[[Frame], None], stop: threading.Event) -> None:
        index, attempt = 0, 0
        capture = None
        try:
            while not stop.is_set() and (self.count is None or index < self.count):
                if capture is None:
                    capture = self._open(self.spec)
                    if capture is None:
                        attempt += 1
                        if attempt >= max(1, self.retries):
                            self.gone = (f"cannot open camera {self.spec}" if index == 0 else
                                         f"camera {self.spec} is gone ({attempt} attempt(s) to reopen it failed)")
                            return
                        stop.wait(self.backoff * 2 ** (attempt - 1))
                        continue
                    fps = capture.get(_cv2().CAP_PROP_FPS)
                    self.rate = fps if fps and fps > 0 else self.rate
                ok, bgr = capture.read()
                if not ok:
                    capture.release()
                    capture = None
                    if self.is_file and not self.loop:
                        return
                    continue
                attempt = 0
                rgb = _cv2().cvtColor(bgr, _cv2().COLOR_BGR2RGB)
                put(Frame(index, None, None, rgb, time.monotonic()))
                index += 1
        finally:
            if capture is not None:
                capture.release()


def _cv2():
    import cv2

    return cv2


def camera_format(spec: str) -> tuple[int, int, float]:
    """Width, height and frame rate a camera delivers; a one-line error if it cannot be opened."""
    capture = _open_capture(spec)
    if capture is None:
        raise VidstyleError(f"cannot open camera {spec}")
    cv2 = _cv2()
    try:
        return (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                capture.get(cv2.CAP_PROP_FPS) or 30.0)
    finally:
        capture.release()


def _open_capture(spec: str):
    """An opened cv2.VideoCapture for ``spec`` (a digit is a device index), or None."""
    cv2 = _cv2()
    # OpenCV prints a page of backend warnings for a missing device; the caller says it in one line.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    capture = cv2.VideoCapture(int(spec) if spec.isdigit() else spec)
    if not capture.isOpened():
        capture.release()
        return None
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # not every backend honours it; the mailbox still keeps the newest
    return capture
