"""The --serve server without a browser: aiortc peers on localhost send pictures made here.

Each peer sends one still picture at 30 fps; what comes back is compared with
the engine's own stylization of that picture (same style, same processing
size, temporal smoothing off), so "stylized", "its own" and "the new style"
are all checked against the real network, allowing for VP8 loss.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

aiortc = pytest.importorskip("aiortc")
aiohttp = pytest.importorskip("aiohttp")

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack  # noqa: E402
from aiortc.mediastreams import MediaStreamError  # noqa: E402
import av  # noqa: E402

from media import draw_frame  # noqa: E402
from test_serve_pictures import png_declaring  # noqa: E402
from vidstyle.processing import styles  # noqa: E402
from vidstyle.errors import VidstyleError  # noqa: E402
from vidstyle.apps.serve.server import _listen, parse_address, running  # noqa: E402
from vidstyle.pipeline.stylizer import Stylizer  # noqa: E402
from vidstyle.engines.base import RunsNow  # noqa: E402
from vidstyle.apps.serve.viewer import ViewerSettings  # noqa: E402

SIZE = (128, 96)  # processing size: small, so the tests are quick on two cores
SETTINGS = ViewerSettings(size=SIZE, temporal="off")
CAMERA = (160, 120)


def picture_a() -> np.ndarray:
    return draw_frame(3, *CAMERA)


def picture_b() -> np.ndarray:
    """Yellow and blue checks: nothing like picture_a."""
    y, x = np.mgrid[0:CAMERA[1], 0:CAMERA[0]]
    checks = ((x // 16 + y // 16) % 2).astype(bool)
    image = np.empty((*checks.shape, 3), np.uint8)
    image[checks], image[~checks] = (240, 220, 30), (20, 40, 200)
    return image


def style_picture() -> np.ndarray:
    """A style picture: bold diagonal red and black stripes."""
    y, x = np.mgrid[0:256, 0:256]
    image = np.zeros((256, 256, 3), np.uint8)
    image[((x + y) // 24) % 2 == 0] = (220, 30, 30)
    return image


def stylized(picture: np.ndarray, spec: str, tmp_path=None) -> np.ndarray:
    return Stylizer(styles.parse(spec)).image(picture, SIZE)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


class PictureTrack(VideoStreamTrack):
    """A camera that shows one picture, at 30 fps."""

    def __init__(self, picture: np.ndarray):
        super().__init__()
        self.picture = picture

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(self.picture, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class Peer:
    """A viewer without a browser: sends a picture, keeps the newest frame that comes back."""

    def __init__(self, url: str, picture: np.ndarray):
        self.url, self.picture = url, picture
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.newest: np.ndarray | None = None
        self.frames = 0
        self.stats: list[dict] = []
        self.viewer: str | None = None
        self._collect: asyncio.Task | None = None

    async def connect(self) -> None:
        import json

        self.pc.addTrack(PictureTrack(self.picture))
        channel = self.pc.createDataChannel("stats")
        channel.on("message", lambda text: self.stats.append(json.loads(text)))
        self.pc.on("track", lambda track: setattr(self, "_collect", asyncio.ensure_future(self._take(track))))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.post("offer", json={"sdp": self.pc.localDescription.sdp,
                                                "type": self.pc.localDescription.type})
        self.viewer = answer["viewer"]
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))

    async def post(self, path: str, expect: int = 200, **kwargs) -> dict:
        async with aiohttp.ClientSession() as session:
            async with session.post(self.url + path, **kwargs) as response:
                body = await response.json()
                assert response.status == expect, body
                return body

    async def _take(self, track) -> None:
        try:
            while True:
                frame = await track.recv()
                self.newest = frame.to_ndarray(format="rgb24")
                self.frames += 1
        except MediaStreamError:
            pass

    async def settle_on(self, expected: np.ndarray, others: list[np.ndarray], timeout: float = 20.0) -> float:
        """Wait until the newest frame is much nearer ``expected`` than any of ``others``;
        returns that frame's distance to ``expected``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.newest
            if frame is not None and frame.shape == expected.shape:
                near = mad(frame, expected)
                if all(near < 0.5 * mad(frame, other) for other in others):
                    return near
            await asyncio.sleep(0.05)
        got = self.newest
        raise AssertionError(f"no frame settled on the expected picture in {timeout} s; newest: "
                             f"{None if got is None else [round(mad(got, e), 1) for e in [expected, *others]]}")

    async def close(self) -> None:
        await self.pc.close()
        if self._collect is not None:
            self._collect.cancel()
            await asyncio.gather(self._collect, return_exceptions=True)


def served_threads() -> set[str]:
    """Threads of the server and its viewers; the event loop's executor threads are pooled."""
    return {t.name for t in threading.enumerate() if not t.name.startswith("asyncio_")}


def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --- addresses and ports ------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("0.0.0.0:9000", ("0.0.0.0", 9000)),
    ("9000", ("127.0.0.1", 9000)),  # a port alone: localhost
    (":9000", ("127.0.0.1", 9000)),
    ("localhost", ("localhost", 8080)),  # a host alone: the default port
    ("[::1]:8081", ("::1", 8081)),
])
def test_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:http", "127.0.0.1:70000", "[::1]:x"])
def test_a_bad_address_is_one_line(text):
    with pytest.raises(VidstyleError, match="expected HOST:PORT"):
        parse_address(text)


def test_a_taken_port_is_one_line_before_any_slow_work(capsys):
    from vidstyle.apps.cli import main

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        started = time.monotonic()
        assert main(["live", "--serve", f"127.0.0.1:{port}"]) == 1
        assert time.monotonic() - started < 5  # the engine was never loaded
    finally:
        taken.close()
    assert capsys.readouterr().err.strip() == f"vidstyle: error: cannot listen on 127.0.0.1:{port}: address in use"


def test_serve_does_not_mix_with_a_window(capsys):
    from vidstyle.apps.cli import main

    assert main(["live", "--serve", "--window"]) == 1
    assert "drop --window" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--camera", "synthetic"], ["--stats-json", "s.json"], ["--loop"]])
def test_serve_refuses_options_of_a_local_camera(extra, capsys):
    """The browser is the camera: a --camera or --stats-json given with --serve is not silently dropped."""
    from vidstyle.apps.cli import main

    assert main(["live", "--serve", *extra]) == 1
    err = capsys.readouterr().err
    assert f"drop {extra[0]}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra, message", [
    (["--max-viewers", "0"], "vidstyle: error: --max-viewers: expected 1 or more, got 0"),
    (["--public-url", "studio.example.com"], ("vidstyle: error: --public-url: expected the page's address, such as "
                                              "https://studio.example.com, got 'studio.example.com'")),
])
def test_serve_limits_are_checked_before_any_slow_work(extra, message, capsys):
    from vidstyle.apps.cli import main

    assert main(["live", "--serve", "127.0.0.1:0", *extra]) == 1
    assert capsys.readouterr().err.strip() == message


# --- frames handed to the decoder ----------------------------------------------------------------

def rtp(seq: int, timestamp: int, marker: bool):
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(sequence_number=seq, timestamp=timestamp, marker=int(marker))
    packet._data = bytes([seq])  # the depayloaded bytes, as the receiver sets them
    return packet


@pytest.mark.parametrize("arrivals, handed_over", [
    # two packets a frame: each frame goes to the decoder with its last packet, not the next frame's first
    ([(0, 100, 0), (1, 100, 1), (2, 200, 0), (3, 200, 1)], [None, (100, b"\0\1"), None, (200, b"\2\3")]),
    # the middle packet comes late (retransmitted): the frame waits for it, then goes at once
    ([(0, 100, 0), (2, 100, 1), (1, 100, 0), (3, 200, 1)], [None, None, (100, b"\0\1\2"), (200, b"\3")]),
    # a frame whose marker never comes still goes when the next frame starts, as aiortc does it
    ([(0, 100, 0), (1, 200, 0), (2, 200, 1)], [None, (100, b"\0"), (200, b"\1\2")]),
])
def test_a_frame_goes_to_the_decoder_with_its_last_packet(arrivals, handed_over):
    from vidstyle.apps.serve.server import MarkerJitterBuffer

    buffer = MarkerJitterBuffer(capacity=16, is_video=True)
    got = []
    for seq, timestamp, marker in arrivals:
        frame = buffer.add(rtp(seq, timestamp, marker))[1]
        got.append(frame and (frame.timestamp, frame.data))
    assert got == handed_over


def test_the_video_receiver_gets_the_marker_buffer():
    # aiortc keeps the buffer in a private attribute. Were it renamed, the replacement would
    # do nothing and every frame would wait one frame interval: this fails first.
    from aiortc.jitterbuffer import JitterBuffer

    from vidstyle.apps.serve.server import MarkerJitterBuffer, _hand_over_at_marker

    async def receiver_buffers():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            receiver = pc.addTransceiver("video", direction="recvonly").receiver
            replaced = _hand_over_at_marker(pc, receiver.track)
            return replaced, [value for value in vars(receiver).values() if isinstance(value, JitterBuffer)]
        finally:
            await pc.close()

    replaced, buffers = asyncio.run(receiver_buffers())
    assert replaced and buffers, f"aiortc {aiortc.__version__}: its receiver has no jitter buffer where expected"
    assert all(isinstance(b, MarkerJitterBuffer) for b in buffers), \
        f"aiortc {aiortc.__version__}: a jitter buffer of the video receiver was not replaced"


# --- viewers ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_viewers_each_get_their_own_picture_stylized(threads):
    a, b = picture_a(), picture_b()
    want_a, want_b = stylized(a, "7"), stylized(b, "7")

    async def scenario(url):
        peers = [Peer(url, a), Peer(url, b)]
        try:
            await asyncio.gather(*(p.connect() for p in peers))
            near_a = await peers[0].settle_on(want_a, [want_b, a, b])
            near_b = await peers[1].settle_on(want_b, [want_a, a, b])
            await asyncio.sleep(1.0)  # the stats message comes every half second
            return near_a, near_b, peers[0].stats[-1] if peers[0].stats else None
        finally:
            await asyncio.gather(*(p.close() for p in peers))

    with running(SETTINGS) as server:
        near_a, near_b, stats = asyncio.run(scenario(server.url))
        assert near_a < 25 and near_b < 25  # VP8 at a few hundred kbit/s, not bit-exact
        assert stats is not None and stats["fps"] > 0 and stats["size"] == "128x96"
        assert stats["latency_ms"]["p50"] > 0
        assert wait_until(lambda: not server.viewers)
    threads.assert_back_to_start()


@pytest.mark.slow
def test_a_viewer_switches_styles_and_uploads_a_picture(tmp_path, threads):
    a = picture_a()
    cv2.imwrite(str(tmp_path / "style.png"), cv2.cvtColor(style_picture(), cv2.COLOR_RGB2BGR))
    png = (tmp_path / "style.png").read_bytes()
    want7, want3 = stylized(a, "7"), stylized(a, "3")
    want_picture = stylized(a, str(tmp_path / "style.png"))

    async def scenario(url):
        peer = Peer(url, a)
        try:
            await peer.connect()
            await peer.settle_on(want7, [want3, a])
            assert (await peer.post(f"viewers/{peer.viewer}/style", json={"style": 3})) == {"style": "3"}
            await peer.settle_on(want3, [want7, a])
            await peer.post(f"viewers/{peer.viewer}/picture", data=png)
            await peer.settle_on(want_picture, [want7, want3, a], timeout=40)
            # back from a picture to a built-in: another network, another stylizer
            await peer.post(f"viewers/{peer.viewer}/style", json={"style": 7})
            await peer.settle_on(want7, [want3, want_picture, a])
            # mistakes: a clear message for the page, and the viewer carries on
            bad = await peer.post(f"viewers/{peer.viewer}/picture", expect=400, data=b"not a picture at all")
            assert bad["error"].startswith("not a picture")
            big = await peer.post(f"viewers/{peer.viewer}/picture", expect=413, data=b"\0" * (9 * 2**20))
            assert big["error"] == "the picture is larger than 8 MB"
            bomb = await peer.post(f"viewers/{peer.viewer}/picture", expect=413, data=png_declaring(30000, 30000))
            assert bomb["error"] == "the PNG declares 30000x30000 pixels (900 MP); the server takes pictures up to 40 MP"
            empty = await peer.post(f"viewers/{peer.viewer}/picture", expect=400,
                                    data=png_declaring(64, 64, rows=False))
            assert empty["error"].startswith("cannot decode the PNG")
            for style in (26, "7.5", "/etc/passwd", True):
                await peer.post(f"viewers/{peer.viewer}/style", expect=400, json={"style": style})
            await peer.post("viewers/nobody/style", expect=404, json={"style": 3})
            await peer.settle_on(want7, [want3, want_picture, a])
        finally:
            await peer.close()

    with running(SETTINGS) as server:
        asyncio.run(scenario(server.url))
        assert wait_until(lambda: not server.viewers)
    threads.assert_back_to_start()


@pytest.mark.slow
def test_a_viewer_that_leaves_frees_its_pipeline_while_others_stay(threads):
    a, b = picture_a(), picture_b()
    want_b = stylized(b, "7")

    async def scenario(server):
        stay = Peer(server.url, b)
        await stay.connect()
        await stay.settle_on(want_b, [b])
        before = served_threads()
        leave = Peer(server.url, a)
        await leave.connect()
        await leave.settle_on(stylized(a, "7"), [a])
        assert len(server.viewers) == 2 and len(served_threads()) > len(before)
        await leave.close()
        deadline = time.monotonic() + 15
        while (len(server.viewers) > 1 or served_threads() - before) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert list(server.viewers) == [stay.viewer], "the viewer that left is still registered"
        assert served_threads() - before == set(), f"left running: {served_threads() - before}"
        frames = stay.frames
        await stay.settle_on(want_b, [b])  # the one that stayed is still served
        await asyncio.sleep(0.5)
        assert stay.frames > frames
        await stay.close()

    with running(SETTINGS) as server:
        asyncio.run(scenario(server))
        assert wait_until(lambda: not server.viewers)
    threads.assert_back_to_start()


@pytest.mark.slow
def test_stopping_the_server_drops_connected_viewers(threads):
    a = picture_a()
    stack = contextlib.ExitStack()
    server = stack.enter_context(running(SETTINGS))

    async def scenario():
        peer = Peer(server.url, a)
        try:
            await peer.connect()
            await peer.settle_on(stylized(a, "7"), [a])
            await asyncio.to_thread(stack.close)  # as on Ctrl-C: the server stops with a viewer connected
            assert not server.viewers
            deadline = time.monotonic() + 15
            while peer.pc.connectionState not in ("closed", "failed") and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert peer.pc.connectionState == "closed"  # the server said goodbye
        finally:
            await peer.close()

    try:
        asyncio.run(scenario())
    finally:
        stack.close()
    threads.assert_back_to_start()


class BrokenEngine(RunsNow):
    """An engine whose device is lost after a few frames."""

    name, model = "broken", "multistyle26"

    def __init__(self):
        self.calls = 0

    def run(self, batch, style):
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("device lost")
        return batch

    def close(self):
        pass


class BrokenSettings(ViewerSettings):
    def stylizer(self, style):
        return Stylizer(style, engine=BrokenEngine())


@pytest.mark.slow
def test_a_failing_pipeline_tells_its_page_and_frees_the_viewer(threads):
    a = picture_a()

    async def scenario(server):
        peer = Peer(server.url, a)
        try:
            await peer.connect()
            deadline = time.monotonic() + 15
            while not any("error" in m for m in peer.stats) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            errors = [m["error"] for m in peer.stats if "error" in m]
            assert len(errors) == 1 and re.fullmatch(r"engine failed at frame \d+: device lost", errors[0]), errors
            while server.viewers and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not server.viewers
        finally:
            await peer.close()

    with running(BrokenSettings(size=SIZE, temporal="off")) as server:
        asyncio.run(scenario(server))
    threads.assert_back_to_start()


def test_an_offer_without_video_is_refused(threads):
    async def scenario(url):
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.createDataChannel("stats")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            async with aiohttp.ClientSession() as session:
                offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
                async with session.post(url + "offer", json=offer) as response:
                    return response.status, await response.json()
        finally:
            await pc.close()

    with running(SETTINGS) as server:
        status, body = asyncio.run(scenario(server.url))
        assert status == 400 and body["error"] == "the offer must send exactly one video track (the camera); it has 0"
        assert not server.viewers
    threads.assert_back_to_start()


# --- the command --------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_serves_until_a_signal_then_exits_cleanly(sig, tmp_path):
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "vidstyle", "live", "--serve", "127.0.0.1:0", "--size", "64"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()  # printed once the page is served
        match = re.fullmatch(r"vidstyle: serving on (http://127\.0\.0\.1:\d+/); Ctrl-C stops\n", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        with urllib.request.urlopen(match[1] + "styles", timeout=10) as response:
            assert json.load(response)["builtins"] == list(range(26))
        with urllib.request.urlopen(match[1], timeout=10) as response:
            assert b"<video id=\"remote\"" in response.read()
        port = int(match[1].rsplit(":", 1)[1].strip("/"))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a malformed request line
            sock.sendall(b"GET / HTTP/9.9\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.0 400 ")
        process.send_signal(sig)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err and out == "", (out, err)
    bad_line = "vidstyle: bad request from 127.0.0.1: Bad status line: Invalid HTTP version: b'GET / HTTP/9.9'"
    assert err.splitlines() == [bad_line], err
