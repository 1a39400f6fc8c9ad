"""Browser round trip of ``vidstyle live --serve`` on localhost, measured in headless Chromium.

The page in probe mode (``/?probe=1``, see ``vidstyle/apps/serve/web/app.js``) sends a
canvas that switches between two pictures at random 0.4-0.8 s intervals and
times each switch from drawing it to the expected display time of the first
returned frame past the midpoint between the two stylized pictures: glass to
glass, minus the camera's exposure, plus up to a frame of canvas capture.

A brightness switch is a scene cut for ``--temporal flow`` (the warped history
fails the cut test and restarts), so smoothing does not delay the switch; with
``ema`` it would, by design.
"""
from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from vidstyle.errors import VidstyleError

CHROMIUM = "/usr/bin/chromium"
SEPARATION = 10.0  # least mean luminance gap (0-255) between the two stylized probe pictures to tell them apart
CHROMIUM_ARGS = (
    "--use-fake-device-for-media-stream",  # a synthetic camera ...
    "--use-fake-ui-for-media-stream",  # ... that the page may use without asking
    "--no-sandbox",  # tests and CI run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # A page without camera permission (the probe's canvas) would offer only mDNS
    # host candidates, which the server cannot resolve without multicast.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Headless pages count as hidden to some schedulers; keep timers and video at full rate.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
)


def find_chromium(executable: str | None = None) -> str | None:
    """The Chromium binary to drive: ``executable``, /usr/bin/chromium, or chromium on PATH."""
    for candidate in (executable, CHROMIUM, shutil.which("chromium")):
        if candidate and shutil.which(candidate):
            return candidate
    return None


@contextmanager
def chromium(executable: str | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[object]:
    """A headless Chromium (Playwright's sync API) that is closed, with its driver, on exit."""
    from playwright.sync_api import sync_playwright

    path = find_chromium(executable)
    if path is None:
        raise VidstyleError("Chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def browser_round_trip(seconds: float = 20.0, size: tuple[int, int] | int | None = None,
                       temporal: str = "flow", *, style: str = "7", engine: str = "auto", threads: int = 0,
                       executable: str | None = None, reuse: str = "auto") -> dict:
    """Serve in-process, open the probe page in headless Chromium and time switches for ``seconds``.

    ``size`` is the processing size (the probe camera is 320x240); None adapts it
    to keep up, as ``vidstyle live --serve`` does without ``--size``. Returns
    round-trip percentiles in ms (``p50``, ``p95``, ``p99``), ``n`` switches
    timed, ``missed`` switches that did not come back before the next one,
    ``fps`` frames shown per second by the page, and the server's own view
    (``server_fps``, ``server_latency_ms``: arrival to send, p50; ``server_size``:
    the processing size at the end, which adapts when ``size`` is None). ``reuse`` as
    ``vidstyle live --reuse`` (auto: keyframes on their own thread, live's default).
    """
    from vidstyle.apps.serve.server import running
    from vidstyle.apps.serve.viewer import ViewerSettings

    settings = ViewerSettings(style=style, size=size, temporal=temporal, engine=engine, threads=threads, reuse=reuse)
    with running(settings) as server, chromium(executable) as browser:
        page = browser.new_page()
        page.goto(server.url + "?probe=1")
        try:
            page.wait_for_function("window.vidstyleProbe && window.vidstyleProbe.phase === 'measure'",
                                   timeout=60_000, polling=200)
        except Exception:
            raise VidstyleError(f"the probe page did not start: {page.text_content('#status')}") from None
        page.wait_for_timeout(seconds * 1000)  # the page measures on its own; nothing to poll meanwhile
        probe = page.evaluate("window.vidstyleProbe")
        server_stats = page.evaluate("window.vidstyleServerStats || {}")
    samples = np.array(probe["samples"], float)
    if probe["separation"] < SEPARATION:
        raise VidstyleError(f"the probe's two pictures look alike once stylized (mean gap {probe['separation']:.0f} "
                            f"of 255); choose another style")
    if not len(samples):
        raise VidstyleError("no switch came back before the next one (every latency over 0.4 s)")
    presented = probe["presented"]
    span = (presented["until"] - presented["at"]) / 1000
    return {
        "p50": float(np.percentile(samples, 50)), "p95": float(np.percentile(samples, 95)),
        "p99": float(np.percentile(samples, 99)), "n": int(len(samples)), "missed": int(probe["missed"]),
        "fps": (presented["last"] - presented["first"]) / span if span > 0 else 0.0,
        "server_fps": server_stats.get("fps"), "server_latency_ms": (server_stats.get("latency_ms") or {}).get("p50"),
        "server_size": server_stats.get("size"),
        "separation": probe["separation"], "size": size, "temporal": temporal,
    }
