"""What a --serve visitor may hold: viewers at once, time to connect, silence once connected.

Real aiortc peers on loopback. The deadlines are short (a second or two) so that each case
takes seconds; every wait is for a state or a count, with a generous limit, never an
assertion on how long something took. After each case the server's threads and UDP
sockets are back where they started and its viewers are gone.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import weakref
from pathlib import Path

import pytest

aiortc = pytest.importorskip("aiortc")
aiohttp = pytest.importorskip("aiohttp")

from aiortc import RTCConfiguration, RTCPeerConnection
from test_serve import (
    SETTINGS,
    Peer,
    PictureTrack,
    picture_a,
    served_threads,
    wait_until,
)

from vidstyle.apps.serve.limits import Limits
from vidstyle.apps.serve.server import running


def udp_sockets() -> int:
    """UDP sockets this process holds (ICE gathers one per interface and address family)."""
    table = set()
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        table |= {line.split()[9] for line in Path(name).read_text().splitlines()[1:]}
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            held.add(link[8:-1])
    return len(held & table)


def messages(caplog, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if re.search(pattern, r.getMessage())]


async def post_offer(url: str, sdp: str, expect: int) -> dict:
    async with aiohttp.ClientSession() as session, \
            session.post(url + "offer", json={"sdp": sdp, "type": "offer"}) as response:
        body = await response.json()
        assert response.status == expect, body
        return {**body, "retry_after": response.headers.get("Retry-After")}


async def offer_and_vanish(url: str, candidates: bool = True, expect: int = 200) -> dict:
    """Post a real offer, then go away without ever applying the answer: a closed browser tab.
    Without ``candidates`` the offer lists no address to reach the browser at."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTrack(PictureTrack(picture_a()))
        pc.createDataChannel("stats")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        if not candidates:
            sdp = "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith("a=candidate"))
        return await post_offer(url, sdp, expect)
    finally:
        await pc.close()


async def first_frames(peer: Peer) -> None:
    """Connect and wait for stylized frames to come back: the viewer is up."""
    await peer.connect()
    for _ in range(400):
        if peer.frames:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no stylized frame came back in 20 s")


@pytest.mark.slow
def test_one_viewer_beyond_the_limit_is_told_the_server_is_busy(threads):
    async def scenario(server):
        first = Peer(server.url, picture_a())
        await first_frames(first)
        busy = await offer_and_vanish(server.url, expect=503)
        assert busy["error"] == "the server is busy: it serves at most 1 viewer(s) at once; try again when one leaves"
        assert busy["retry_after"] == "10"
        await first.close()
        for _ in range(300):
            if not server.viewers:
                break
            await asyncio.sleep(0.05)
        later = Peer(server.url, picture_a())  # the seat is free again
        await first_frames(later)
        await later.close()

    with running(SETTINGS, limits=Limits(max_viewers=1)) as server:
        asyncio.run(scenario(server))
        assert wait_until(lambda: not server.viewers)
    threads.assert_back_to_start()


def test_offers_that_never_connect_are_dropped_at_the_setup_deadline(threads, caplog):
    caplog.set_level(logging.INFO, logger="vidstyle.serve")
    with running(SETTINGS, limits=Limits(max_viewers=4, setup_deadline=1.0)) as server:
        threads_before, sockets_before = served_threads(), udp_sockets()

        async def scenario():
            answers = await asyncio.gather(*(offer_and_vanish(server.url, candidates=n % 2 == 0) for n in range(4)))
            held = [weakref.ref(server.viewers[a["viewer"]]) for a in answers]
            # Offers not yet connected hold their seats: a fifth is one too many.
            await offer_and_vanish(server.url, expect=503)
            return held

        held = asyncio.run(scenario())
        assert wait_until(lambda: not server.viewers, timeout=20), "answered offers are still held"
        gc.collect()
        assert [ref() for ref in held] == [None] * 4, "a dropped viewer (and its stylizer) is still referenced"
        assert wait_until(lambda: udp_sockets() <= sockets_before), f"{udp_sockets() - sockets_before} UDP sockets left"
        assert served_threads() <= threads_before, f"left running: {served_threads() - threads_before}"
        assert len(messages(caplog, r"^viewer \S+ did not connect within 1 s; dropped$")) == 4
        assert messages(caplog, r"^viewer \S+ (connected|left)") == []  # only viewers that arrived "leave"
        asyncio.run(offer_and_vanish(server.url))  # the seats are free again
    threads.assert_back_to_start()


def test_stopping_the_server_drops_offers_still_connecting(threads):
    sockets_before = udp_sockets()
    with running(SETTINGS, limits=Limits(setup_deadline=300)) as server:
        asyncio.run(offer_and_vanish(server.url, candidates=False))
        asyncio.run(offer_and_vanish(server.url, candidates=False))
        assert len(server.viewers) == 2
    assert not server.viewers
    threads.assert_back_to_start()
    assert udp_sockets() <= sockets_before


@pytest.mark.slow
def test_a_vanished_viewer_is_dropped_after_the_liveness_timeout(threads, caplog):
    caplog.set_level(logging.INFO, logger="vidstyle.serve")

    async def scenario(server):
        peer = Peer(server.url, picture_a())
        await first_frames(peer)
        # The browser's machine is gone: this loop, which runs the peer, stops dead while
        # the server (on its own thread) is watched; nothing more is sent, not even a goodbye.
        gone = wait_until(lambda: not server.viewers, timeout=30)
        await peer.close()
        return gone

    with running(SETTINGS, limits=Limits(liveness=1.5)) as server:
        assert asyncio.run(scenario(server)), "the silent viewer is still held"
        dropped = messages(caplog, r"^viewer \S+ sent nothing for \d+ s; dropped$")
        assert len(dropped) == 1, messages(caplog, "viewer")
        assert len(messages(caplog, r"^viewer \S+ left \(\d+ frames in, \d+ out\)$")) == 1
    threads.assert_back_to_start()


class SlowCamera(PictureTrack):
    """A camera on a poor link: two frames a second."""

    async def recv(self):
        await asyncio.sleep(0.5)
        return await super().recv()


@pytest.mark.slow
def test_a_slow_viewer_is_kept(threads, caplog):
    caplog.set_level(logging.INFO, logger="vidstyle.serve")

    async def scenario(server):
        peer = Peer(server.url, picture_a())
        peer.pc.addTrack = lambda track, add=peer.pc.addTrack: add(SlowCamera(picture_a()))
        await first_frames(peer)
        viewer = server.viewers[peer.viewer]
        # Six slow frames: three seconds, twice the liveness timeout.
        for _ in range(600):
            if viewer.received >= 6 or peer.viewer not in server.viewers:
                break
            await asyncio.sleep(0.05)
        kept = peer.viewer in server.viewers
        await peer.close()
        return kept, viewer.received

    with running(SETTINGS, limits=Limits(liveness=1.5)) as server:
        kept, received = asyncio.run(scenario(server))
        assert kept and received >= 6, (kept, received, messages(caplog, "viewer"))
        assert messages(caplog, "sent nothing") == []
    threads.assert_back_to_start()
