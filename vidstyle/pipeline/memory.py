"""How much memory a transcode needs, so that a huge frame is refused up front.

An 8K frame is 100 MB as RGB and about 10 GB of network activations; with the
pipeline's queues full of such frames a run would swap or be killed minutes
in. ``plan_queue`` checks the need against the memory this machine has
available before anything is written, shortens the queues when that is enough,
and otherwise refuses with the processing size that would fit.
"""
from __future__ import annotations

import os
from pathlib import Path

from vidstyle.errors import ResourceError
from vidstyle.processing.geometry import Geometry, plan

# Peak RSS growth of one forward pass per network input pixel, measured with
# TensorFlow 2.21 on CPU for both networks at 512x512 to 1024x1024, batch 1
# and 4: 180-290 bytes; rounded up.
NET_BYTES_PER_PIXEL = 300
# A frame in flight: the decoded picture and its stylized output at the source
# size, its shrunk, padded and stylized copies at the network size (RGB uint8).
FRAME_BYTES_PER_SOURCE_PIXEL = 6
FRAME_BYTES_PER_NET_PIXEL = 9
# Working memory of the stages at the source size (the temporal warp and blend
# in float32, scaling back up, the decoder's and encoder's own pictures):
# peak RSS growth of 3840x2160 clips processed at 320 px, less the frames'
# own bytes, was 45 (--temporal off) to 85 (flow) bytes per pixel; rounded up.
STAGE_BYTES_PER_SOURCE_PIXEL = 96
USABLE_SHARE = 0.75  # of the available memory: the rest is for TensorFlow itself, the OS and others
SUGGESTED_SIDES = (3840, 2560, 1920, 1280, 960, 640, 320)
GIB = 1 << 30


def available_bytes() -> int | None:
    """Memory this process can still use: MemAvailable, capped by a cgroup limit; None if unknown."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            return None
    # In a container /proc/meminfo describes the host; the cgroup says what we may use.
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            free = room if free is None else min(free, room)
    except (OSError, ValueError):
        pass
    return free


def frames_in_flight(stages: int, batch: int, queue_size: int) -> int:
    """Frames the pipeline can hold at once: every queue full (the two that carry
    batches hold ``batch`` frames per item), one item inside each stage, and a
    batch each in the batcher, the engine and the finish stage."""
    return queue_size * (stages + 2 * (batch - 1)) + stages + 3 * batch


def need_bytes(geom: Geometry, batch: int, stages: int, queue_size: int, frames: int | None = None) -> int:
    """Peak memory of a transcode at ``geom``; a short video cannot fill the queues."""
    source, net = geom.src_w * geom.src_h, geom.net_w * geom.net_h
    held = frames_in_flight(stages, batch, queue_size)
    if frames:
        held = min(held, frames)
    # Short last batches are padded to ``batch``, so the network always runs that many.
    return (batch * NET_BYTES_PER_PIXEL * net
            + held * (FRAME_BYTES_PER_SOURCE_PIXEL * source + FRAME_BYTES_PER_NET_PIXEL * net)
            + STAGE_BYTES_PER_SOURCE_PIXEL * source)


def plan_queue(geom: Geometry, batch: int, stages: int, queue_size: int, frames: int | None = None,
               available: int | None = None) -> int:
    """The longest queue (up to ``queue_size``) whose run fits in memory.

    Raises ResourceError naming the need and a ``--size`` that fits when not
    even queues of one do. ``available`` defaults to :func:`available_bytes`;
    when that is unknown the check is skipped.
    """
    available = available_bytes() if available is None else available
    if available is None:
        return queue_size
    limit = available * USABLE_SHARE
    for queue in range(queue_size, 0, -1):
        if need_bytes(geom, batch, stages, queue, frames) <= limit:
            return queue
    least = need_bytes(geom, batch, stages, 1, frames)
    fits = [side for side in SUGGESTED_SIDES if side < max(geom.proc_w, geom.proc_h)
            and need_bytes(plan(geom.src_w, geom.src_h, side), batch, stages, 1, frames) <= limit]
    advice = f"use --size {fits[0]} (or smaller)" if fits else "use a smaller --size and --batch 1"
    at = f" processed at {geom.proc_w}x{geom.proc_h}" if geom.needs_resize else ""
    raise ResourceError(f"a {geom.src_w}x{geom.src_h} frame{at} needs about {least / GIB:.1f} GiB "
                        f"(batch {batch}), more than the {limit / GIB:.1f} GiB this machine can spare; {advice}")
