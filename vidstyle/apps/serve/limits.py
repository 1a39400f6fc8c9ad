"""What the web page lets its visitors hold: viewers, time to connect, silence, upload sizes.

One :class:`Limits` per server. The defaults suit a page left running on a machine; the
tests pass short deadlines so that a case takes a second, not fifteen.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vidstyle.engines.cpu import usable_cores
from vidstyle.errors import VidstyleError


def default_max_viewers() -> int:
    """One viewer per core this process may use, and never fewer than two: each viewer runs its
    own pipeline on the shared engine (15-17 threads), and viewers beyond the cores only
    split the same frames per second between more pages."""
    return max(2, usable_cores())


@dataclass(frozen=True)
class Limits:
    """``max_viewers``: viewers held at once, counting offers not yet connected; one more is
    answered 503. ``setup_deadline``: seconds from the answer to a connection that is up, else
    the viewer is dropped. ``liveness``: seconds a connected viewer may send nothing at all (no
    media, no RTCP report, no data channel packet) before it is taken for gone; a browser on a
    slow network still sends its RTCP reports every second or so. ``picture_bytes`` and
    ``picture_pixels``: the largest style picture accepted, as uploaded and as declared in its
    header. ``public_url``: the address browsers use when a proxy serves the page (its origin
    and host are accepted besides the bound address)."""

    max_viewers: int = field(default_factory=default_max_viewers)
    setup_deadline: float = 15.0
    liveness: float = 10.0
    picture_bytes: int = 8 * 1024 * 1024
    picture_pixels: int = 40_000_000
    public_url: str | None = None

    def __post_init__(self):
        if self.max_viewers < 1:
            raise VidstyleError(f"--max-viewers: expected 1 or more, got {self.max_viewers}")
        if self.setup_deadline <= 0 or self.liveness <= 0:
            raise VidstyleError("the setup deadline and the liveness timeout must be positive")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise VidstyleError(f"--public-url: expected the page's address, such as "
                                    f"https://studio.example.com, got {self.public_url!r}")
