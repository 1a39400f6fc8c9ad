"""The --serve page's routes answer bad and foreign requests with a 4xx and one line.

One server for the module; each request is made with http.client, which sends exactly the
headers given (a browser's Origin, Sec-Fetch-Site, another Host). Offers are real aiortc
offers, edited as text where a case needs a broken one. After every case no viewer is
held, and the server logged nothing above INFO: no traceback, no task exception nobody
retrieved.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import logging
import re
import socket
from urllib.parse import urlsplit

import pytest

aiortc = pytest.importorskip("aiortc")
pytest.importorskip("aiohttp")

from aiortc import AudioStreamTrack, RTCConfiguration, RTCPeerConnection
from test_serve import SETTINGS, PictureTrack, picture_a, wait_until

from vidstyle.apps.serve.limits import Limits
from vidstyle.apps.serve.server import running

PUBLIC = "https://studio.example.com"


@pytest.fixture(scope="module")
def server():
    with running(SETTINGS, limits=Limits(max_viewers=2, setup_deadline=2.0, public_url=PUBLIC)) as server:
        yield server


@pytest.fixture
def quiet_server(server, caplog):
    """The server, checked after the test: nothing held, nothing logged above INFO."""
    caplog.set_level(logging.INFO)
    yield server
    assert wait_until(lambda: not server.viewers, timeout=10), "a refused request left a viewer"
    loud = [r.getMessage() for r in caplog.records if r.levelno > logging.INFO]
    assert loud == [], loud


def send(url: str, method: str, path: str, body: bytes | str = b"", headers: dict | None = None):
    """(status, decoded JSON or text, headers) of one request with exactly these headers
    (Host is http.client's unless given)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request(method, path, body=body.encode() if isinstance(body, str) else body,
                           headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        try:
            payload = json.loads(data)
        except ValueError:
            payload = data.decode(errors="replace")
        return response.status, payload, response.headers
    finally:
        connection.close()


def make_offer(video: int = 1, audio: bool = False) -> str:
    """A real aiortc offer: ``video`` camera tracks, maybe a microphone, and a data channel."""

    async def offer() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            for _ in range(video):
                pc.addTrack(PictureTrack(picture_a()))
            if audio:
                pc.addTrack(AudioStreamTrack())
            pc.createDataChannel("stats")
            await pc.setLocalDescription(await pc.createOffer())
            return pc.localDescription.sdp
        finally:
            await pc.close()

    return asyncio.run(offer())


@pytest.fixture(scope="module")
def offer():
    return make_offer()


def as_json(sdp: str, kind: str = "offer") -> str:
    return json.dumps({"sdp": sdp, "type": kind})


JSON = {"Content-Type": "application/json"}


# --- other sites ---------------------------------------------------------------------------------

def port_of(server) -> int:
    return urlsplit(server.url).port


@pytest.mark.parametrize("path", ["/offer", "/viewers/abc/style", "/viewers/abc/picture"])
@pytest.mark.parametrize("headers, refusal", [
    # another site's page: a "simple" request, no preflight
    ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, "requests from http://evil.example"),
    ({"Origin": "http://evil.example", "Content-Type": "application/json"}, "requests from http://evil.example"),
    # a page on another port of the same machine is another origin
    ({"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}, "requests from http://127.0.0.1:1"),
    # a sandboxed frame or a file:// page
    ({"Origin": "null", "Content-Type": "application/json"}, "requests from null"),
    # a browser that sends Sec-Fetch-Site but no Origin
    ({"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, "a cross-site request"),
    ({"Sec-Fetch-Site": "same-site", "Content-Type": "application/json"}, "a same-site request"),
    # DNS rebinding: the attacker's name now points here, so to the browser it is same-origin
    ({"Host": "rebind.example:{port}", "Origin": "http://rebind.example:{port}", "Sec-Fetch-Site": "same-origin",
      "Content-Type": "application/json"}, "this server does not answer for 'rebind.example:{port}'"),
], ids=["simple", "json", "other-port", "null", "cross-site", "same-site", "rebinding"])
def test_other_sites_get_403(quiet_server, offer, path, headers, refusal):
    port = port_of(quiet_server)
    headers = {k: v.format(port=port) for k, v in headers.items()}
    status, body, _ = send(quiet_server.url, "POST", path, as_json(offer), headers)
    assert status == 403, body
    assert body["error"].startswith(refusal.format(port=port)), body


def test_a_rebinding_site_cannot_read_the_page_either(quiet_server):
    status, body, _ = send(quiet_server.url, "GET", "/styles", headers={"Host": "rebind.example"})
    assert status == 403 and "does not answer for 'rebind.example'" in body["error"]


@pytest.mark.parametrize("headers", [
    {"Origin": "http://{host}"},  # the page itself, in a browser
    {"Origin": "http://{host}", "Sec-Fetch-Site": "same-origin"},
    {"Host": "localhost:{port}", "Origin": "http://localhost:{port}", "Sec-Fetch-Site": "same-origin"},
    {},  # not a browser: curl, a script
    {"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"},  # behind a proxy that sets Host to the upstream address
    {"Host": "studio.example.com", "Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"},  # one that passes Host on
], ids=["origin", "fetch-metadata", "localhost", "no-browser", "proxy-upstream-host", "proxy-public-host"])
def test_the_pages_own_requests_pass(quiet_server, headers):
    """Passing the checks, a style change for a viewer that does not exist is a 404, not a 403."""
    port = port_of(quiet_server)
    headers = {k: v.format(port=port, host=f"127.0.0.1:{port}") for k, v in headers.items()}
    status, body, _ = send(quiet_server.url, "POST", "/viewers/nobody/style", '{"style": 3}', {**JSON, **headers})
    assert (status, body) == (404, {"error": "no such viewer (the connection has closed)"})


@pytest.mark.parametrize("path, content_type", [
    ("/offer", "text/plain"),  # what a cross-site form or fetch may send without asking
    ("/offer", "application/x-www-form-urlencoded"),
    ("/offer", None),
    ("/viewers/abc/style", "multipart/form-data; boundary=x"),
    ("/viewers/abc/picture", "text/plain"),
    ("/viewers/abc/picture", None),
])
def test_a_body_type_another_site_could_send_is_refused(quiet_server, offer, path, content_type):
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, body, _ = send(quiet_server.url, "POST", path, as_json(offer), headers)
    assert status == 403 and body["error"].startswith("expected "), body
    assert ("got none" if content_type is None else content_type.split(";")[0]) in body["error"]


# --- offers --------------------------------------------------------------------------------------

def without(sdp: str, prefix: str) -> str:
    return "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith(prefix))


def video_sections(sdp: str, copies: int) -> str:
    """The offer with its video section repeated: ``copies`` video m-lines."""
    head, *sections = re.split(r"(?m)^(?=m=)", sdp)
    video = next(s for s in sections if s.startswith("m=video"))
    extra = [re.sub(r"a=mid:\S+", f"a=mid:v{i}", video) for i in range(copies - 1)]
    return head + "".join(sections) + "".join(extra)


OFFERS = [
    # (id, make the body from a good offer, status, error)
    ("not-json", lambda sdp: "{sdp: ", 400, "expected JSON {sdp, type} holding a WebRTC offer"),
    ("nested-20k", lambda sdp: "[" * 20_000 + "]" * 20_000, 400, "expected JSON {sdp, type} holding a WebRTC offer"),
    ("nested-200k", lambda sdp: "[" * 200_000 + "]" * 200_000, 413, "the request is larger than 64 KB"),
    ("a-list", lambda sdp: "[]", 400, "expected JSON {sdp, type} holding a WebRTC offer"),
    ("no-sdp", lambda sdp: '{"type": "offer"}', 400, "expected JSON {sdp, type} holding a WebRTC offer"),
    ("sdp-not-text", lambda sdp: '{"sdp": 5, "type": "offer"}', 400, "expected JSON {sdp, type} holding a WebRTC offer"),
    ("an-answer", lambda sdp: as_json(sdp, "answer"), 400, "expected an offer, got 'answer'"),
    ("not-sdp", lambda sdp: as_json("hello"), 400, "the offer must send exactly one video track (the camera); it has 0"),
    ("broken-sdp", lambda sdp: as_json(re.sub(r"(?m)^m=video \d+", "m=video x", sdp)), 400, "cannot read this offer's SDP"),
    ("two-videos", lambda sdp: as_json(make_offer(video=2)), 400,
     "the offer must send exactly one video track (the camera); it has 2"),
    ("twenty-videos", lambda sdp: as_json(video_sections(sdp, 20)), 400,
     "the offer must send exactly one video track (the camera); it has 20"),
    ("fifty-videos", lambda sdp: as_json(video_sections(sdp, 50)), 413, "the request is larger than 64 KB"),
    ("audio-too", lambda sdp: as_json(make_offer(audio=True)), 400,
     "the offer has audio tracks; send the camera's video only"),
    ("receive-only", lambda sdp: as_json(sdp.replace("a=sendrecv", "a=recvonly")), 400,
     "the offer's video track must send the camera; it is recvonly"),
    ("no-fingerprint", lambda sdp: as_json(without(sdp, "a=fingerprint")), 400,
     "the offer's video section has no DTLS fingerprint"),
    ("md5-fingerprint", lambda sdp: as_json(re.sub(r"a=fingerprint:\S+", "a=fingerprint:md5", sdp)), 400,
     "the offer's video section has no DTLS fingerprint"),
    ("no-ice-credentials", lambda sdp: as_json(without(sdp, "a=ice-ufrag")), 400,
     "the offer's video section has no ICE username and password"),
    ("too-big", lambda sdp: as_json(sdp + "a=x-padding:" + "x" * 70_000 + "\r\n"), 413, "the request is larger than 64 KB"),
]


@pytest.mark.parametrize("make, status, error", [case[1:] for case in OFFERS], ids=[case[0] for case in OFFERS])
def test_a_bad_offer_is_a_4xx_and_holds_nothing(quiet_server, offer, make, status, error):
    code, body, _ = send(quiet_server.url, "POST", "/offer", make(offer), JSON)
    assert code == status, body
    assert body["error"].startswith(error), body


def test_a_bad_style_request_is_a_400(quiet_server, offer):
    """A real viewer, so that the body is what is refused; it never connects, and the setup
    deadline takes it away after the test."""
    code, answer, _ = send(quiet_server.url, "POST", "/offer", as_json(offer), JSON)
    assert code == 200, answer
    expected = 'expected JSON {"style": N}'
    for body, error in [('{"style": 26}', "unknown style index 26; built-in styles are 0 to 25"),
                        ('{"style": "../x"}', expected), ("[" * 20_000 + "]" * 20_000, expected),
                        ("null", expected), ("[3]", expected), ("{", expected)]:
        status, reply, _ = send(quiet_server.url, "POST", f"/viewers/{answer['viewer']}/style", body, JSON)
        assert status == 400 and reply["error"].startswith(error), (body[:20], reply)


# --- requests that are not HTTP ------------------------------------------------------------------

@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE AFTER A GOOD REQUEST\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # a TLS hello on the plain port
], ids=["garbage", "version", "nul", "header", "second", "tls"])
def test_a_malformed_request_is_a_400_and_at_most_one_log_line(server, caplog, request_bytes):
    caplog.set_level(logging.DEBUG)
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")), answer[:200]  # aiohttp logs, then answers
    logged = [r for r in caplog.records if r.name.startswith(("vidstyle", "aiohttp")) and r.levelno >= logging.INFO]
    assert len(logged) <= 1, [r.getMessage() for r in logged]
    for record in logged:
        assert record.exc_info is None and "\n" not in record.getMessage(), record.getMessage()
        assert record.getMessage().startswith("bad request from 127.0.0.1: "), record.getMessage()
