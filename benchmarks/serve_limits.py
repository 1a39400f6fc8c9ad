"""What `vidstyle live --serve` holds before, during and after each hostile case.

    .venv/bin/python benchmarks/serve_limits.py [--offers 20] [--connect 10] [--json out.json]

The server is the real command, `python -m vidstyle live --serve 127.0.0.1:0 --size 128
--temporal off`, in a process of its own with its default limits (setup deadline 15 s,
liveness 10 s), so its figures are read from outside: threads (/proc/PID/task: Python's
and FFmpeg's), UDP and TCP sockets (its descriptors found in /proc/net), resident memory
(VmRSS) and the peak (VmHWM). The clients are aiortc peers in this process; the killed
client is a process of its own, ended with SIGKILL.

Before the cases, one viewer connects, is stylized and leaves, so that the engine, its
traces and the pools are in place: the baseline is the server after that. "After" is taken
two seconds after the server has logged every viewer of the case gone (or after the case's
last answer when it never held one). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import aiohttp
import av
import cv2
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError

ROOT = Path(__file__).resolve().parents[1]
# Seconds between the server's last "gone" line and the "after" figures: a dropped
# connection is collected a second after the drop, and FFmpeg's codec threads end with it.
SETTLE = 2.0


# --- the server, measured from outside ----------------------------------------------------------

class Served:
    """The command in its own process; its stderr lines kept with the time each arrived."""

    def __init__(self, *extra: str):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vidstyle", "live", "--serve", "127.0.0.1:0", "--size", "128",
             "--temporal", "off", *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"serving on (http://\S+/);", line)
        if not match:
            raise SystemExit(f"the server did not start: {line}{self.process.stderr.read()}")
        self.url = match[1]
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def logged(self, pattern: str, since: float = 0.0) -> list[tuple[float, str]]:
        return [(t, line) for t, line in self.lines if t >= since and re.search(pattern, line)]

    def wait_logged(self, pattern: str, count: int, since: float, timeout: float = 90.0) -> float | None:
        """The time the ``count``-th matching line arrived, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.logged(pattern, since)
            if len(found) >= count:
                return found[count - 1][0]
            time.sleep(0.05)
        return None

    def resources(self) -> dict:
        pid = self.process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        kb = {k: int(v.split()[0]) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(.*)$", status, re.MULTILINE)}
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])

        def sockets(*tables: str) -> int:
            found = set()
            for table in tables:
                found |= {line.split()[9] for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]}
            return len(inodes & found)

        return {"threads": len(os.listdir(f"/proc/{pid}/task")), "udp": sockets("udp", "udp6"),
                "tcp": sockets("tcp", "tcp6"), "rss_mb": kb["VmRSS"] / 1024, "peak_mb": kb["VmHWM"] / 1024}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        self._reader.join(timeout=5)
        return self.process.returncode


# --- clients --------------------------------------------------------------------------------------

def picture() -> np.ndarray:
    y, x = np.mgrid[0:120, 0:160]
    return np.dstack([x * 255 // 159, y * 255 // 119, (x * y) % 256]).astype(np.uint8)


class Camera(VideoStreamTrack):
    async def recv(self):
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame.from_ndarray(picture(), format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def post(url: str, path: str, body: bytes | str, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, \
            session.post(url + path, data=body.encode() if isinstance(body, str) else body, headers=headers) as response:
        try:
            return response.status, await response.json(content_type=None)
        except ValueError:
            return response.status, {"error": (await response.text())[:80]}


JSON = {"Content-Type": "application/json"}


async def offer_sdp(tracks: int = 1, candidates: bool = True) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for _ in range(tracks):
        pc.addTrack(Camera())
    pc.createDataChannel("stats")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    if not candidates:
        sdp = "".join(line for line in sdp.splitlines(keepends=True) if not line.startswith("a=candidate"))
    return pc, sdp


async def vanishing_offer(url: str, candidates: bool) -> int:
    """An offer whose browser goes away before it applies the answer."""
    pc, sdp = await offer_sdp(candidates=candidates)
    try:
        status, _ = await post(url, "offer", json.dumps({"sdp": sdp, "type": "offer"}), JSON)
        return status
    finally:
        await pc.close()


class Viewer:
    """A connected browser: sends the picture, counts what comes back."""

    def __init__(self, url: str):
        self.url, self.pc, self.frames, self.id = url, RTCPeerConnection(RTCConfiguration(iceServers=[])), 0, None
        self.status, self._task = None, None

    async def connect(self) -> int:
        self.pc.addTrack(Camera())
        self.pc.createDataChannel("stats")
        self.pc.on("track", lambda track: setattr(self, "_task", asyncio.ensure_future(self._take(track))))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.status, answer = await post(self.url, "offer", json.dumps({"sdp": self.pc.localDescription.sdp,
                                                                         "type": "offer"}), JSON)
        if self.status == 200:
            self.id = answer["viewer"]
            await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        return self.status

    async def _take(self, track) -> None:
        try:
            while True:
                await track.recv()
                self.frames += 1
        except MediaStreamError:  # the track ended
            pass

    async def until_frames(self, count: int = 1, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.frames < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.frames >= count

    async def close(self) -> None:
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def client_process(url: str) -> None:
    """``--client URL``: connect one viewer, say so on stdout, then wait to be killed."""
    async def main():
        viewer = Viewer(url)
        await viewer.connect()
        await viewer.until_frames(5)
        print("connected", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())


# --- crafted uploads ------------------------------------------------------------------------------

def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, rows: bool = True) -> bytes:
    """A 1-bit grey PNG, all black: 30000x30000 is a complete 110 KB file of 900 MP."""
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush() if rows else b""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))


def big_photo() -> bytes:
    """A 6000x4000 JPEG (24 MP, a camera's photo): accepted and brought down to 2048 px."""
    y, x = np.mgrid[0:4000, 0:6000]
    image = np.dstack([(x // 7) % 256, (y // 5) % 256, ((x + y) // 11) % 256]).astype(np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


# --- the cases ------------------------------------------------------------------------------------

def answers(statuses: list[int]) -> str:
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    return ", ".join(f"{n} × {s}" if n > 1 else str(s) for s, n in counts.items())


class Run:
    def __init__(self, served: Served):
        self.served, self.rows = served, []
        self.base = served.resources()

    def row(self, case: str, answer: str, during: dict | None, freed_after: float | None, note: str = "") -> None:
        time.sleep(SETTLE)
        after = self.served.resources()
        self.rows.append({"case": case, "answer": answer, "during": during, "freed_after_s": freed_after,
                          "before": self.base, "after": after, "note": note})
        print(f"  {case}: {answer}; after: {after}", file=sys.stderr)
        self.base = after


async def warm_up(url: str, offers: int = 0, upload: bool = False) -> None:
    """One viewer stylized (and, with ``upload``, a photo as its style), then a burst of offers:
    what the server keeps from them is made once (asyncio's executor threads, the picture
    model's ONNX Runtime session and threads, OpenCV's thread pool)."""
    viewer = Viewer(url)
    await viewer.connect()
    if not await viewer.until_frames(10, timeout=120):
        raise SystemExit("the warm-up viewer got no stylized frames")
    if upload:
        status, reply = await post(url, f"viewers/{viewer.id}/picture", big_photo(), {"Content-Type": "image/jpeg"})
        if status != 200:
            raise SystemExit(f"the warm-up picture was refused: {reply}")
    await viewer.close()
    await asyncio.gather(*(vanishing_offer(url, candidates=False) for _ in range(offers)))


def run_cases(args) -> list[dict]:
    rows = []
    served = Served("--max-viewers", str(args.offers))
    try:
        run = Run(served)
        start = time.monotonic()
        asyncio.run(warm_up(served.url, offers=args.offers, upload=True))
        served.wait_logged(r"did not connect within", args.offers, start)
        run.row("warm-up: one viewer with a photo as its style, then a burst of offers", "", None, None,
                note="pools made once")

        cases = [(True, f"{args.offers} offers, the browser gone before connecting (round {n + 1})")
                 for n in range(args.rounds)]
        cases += [(False, f"{args.offers} offers listing no ICE candidates")]
        for candidates, case in cases:
            start = time.monotonic()

            async def offers(candidates=candidates):
                return await asyncio.gather(*(vanishing_offer(served.url, candidates) for _ in range(args.offers)))

            statuses = asyncio.run(offers())
            during = served.resources()
            gone = served.wait_logged(r"did not connect within", args.offers, start)
            run.row(case, f"{answers(statuses)}; dropped at the setup deadline", during,
                    None if gone is None else gone - start)

        client = subprocess.Popen([sys.executable, __file__, "--client", served.url], stdout=subprocess.PIPE, text=True)
        ready = client.stdout.readline().strip() == "connected"
        during = served.resources()
        killed = time.monotonic()
        client.kill()
        client.wait()
        gone = served.wait_logged(r"sent nothing for", 1, killed)
        run.row("a connected viewer's client killed (SIGKILL)", "200; dropped after the liveness timeout" if ready
                else "the client did not connect", during, None if gone is None else gone - killed)

        _, good = asyncio.run(offer_sdp())
        _, two = asyncio.run(offer_sdp(tracks=2))
        head, *sections = re.split(r"(?m)^(?=m=)", good)
        video = next(s for s in sections if s.startswith("m=video"))
        fifty = head + "".join(sections) + "".join(re.sub(r"a=mid:\S+", f"a=mid:v{i}", video) for i in range(49))
        no_fingerprint = "".join(line for line in good.splitlines(keepends=True) if not line.startswith("a=fingerprint"))
        def offer(sdp: str) -> str:
            return json.dumps({"sdp": sdp, "type": "offer"})

        requests = [
            ("POST /offer from another site (Origin http://evil.example, text/plain)", "offer", offer(good),
             {"Origin": "http://evil.example", "Content-Type": "text/plain"}),
            ("POST /viewers/ID/style from another site", "viewers/x/style", '{"style": 3}',
             {"Origin": "http://evil.example", "Content-Type": "text/plain"}),
            ("DNS rebinding (Host: rebind.example)", "offer", offer(good),
             {"Host": "rebind.example", "Origin": "http://rebind.example", **JSON}),
            ("offer with two video tracks", "offer", offer(two), JSON),
            ("offer with 50 video m-lines", "offer", offer(fifty), JSON),
            ("offer without a=fingerprint", "offer", offer(no_fingerprint), JSON),
            ("JSON nested 200,000 deep", "offer", "[" * 200_000 + "]" * 200_000, JSON),
            ("JSON nested 20,000 deep (under 64 KB)", "offer", "[" * 20_000 + "]" * 20_000, JSON),
        ]
        for case, path, body, headers in requests:
            status, reply = asyncio.run(post(served.url, path, body, headers))
            run.row(case, f"{status}: {reply.get('error', '')}", None, None)

        async def upload(data: bytes) -> tuple[str, dict]:
            """A viewer connects, uploads ``data`` as its style picture, and leaves."""
            viewer = Viewer(served.url)
            await viewer.connect()
            await viewer.until_frames(5)
            status, reply = await post(served.url, f"viewers/{viewer.id}/picture", data,
                                       {"Content-Type": "application/octet-stream"})
            during = served.resources()
            await viewer.close()
            return f"{status}: {reply.get('error', reply.get('style', ''))}", during

        for case, data in (("PNG declaring 30000×30000 (110 KB)", png_declaring(30000, 30000)),
                           ("PNG declaring 40000×40000", png_declaring(40000, 40000, rows=False)),
                           ("not a picture", b"not a picture at all"),
                           ("6000×4000 JPEG photo (24 MP)", big_photo())):
            start = time.monotonic()
            answer, during = asyncio.run(upload(data))
            gone = served.wait_logged(r"viewer \S+ left", 1, start)
            run.row(case, answer, during, None if gone is None else gone - start,
                    note="uploaded by a viewer that then leaves")

        before = len(served.lines)
        for line in (b"GET / HTTP/9.9\r\n\r\n", b"GET /\x00 HTTP/1.1\r\n\r\n", b"GARBAGE\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", int(served.url.rsplit(":", 1)[1].strip("/")))) as sock:
                sock.sendall(line)
                sock.recv(100)
        time.sleep(0.5)
        logged = len(served.lines) - before
        run.row("3 malformed request lines", f"3 × 400; {logged} log line(s), no traceback", None, None)
        rows += run.rows
    finally:
        code = served.stop()
        if any("Traceback" in line for _, line in served.lines) or code != 0:
            print("server stderr:\n" + "\n".join(line for _, line in served.lines), file=sys.stderr)

    served = Served()  # the default viewer limit
    try:
        start = time.monotonic()
        asyncio.run(warm_up(served.url))
        served.wait_logged(r"viewer \S+ left", 1, start)
        run = Run(served)

        async def crowd():
            viewers = [Viewer(served.url) for _ in range(args.connect)]
            statuses = await asyncio.gather(*(v.connect() for v in viewers))
            accepted = [v for v in viewers if v.status == 200]
            await asyncio.gather(*(v.until_frames(5) for v in accepted))
            during = served.resources()
            await asyncio.gather(*(v.close() for v in viewers))
            return statuses, during, len(accepted)

        start = time.monotonic()
        statuses, during, accepted = asyncio.run(crowd())
        gone = served.wait_logged(r"viewer \S+ left", accepted, start)
        run.row(f"{args.connect} browsers connecting at once (default limit)", answers(statuses), during,
                None if gone is None else gone - start)
        rows += run.rows
    finally:
        served.stop()
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [("| case | answer | held during (threads, UDP, RSS) | freed after | threads before → after | "
              "UDP before → after | RSS MB before → after (peak) |"),
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        d, b, a = r["during"], r["before"], r["after"]
        during = "—" if d is None else f"{d['threads']}, {d['udp']}, {d['rss_mb']:.0f} MB"
        freed = "—" if r["freed_after_s"] is None else f"{r['freed_after_s']:.1f} s"
        lines.append(f"| {r['case']} | {r['answer']} | {during} | {freed} | {b['threads']} → {a['threads']} | "
                     f"{b['udp']} → {a['udp']} | {b['rss_mb']:.0f} → {a['rss_mb']:.0f} ({a['peak_mb']:.0f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=20, help="offers in each never-connecting case (default 20)")
    parser.add_argument("--connect", type=int, default=10, help="browsers connecting at once (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the vanished-offers case (default 3)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_process(args.client)
        return
    rows = run_cases(args)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
