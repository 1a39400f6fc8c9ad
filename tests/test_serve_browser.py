"""The --serve page end to end in headless Chromium with its fake camera (Playwright).

The page connects, stylized frames come back, and they are the engine's
stylization of what the camera showed: the page's own camera frame and the
returned frame are read back from canvases, the camera frame is stylized here
with the same style and size, and the returned frame must be far nearer that
than the camera frame. VP8 loses detail both ways, so "nearer" is a ratio.

The fake camera plays a still picture made here (a Y4M file): Chrome's own
test pattern is a flat green field with a pie that changes every frame, and
the network's answer to a flat field hinges on that pie, so a frame or two of
skew between the grabbed camera frame and the returned one changed the whole
stylized picture.
"""
from __future__ import annotations

import base64
import threading
import time

import cv2
import numpy as np
import pytest

from benchmarks.serve_probe import find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None,
                                reason="needs Chromium at /usr/bin/chromium (make test installs it with apt-get)")

SIZE = (128, 96)

# Both videos drawn onto canvases in the same task, so the two pictures are as close in time as the
# page can make them; returned as PNG data URLs.
GRAB = """() => ["local", "remote"].map((id) => {
  const video = document.getElementById(id);
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/png");
})"""


def write_y4m(path, rgb: np.ndarray, frames: int = 4):
    """A raw I420 clip of one picture: what --use-file-for-fake-video-capture plays, in a loop."""
    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


def decode(data_url: str) -> np.ndarray:
    png = np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def stylized_ratio(page, stylizer) -> float:
    """Distance of the returned frame to the stylized camera frame over its distance to the
    camera frame itself; the best of a few grabs, since one may fall on a VP8 key frame."""
    best = np.inf
    for _ in range(3):
        local, remote = (decode(url) for url in page.evaluate(GRAB))
        assert local.shape == remote.shape, "frames go back at the camera's size"
        best = min(best, mad(remote, stylizer.image(local, SIZE)) / mad(remote, local))
        page.wait_for_timeout(150)
    return best


@pytest.mark.slow
def test_the_page_shows_the_camera_stylized(tmp_path, threads):
    from vidstyle.processing import styles
    from vidstyle.apps.serve.server import running
    from benchmarks.serve_probe import chromium
    from vidstyle.pipeline.stylizer import Stylizer
    from vidstyle.apps.serve.viewer import ViewerSettings

    y, x = np.mgrid[0:256, 0:256]
    picture = np.zeros((256, 256, 3), np.uint8)
    picture[((x + y) // 24) % 2 == 0] = (220, 30, 30)
    ok, png = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    (tmp_path / "style.png").write_bytes(png.tobytes())

    from media import draw_frame

    camera = write_y4m(tmp_path / "camera.y4m", draw_frame(5, 640, 480))
    with running(ViewerSettings(size=SIZE, temporal="off")) as server, \
            chromium(extra_args=(f"--use-file-for-fake-video-capture={camera}",)) as browser:
        page = browser.new_page()
        page.goto(server.url)
        # Frames are back once the server has reported some delivered and the video has a size.
        page.wait_for_function("document.getElementById('remote').videoWidth > 0 && "
                               "(window.vidstyleServerStats || {}).delivered > 10", timeout=30_000, polling=100)
        assert page.text_content("#status") == "connected"
        assert stylized_ratio(page, Stylizer(styles.parse("7"))) < 0.5

        page.select_option("#style", "3")
        page.wait_for_function("document.getElementById('status').textContent === 'style 3'", timeout=20_000)
        page.wait_for_timeout(500)  # frames already in flight were stylized in the old style
        assert stylized_ratio(page, Stylizer(styles.parse("3"))) < 0.5

        # The thumbnails pick styles too, and show which one is on.
        assert page.evaluate("[...document.querySelectorAll('#thumbs img')].every(i => i.naturalWidth === 160)")
        page.click('#thumbs button[data-style="12"]')
        page.wait_for_function("document.getElementById('status').textContent === 'style 12'", timeout=20_000)
        assert page.get_attribute('#thumbs button[data-style="12"]', "aria-pressed") == "true"
        assert page.input_value("#style") == "12"
        page.wait_for_timeout(500)
        assert stylized_ratio(page, Stylizer(styles.parse("12"))) < 0.5

        page.set_input_files("#picture", files=[{"name": "garbage.png", "mimeType": "image/png",
                                                 "buffer": b"not a picture"}])
        page.wait_for_function("document.getElementById('status').className === 'error'", timeout=10_000)
        assert page.text_content("#status").startswith("not a picture")

        page.set_input_files("#picture", files=[{"name": "style.png", "mimeType": "image/png",
                                                 "buffer": png.tobytes()}])
        page.wait_for_function("document.getElementById('status').textContent === 'style picture'",
                               timeout=30_000)
        page.wait_for_timeout(500)
        assert stylized_ratio(page, Stylizer(styles.parse(str(tmp_path / "style.png")))) < 0.5

        readout = page.text_content("#readout")
        assert "fps" in readout and "arrival→send" in readout, readout
        page.close()  # the browser closes the connection: the viewer must go
        deadline = time.monotonic() + 15
        while server.viewers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.viewers
    assert threading.active_count() == threads.start, threads.leaked()


@pytest.mark.slow
def test_a_page_beyond_the_viewer_limit_says_the_server_is_busy(threads):
    """The second page of a server that takes one viewer shows why it gets nothing; once the
    first page closes, a reload connects."""
    from benchmarks.serve_probe import chromium
    from vidstyle.apps.serve.limits import Limits
    from vidstyle.apps.serve.server import running
    from vidstyle.apps.serve.viewer import ViewerSettings

    connected = "(window.vidstyleServerStats || {}).delivered > 0"
    with running(ViewerSettings(size=SIZE, temporal="off"), limits=Limits(max_viewers=1)) as server, \
            chromium() as browser:
        first, second = browser.new_page(), browser.new_page()
        first.goto(server.url)
        first.wait_for_function(connected, timeout=30_000, polling=100)
        second.goto(server.url)
        second.wait_for_function("document.getElementById('status').className === 'error'", timeout=20_000)
        assert second.text_content("#status") == ("the server is busy: it serves at most 1 viewer(s) at once; "
                                                  "try again when one leaves")
        first.close()
        deadline = time.monotonic() + 15
        while server.viewers and time.monotonic() < deadline:
            time.sleep(0.05)
        second.reload()
        second.wait_for_function(connected, timeout=30_000, polling=100)
        second.close()
        deadline = time.monotonic() + 15
        while server.viewers and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.viewers
    assert threading.active_count() == threads.start, threads.leaked()
