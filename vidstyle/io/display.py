"""Where live frames go: an OpenCV window, a virtual camera, or nowhere (stats only).

Each output is called with every delivered frame on the pipeline's last
thread; ``close`` releases it. An output that cannot start (no display, no
pyvirtualcam or no loopback device) raises a one-line error before the camera
opens.
"""
from __future__ import annotations

import os
import sys

from vidstyle.errors import VidstyleError
from vidstyle.frame import Frame
from vidstyle.pipeline.meter import Meter


def has_display(platform: str = sys.platform, environ=os.environ) -> bool:
    """Whether a window can open: always on Windows and macOS (their window servers need no
    variable), elsewhere (X11, Wayland) only with DISPLAY or WAYLAND_DISPLAY set."""
    if platform.startswith(("win", "darwin")):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


class Window:
    """An OpenCV window with an overlay. Keys: q/Esc quit, o overlay, n/p next/previous style,
    0-9 a built-in style; ``on_key`` receives the style keys."""

    def __init__(self, title: str = "vidstyle", on_key=None, label=lambda: "", mirror: bool = False):
        import cv2

        if not has_display():
            raise VidstyleError("--window needs a display (no DISPLAY or WAYLAND_DISPLAY here); "
                                "use --virtual-cam, --record or --stats-json")
        self.cv2, self.title, self.on_key, self.label, self.mirror = cv2, title, on_key, label, mirror
        self.overlay, self.quit = True, False
        self.meter = Meter()
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def __call__(self, frame: Frame) -> None:
        cv2 = self.cv2
        self.meter.add(frame)
        bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        if self.mirror:  # a preview of oneself reads like a mirror; the overlay text does not turn
            bgr = cv2.flip(bgr, 1)
        if self.overlay:
            text = f"{self.label()}  {self.meter.fps:.1f} fps  {self.meter.latency_ms:.0f} ms"
            cv2.putText(bgr, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            self.quit = True
        elif key == ord("o"):
            self.overlay = not self.overlay
        elif key != 0xFF and self.on_key:
            self.on_key(chr(key))

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)


class VirtualCamera:
    """A virtual camera through pyvirtualcam (v4l2loopback on Linux, OBS on Windows/macOS)."""

    def __init__(self, width: int, height: int, fps: float, backend: str | None = None):
        """``backend``: a pyvirtualcam backend by name (default: the platform's own)."""
        try:
            import pyvirtualcam
        except ImportError:
            raise VidstyleError("--virtual-cam needs pyvirtualcam: pip install 'vidstyle[live]' "
                                "(and v4l2loopback on Linux, or OBS on Windows/macOS: docs/live.md)") from None
        try:
            self.camera = pyvirtualcam.Camera(width=width, height=height, fps=fps, backend=backend)
        except RuntimeError as exc:
            raise VidstyleError(f"--virtual-cam: {exc}".splitlines()[0]) from None
        self.quit = False

    def __call__(self, frame: Frame) -> None:
        self.camera.send(frame.image)

    def close(self) -> None:
        self.camera.close()
