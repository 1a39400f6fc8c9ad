"""``vidstyle live --serve``: a web page that stylizes the browser's camera over WebRTC.

The page (``web/`` beside this module) sends its camera as a WebRTC video track and
shows what comes back beside its own preview. Routes: ``GET /`` and ``/app.js`` (the
page), ``GET /styles`` (names and thumbnails, ``/styles/N.jpg``), ``POST /offer`` (the
page's complete SDP offer in, the answer and an unguessable viewer id out: all the
signalling there is; no STUN, for localhost
or a LAN), ``POST /viewers/{id}/style`` (a built-in index) and
``POST /viewers/{id}/picture`` (a picture as the body). A new style's stylizer is built
and traced off the event loop before the viewer switches to it.

Each peer connection is a :class:`vidstyle.apps.serve.viewer.Viewer`; only the engine is
shared between viewers. A viewer whose connection closes or fails, or whose data
channel closes, is dropped (peer closed, worker and pipeline joined); Ctrl-C or SIGTERM
drops every viewer, then stops the web server. Network requirements:
docs/design-notes.md.

What a visitor may hold is bounded (:class:`vidstyle.apps.serve.limits.Limits`): viewers
at once (503 beyond), the time an answered offer has to connect and the silence a connected
one may keep before it is dropped (``watch``), the size of a style picture as uploaded and
as its header declares it (``pictures``). Only the page's own origin may post (``origin``);
an offer must send one video track and carry its DTLS fingerprint (``offers``). Every bad
request is a 4xx with a one-line ``{"error": ...}`` the page shows (``answers``), and one
line in the log at most (``logs``).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

from vidstyle.apps.serve import answers, pictures, watch
from vidstyle.apps.serve.answers import Refused
from vidstyle.apps.serve.bodies import check_picture_type, read_json, read_limited
from vidstyle.apps.serve.limits import Limits
from vidstyle.apps.serve.logs import RequestErrors, on_loop_error, one_line
from vidstyle.apps.serve.offers import offer_from
from vidstyle.apps.serve.origin import SameOrigin
from vidstyle.apps.serve.viewer import Viewer, ViewerSettings, plan_sizing
from vidstyle.errors import StyleError, VidstyleError
from vidstyle.models import NUM_STYLES, catalog
from vidstyle.processing import styles
from vidstyle.processing.styles import Style

log = logging.getLogger("vidstyle.serve")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080
SHUTDOWN_WAIT = 3.0  # seconds a request still in progress may take once the server stops
COLLECT_AFTER = 1.0  # seconds after the last dropped viewer before its memory is collected
WEB = Path(__file__).parent / "web"


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``HOST``, ``PORT`` or ``[IPv6]:PORT`` -> (host, port)."""
    host, port = DEFAULT_HOST, DEFAULT_PORT
    given = text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, text = text.split(":")
        host = host or DEFAULT_HOST
    elif not text.isdigit():
        host, text = text, ""
    try:
        if text:
            port = int(text)
        if not host or not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise VidstyleError(f"--serve: expected HOST:PORT (e.g. 127.0.0.1:8080), got {given!r}") from None
    return host, port


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, or one line saying why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, socket.gaierror) as exc:
        raise VidstyleError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may follow a stop at once
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "address in use" if exc.errno == 98 else exc.strerror or str(exc)
        raise VidstyleError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.setblocking(False)
    return sock


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer hands a frame to the decoder when the *next* frame's first
    packet arrives: a whole camera frame interval (33 ms at 30 fps) added to every frame.
    This one also hands it over as soon as the packet with the RTP marker bit (the frame's
    last: RFC 7741 for VP8, RFC 6184 for H.264) is in, with every packet before it."""

    def add(self, packet):
        pli, frame = super().add(packet)
        if frame is None and self._origin is not None:
            frame = self._take_marked()
        return pli, frame

    def _take_marked(self) -> JitterFrame | None:
        packets = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (packets and packet.timestamp != packets[0].timestamp):
                return None  # a gap (to be retransmitted) or a frame without its marker
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=packet.timestamp)
        return None


# aiortc keeps the receiver's jitter buffer private (pyproject.toml bounds aiortc to the
# releases checked to have it; tests/test_serve.py fails on one that does not).
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"


def _hand_over_at_marker(pc: RTCPeerConnection, track) -> bool:
    """Give the receiver of ``track`` a MarkerJitterBuffer; False, with a warning, on an
    aiortc without the attribute (it keeps its own buffer: a frame interval more latency)."""
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if receiver.track is not track:
            continue
        if hasattr(receiver, _JITTER_BUFFER):
            setattr(receiver, _JITTER_BUFFER, MarkerJitterBuffer(capacity=512, is_video=True))
            return True
        log.warning("this aiortc has no %s: frames reach the decoder one frame interval late", _JITTER_BUFFER)
    return False


class StyleServer:
    """The web app and its viewers, on one asyncio loop."""

    def __init__(self, settings: ViewerSettings, limits: Limits | None = None):
        self.settings, self.limits = settings, limits or Limits()
        self.viewers: dict[str, Viewer] = {}
        self.url: str | None = None
        self._origin = SameOrigin(self.limits.public_url)
        self._seats: set[str] = set()  # from an accepted offer until its viewer is dropped
        self._connected: set[str] = set()  # viewers whose connection came up: only they "leave"
        self._connections: dict[str, RTCPeerConnection] = {}
        self._watchers: dict[str, asyncio.Task] = {}
        self._drops: dict[str, asyncio.Task] = {}
        self._switching: dict[str, asyncio.Lock] = {}
        # Uploads read at once: one per viewer's worth of bodies in memory; decoded one at a time.
        self._uploads = asyncio.Semaphore(self.limits.max_viewers)
        self._decoding = asyncio.Semaphore(1)
        self._default: Style | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._collection: asyncio.TimerHandle | None = None

    # -- lifetime -------------------------------------------------------------

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
        """Listen (a taken port fails at once), load the engine, then serve; returns the URL."""
        sock = _listen(host, port)
        try:
            self._default = styles.parse(self.settings.style)
            await asyncio.to_thread(self.settings.stylizer, self._default)  # load the weights before anyone waits
            app = web.Application(middlewares=[answers.middleware, self._origin.middleware])
            app.add_routes([web.get("/", self._page), web.get("/app.js", self._script),
                            web.get("/favicon.ico", self._no_icon),
                            web.get("/styles", self._styles), web.get("/styles/{index}.jpg", self._thumbnail),
                            web.post("/offer", self._offer),
                            web.post("/viewers/{id}/style", self._style),
                            web.post("/viewers/{id}/picture", self._picture)])
            # A client that keeps a request open must not hold up Ctrl-C for aiohttp's default minute.
            self._runner = web.AppRunner(app, handle_signals=False, access_log=None, logger=RequestErrors(),
                                         shutdown_timeout=SHUTDOWN_WAIT)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            raise
        bound = sock.getsockname()[1]
        # A browser cannot open the any-address; the same machine can reach it on loopback.
        shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        self.url = f"http://{shown}:{bound}/"
        return self.url

    async def close(self) -> None:
        """Stop serving (requests in progress finish, new offers are refused), then drop every viewer."""
        self._closing = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.gather(*(self.drop(v) for v in list(self._seats)), return_exceptions=True)
        if self._collection is not None:
            self._collection.cancel()

    def drop(self, viewer_id: str) -> asyncio.Future:
        """Close a viewer's connection and pipeline (once, however often it is asked)."""
        if viewer_id not in self._drops:
            task = self._drops[viewer_id] = asyncio.ensure_future(self._close_viewer(viewer_id))
            task.add_done_callback(_report_failure)
        return self._drops[viewer_id]

    async def _close_viewer(self, viewer_id: str) -> None:
        try:
            watcher = self._watchers.pop(viewer_id, None)
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            pc, viewer = self._connections.get(viewer_id), self.viewers.get(viewer_id)
            if pc is not None:
                await pc.close()
            if viewer is not None:
                await viewer.close()
                if viewer_id in self._connected:
                    log.info("viewer %s left (%d frames in, %d out)", viewer_id[:8], viewer.received,
                             viewer.delivered)
        finally:
            for held in (self.viewers, self._connections, self._switching, self._drops):
                held.pop(viewer_id, None)
            self._seats.discard(viewer_id)
            self._connected.discard(viewer_id)
            self._collect_soon()

    def _collect_soon(self) -> None:
        """One garbage collection a second after the last viewer was dropped (a burst of drops
        costs one pause of a few tens of milliseconds). aiortc's peer connections are reference
        cycles, so a dropped viewer's memory otherwise waits for the collector's own schedule."""
        if self._collection is not None:
            self._collection.cancel()
        self._collection = asyncio.get_running_loop().call_later(COLLECT_AFTER, gc.collect)

    async def _watch(self, viewer_id: str, pc: RTCPeerConnection, viewer: Viewer, connected: asyncio.Event) -> None:
        """Start the viewer's pipeline once its connection is up; drop it if that takes longer
        than the setup deadline, or once nothing arrives from it for the liveness timeout."""
        try:
            if await watch.connected_within(connected, self.limits.setup_deadline):
                self._connected.add(viewer_id)
                log.info("viewer %s connected", viewer_id[:8])
                viewer.start()
                quiet = await watch.silence(pc, self.limits.liveness)
                log.info("viewer %s sent nothing for %.0f s; dropped", viewer_id[:8], quiet)
            else:
                log.info("viewer %s did not connect within %g s; dropped", viewer_id[:8], self.limits.setup_deadline)
        except Exception as exc:  # noqa: BLE001 - a watcher that cannot watch drops its viewer
            log.warning("viewer %s: %s; dropped", viewer_id[:8], one_line(f"{type(exc).__name__}: {exc}"))
        self.drop(viewer_id)  # not awaited: the drop cancels this watcher first

    # -- the page -------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    async def _script(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB / "app.js", headers={"Cache-Control": "no-cache"})

    async def _no_icon(self, request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _styles(self, request: web.Request) -> web.Response:
        default = self._default.label if self._default.picture is None else None  # a mix: its label
        return web.json_response({"builtins": list(range(NUM_STYLES)), "names": list(catalog.NAMES),
                                  "thumbnails": [f"styles/{i}.jpg" for i in range(NUM_STYLES)],
                                  "default": default, "max_picture": self.limits.picture_bytes})

    async def _thumbnail(self, request: web.Request) -> web.StreamResponse:
        index = request.match_info["index"]
        if not (index.isdigit() and int(index) < NUM_STYLES):
            raise Refused(404, f"no built-in style {index}")
        # Files of the installed package: they change only with vidstyle itself.
        return web.FileResponse(catalog.thumbnail(int(index)), headers={"Cache-Control": "max-age=86400"})

    # -- signalling -----------------------------------------------------------

    async def _offer(self, request: web.Request) -> web.Response:
        offer = offer_from(await read_json(request, "{sdp, type} holding a WebRTC offer"))
        if self._closing:
            raise Refused(503, "the server is stopping")
        if len(self._seats) >= self.limits.max_viewers:
            raise Refused(503, f"the server is busy: it serves at most {self.limits.max_viewers} viewer(s) at once; "
                               "try again when one leaves", headers={"Retry-After": "10"})
        viewer_id = secrets.token_urlsafe(12)  # unguessable: it is all that lets a page change its own style
        self._seats.add(viewer_id)
        try:
            return await self._answer(viewer_id, offer)
        except BaseException:
            await asyncio.shield(self.drop(viewer_id))
            raise

    async def _answer(self, viewer_id: str, offer: RTCSessionDescription) -> web.Response:
        stylizer = await asyncio.to_thread(self.settings.stylizer, self._default)
        if self._closing:  # close() may have dropped every viewer while this one's stylizer was built
            raise Refused(503, "the server is stopping")
        viewer = Viewer(viewer_id, self.settings, stylizer, asyncio.get_running_loop(),
                        on_failure=lambda v: self.drop(v.id))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # aiortc's default asks Google's STUN server
        self.viewers[viewer_id], self._connections[viewer_id] = viewer, pc
        self._switching[viewer_id] = asyncio.Lock()
        connected = asyncio.Event()

        @pc.on("track")
        def on_track(track):
            if track.kind == "video" and viewer.output not in [s.track for s in pc.getSenders()]:
                _hand_over_at_marker(pc, track)
                viewer.receive(track)
                pc.addTrack(viewer.output)  # answers on the same (sendrecv) transceiver

        @pc.on("datachannel")
        def on_channel(channel):
            viewer.channel = channel
            channel.on("close", lambda: self.drop(viewer_id))

        @pc.on("connectionstatechange")
        def on_state():
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState in ("failed", "closed"):
                self.drop(viewer_id)

        try:
            await pc.setRemoteDescription(offer)
            if not any(s.track is viewer.output for s in pc.getSenders()):
                raise ValueError("it has no video track to stylize")
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # noqa: BLE001 - any offer aiortc cannot answer is the page's problem
            raise Refused(400, one_line(f"cannot answer this offer: {exc}")) from None
        self._watchers[viewer_id] = asyncio.ensure_future(self._watch(viewer_id, pc, viewer, connected))
        return web.json_response({"sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                                  "viewer": viewer_id})

    # -- styles ---------------------------------------------------------------

    def _viewer(self, request: web.Request) -> Viewer:
        viewer = self.viewers.get(request.match_info["id"])
        if viewer is None:
            raise Refused(404, "no such viewer (the connection has closed)")
        return viewer

    async def _style(self, request: web.Request) -> web.Response:
        body = await read_json(request, '{"style": N}')
        viewer = self._viewer(request)
        index = body.get("style") if isinstance(body, dict) else None
        if isinstance(index, bool) or not isinstance(index, (int, str)) or not str(index).isdigit():
            raise Refused(400, f'expected JSON {{"style": N}} with N a built-in style, 0 to {NUM_STYLES - 1}')
        try:
            style = styles.parse(str(index))
        except StyleError as exc:
            raise Refused(400, str(exc)) from None
        return await self._switch(viewer, style)

    async def _picture(self, request: web.Request) -> web.Response:
        check_picture_type(request)
        viewer = self._viewer(request)  # before the body: only a viewer's page may make the server read 8 MB
        async with self._uploads:
            data = await read_limited(request, self.limits.picture_bytes, "the picture")
            async with self._decoding:
                path = await asyncio.to_thread(pictures.store, data, self.limits.picture_pixels)
        try:
            return await self._switch(viewer, Style(label="picture", picture=path))
        finally:
            path.unlink(missing_ok=True)  # the stylizer keeps the style vector, not the file

    async def _switch(self, viewer: Viewer, style: Style) -> web.Response:
        lock = self._switching.get(viewer.id)
        if lock is None:
            raise Refused(404, "no such viewer (the connection has closed)")
        async with lock:  # two quick switches land in the order they were asked for
            try:
                stylizer, sizing = await asyncio.to_thread(self._ready, style, viewer.last_image)
            except VidstyleError as exc:
                raise Refused(400, str(exc)) from None
            viewer.use(stylizer, sizing)
        return web.json_response({"style": style.label})

    def _ready(self, style: Style, content: np.ndarray | None):
        """A stylizer for ``style`` and, once the camera has been seen, its sizing, traced."""
        stylizer = self.settings.stylizer(style)
        return stylizer, None if content is None else plan_sizing(stylizer, self.settings, content)


def _report_failure(task: asyncio.Task) -> None:
    """A drop nobody awaits still has its failure said, in one line."""
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.warning("closing a viewer failed: %s", one_line(f"{type(exc).__name__}: {exc}"))


def serve_forever(settings: ViewerSettings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  seconds: float | None = None, announce: Callable[[str], None] = print,
                  limits: Limits | None = None) -> None:
    """Serve until Ctrl-C, SIGTERM or ``seconds``; every viewer is dropped before returning.
    Viewers coming and going, and refused requests that aiohttp logs, are one line each on
    stderr meanwhile."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("vidstyle: %(message)s"))
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)

    async def main() -> None:
        server, stop = StyleServer(settings, limits), asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(on_loop_error)
        signals = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
        try:
            url = await server.start(host, port)
            where = " (all interfaces)" if host in ("0.0.0.0", "::", "") else ""
            announce(f"vidstyle: serving on {url}{where}; Ctrl-C stops")
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except asyncio.TimeoutError:
                pass
        finally:
            await server.close()
            for sig in signals:
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(main())
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


@contextmanager
def running(settings: ViewerSettings, host: str = "127.0.0.1", port: int = 0,
            limits: Limits | None = None) -> Iterator[StyleServer]:
    """A server on its own thread and event loop (tests, the latency probe); stopped on exit.

    ``port=0`` takes a free port; the server's ``url`` says which.
    """
    started: concurrent.futures.Future = concurrent.futures.Future()

    async def lifetime() -> None:
        server, stop = StyleServer(settings, limits), asyncio.Event()
        asyncio.get_running_loop().set_exception_handler(on_loop_error)
        try:
            await server.start(host, port)
            started.set_result((server, asyncio.get_running_loop(), stop))
            await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            if not started.done():
                started.set_exception(exc)
        finally:
            await server.close()

    thread = threading.Thread(target=asyncio.run, args=(lifetime(),), name="vidstyle-serve", daemon=True)
    thread.start()
    try:
        server, loop, stop = started.result(timeout=300)
    except BaseException:
        thread.join(timeout=30)
        raise
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
