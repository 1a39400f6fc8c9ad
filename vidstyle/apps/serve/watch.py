"""Is a viewer's connection up, and is anything still arriving on it?

aiortc by itself never gives up on an answered offer whose browser does not connect, and
notices a vanished browser only when ICE consent expires (RFC 7675: 30 s without an
answer, 34 s in practice). These two waits let the server drop such viewers sooner. The
second counts every packet the connection's DTLS transport received, media, RTCP and data
channel alike: a browser on a slow network still sends RTCP reports about once a second,
even when its camera frames are few or late, so only a peer that sends nothing at all
goes silent.
"""
from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection


async def connected_within(connected: asyncio.Event, deadline: float) -> bool:
    """True once ``connected`` is set, False if ``deadline`` seconds pass first."""
    try:
        await asyncio.wait_for(connected.wait(), deadline)
    except asyncio.TimeoutError:
        return False
    return True


async def packets_received(pc: RTCPeerConnection) -> int:
    """Packets the connection's transports have received so far (DTLS records)."""
    report = await pc.getStats()
    return sum(getattr(stats, "packetsReceived", 0) or 0 for stats in report.values() if stats.type == "transport")


async def silence(pc: RTCPeerConnection, limit: float) -> float:
    """Returns once nothing has arrived on ``pc`` for ``limit`` seconds: how long it was."""
    loop = asyncio.get_running_loop()
    poll = min(1.0, limit / 4)
    count, changed = await packets_received(pc), loop.time()
    while True:
        await asyncio.sleep(poll)
        now, latest = loop.time(), await packets_received(pc)
        if latest != count:
            count, changed = latest, now
        elif now - changed >= limit:
            return now - changed
