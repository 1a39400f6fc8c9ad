"""Mutated media files, and a judge for what decode and transcode do with them.

A case is a stream name and a number. :func:`mutant` draws everything from a
numpy Generator seeded with both (which seed file, which one to three
mutations, where), so a case that fails is reproduced from its number alone:
``benchmarks/fuzz.py --only decode:123 --keep DIR``. The seed files are small
valid clips made in code (tests/media.py) once per run.

:func:`run_case` runs one case on a worker thread with a deadline and
judges it. Allowed: success, or vidstyle's own error (a ``VidstyleError``;
for a ``PipelineError``, its cause must be one too, since a plain exception
from deep in PyAV or numpy reaches the user only as its raw words). Anything
else is a crash. Past the deadline the run is cancelled and the case is a
hang. After each case the Python threads, the process's native threads
(FFmpeg's decoder threads die with their codec context) and open file
descriptors must be back where they were without help from the garbage
collector, the input file unchanged, and a failed transcode must leave no
output and no temporary file beside it.
"""
from __future__ import annotations

import gc
import hashlib
import os
import re
import struct
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np

from media import make_video
# At import, not inside a case: importing starts a few native threads of its own, once.
from vidstyle.errors import PipelineError, VidstyleError
from vidstyle.io import EncodeSettings, FileSource, probe
from vidstyle.io.source import AudioPackets
from vidstyle.offline import TranscodeConfig, transcode

# name -> make_video arguments. 64x48 and 8-10 frames: small enough that headers
# are a good share of the bytes a mutation can land on.
SEEDS = {
    "h264-aac.mp4": dict(frames=10),
    "vp9-opus.webm": dict(frames=10),
    "h264-vfr.mkv": dict(frames=10, vfr=True),
    "h264-aac.ts": dict(frames=10),
    "h264-rot90.mp4": dict(frames=8, rotation=90, audio=False),
    "mjpeg.mov": dict(frames=8, codec="mjpeg", pix_fmt="yuvj420p", audio=False),
}
STREAMS = {"decode": 1, "transcode": 2}  # part of the Generator seed: the streams never share a case


def make_seeds(folder) -> dict[str, bytes]:
    """Write the seed clips into ``folder``; their bytes by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {name: make_video(folder / name, **kwargs).read_bytes() for name, kwargs in SEEDS.items()}


# --- mutations ------------------------------------------------------------------------

# Integers that sit on the edges parsers get wrong: zero, one, sign bits, all ones.
INTERESTING = (0, 1, 2, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
# ISO BMFF (mp4, mov) boxes that hold only boxes.
BMFF_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex",
                   b"moof", b"traf"}
# Byte strings that start a header worth damaging, per container; the bytes after
# them are sizes, counts, dimensions and timestamps.
MARKERS = {
    ".webm": (b"\x1a\x45\xdf\xa3", b"\x18\x53\x80\x67", b"\x16\x54\xae\x6b", b"\x1f\x43\xb6\x75",
              b"\x2a\xd7\xb1", b"\x23\xe3\x83", b"\x63\xa2", b"\x1c\x53\xbb\x6b", b"\x11\x4d\x9b\x74",
              b"\x44\x89", b"\xa3", b"\xae", b"\xb0", b"\xba", b"\xe7", b"\x9f", b"\xb5"),
    ".ts": (b"\x47\x40\x00", b"\x47\x50", b"\x47\x41", b"\x00\x00\x01\xe0", b"\x00\x00\x01\xc0",
            b"\x00\x00\x00\x01\x67", b"\x00\x00\x00\x01\x68", b"\x00\x00\x01\x65", b"\xff\xf1"),
    ".mp4": (b"avcC", b"mdhd", b"tkhd", b"mvhd", b"stts", b"stsz", b"stco", b"stsc", b"ctts", b"elst",
             b"esds", b"hdlr", b"avc1", b"mp4a", b"\xff\xd8", b"\xff\xc0", b"\xff\xda"),
}
MARKERS[".mkv"] = MARKERS[".webm"]
MARKERS[".mov"] = MARKERS[".mp4"]


def _length(rng: np.random.Generator, most: int) -> int:
    """1..most, log-uniform: small runs are likelier, large ones happen."""
    return int(min(most, max(1, np.exp(rng.uniform(0, np.log(max(most, 2)))))))


def _pos(rng: np.random.Generator, data) -> int:
    return int(rng.integers(0, len(data))) if data else 0


def _interesting(rng: np.random.Generator, near: int | None = None) -> int:
    if near is not None and rng.random() < 0.3:
        return max(0, near + int(rng.choice((-1, 1, -8, 8)))) if rng.random() < 0.7 else near * 2
    return int(rng.choice(INTERESTING)) if rng.random() < 0.8 else int(rng.integers(0, 2 ** 32))


def _put_int(data: bytearray, at: int, value: int, width: int, order: str = ">") -> None:
    if at < 0 or at + width > len(data):
        return
    fmt = {1: "B", 2: "H", 4: "I"}[width]
    data[at: at + width] = struct.pack(order + fmt, value & (2 ** (8 * width) - 1))


def truncate(rng, data: bytearray, seeds) -> str:
    cut = _pos(rng, data)
    del data[cut:]
    return f"truncate at {cut}"


def flip_bits(rng, data, seeds) -> str:
    n = _length(rng, 64)
    for _ in range(n):
        if data:
            data[_pos(rng, data)] ^= 1 << int(rng.integers(0, 8))
    return f"flip {n} bit(s)"


def random_bytes(rng, data, seeds) -> str:
    n = _length(rng, 32)
    for _ in range(n):
        if data:
            data[_pos(rng, data)] = int(rng.integers(0, 256))
    return f"set {n} random byte(s)"


def overwrite_run(rng, data, seeds) -> str:
    at, n = _pos(rng, data), _length(rng, 512)
    n = min(n, len(data) - at)
    fill = int(rng.choice((0x00, 0xFF, -1)))
    data[at: at + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes() if fill < 0 else bytes([fill]) * n
    return f"overwrite {n} byte(s) at {at} with {'noise' if fill < 0 else hex(fill)}"


def zero_region(rng, data, seeds) -> str:
    at, n = _pos(rng, data), _length(rng, max(1, len(data) // 2))
    n = min(n, len(data) - at)
    data[at: at + n] = bytes(n)
    return f"zero {n} byte(s) at {at}"


def duplicate_chunk(rng, data, seeds) -> str:
    at, n = _pos(rng, data), _length(rng, 2048)
    chunk = bytes(data[at: at + n])
    to = _pos(rng, data)
    data[to:to] = chunk
    return f"copy {len(chunk)} byte(s) from {at} to {to}"


def delete_chunk(rng, data, seeds) -> str:
    at, n = _pos(rng, data), _length(rng, 2048)
    del data[at: at + n]
    return f"delete {n} byte(s) at {at}"


def splice(rng, data, seeds) -> str:
    name = sorted(seeds)[int(rng.integers(0, len(seeds)))]
    other = seeds[name]
    cut, cut2 = _pos(rng, data), _pos(rng, other)
    data[cut:] = other[cut2:]
    return f"splice {name} from {cut2} at {cut}"


def interesting_int(rng, data, seeds) -> str:
    at, width = _pos(rng, data), int(rng.choice((1, 2, 4)))
    value, order = _interesting(rng), "<" if rng.random() < 0.25 else ">"
    _put_int(data, at, value, width, order)
    return f"write {value:#x} ({width} byte(s)) at {at}"


def bmff_boxes(data, start: int = 0, end: int | None = None, depth: int = 0) -> list[tuple[int, int, bytes]]:
    """(offset, size, type) of every ISO BMFF box, parents before children."""
    end = len(data) if end is None else end
    boxes, at = [], start
    while at + 8 <= end and depth < 8:
        size, kind = struct.unpack(">I4s", bytes(data[at: at + 8]))
        if size == 1 and at + 16 <= end:
            size = struct.unpack(">Q", bytes(data[at + 8: at + 16]))[0]
        elif size == 0:
            size = end - at
        if size < 8 or at + size > end:
            break
        boxes.append((at, size, kind))
        if kind in BMFF_CONTAINERS:
            boxes += bmff_boxes(data, at + 8, at + size, depth + 1)
        at += size
    return boxes


def box_field(rng, data, seeds, suffix: str = ".mp4") -> str:
    """Damage one ISO BMFF box: its size, its type, or a 32-bit field of its header."""
    boxes = bmff_boxes(data)
    if not boxes:
        return marker_field(rng, data, seeds, suffix)
    at, size, kind = boxes[int(rng.integers(0, len(boxes)))]
    what = rng.random()
    name = kind.decode("latin-1")
    if what < 0.4:
        value = _interesting(rng, near=size)
        _put_int(data, at, value, 4)
        return f"box {name} at {at}: size {size} -> {value:#x}"
    if what < 0.5:
        new = b"free" if rng.random() < 0.5 else bytes(rng.integers(97, 123, 4, dtype=np.uint8))
        data[at + 4: at + 8] = new
        return f"box {name} at {at}: type -> {new.decode('latin-1')}"
    field_at = at + 8 + 4 * int(rng.integers(0, max(1, min(size - 8, 64) // 4)))
    old = struct.unpack(">I", bytes(data[field_at: field_at + 4]))[0] if field_at + 4 <= len(data) else 0
    value = _interesting(rng, near=old)
    _put_int(data, field_at, value, 4)
    return f"box {name} at {at}: field at +{field_at - at} {old:#x} -> {value:#x}"


def marker_field(rng, data, seeds, suffix: str = ".mp4") -> str:
    """Damage the bytes just after a header marker of this container (sizes, counts, sizes)."""
    markers = MARKERS.get(suffix, ())
    hits = [(m.start(), marker) for marker in markers for m in re.finditer(re.escape(marker), bytes(data))]
    if not hits:
        return interesting_int(rng, data, seeds)
    at, marker = hits[int(rng.integers(0, len(hits)))]
    field_at = at + len(marker) + int(rng.integers(0, 9))
    width = int(rng.choice((1, 2, 4)))
    value = _interesting(rng)
    _put_int(data, field_at, value, width)
    return f"after {marker.hex()} at {at}: {width} byte(s) at +{field_at - at} -> {value:#x}"


# (mutator, weight): light damage dominates, so many mutants still parse and the
# decoder, not only the demuxer, sees the damage.
MUTATORS: tuple[tuple[Callable, float], ...] = (
    (flip_bits, 3), (random_bytes, 2), (interesting_int, 2), (box_field, 3), (marker_field, 3),
    (truncate, 2), (overwrite_run, 1), (zero_region, 1), (duplicate_chunk, 1), (delete_chunk, 1),
    (splice, 1),
)


@dataclass(frozen=True)
class Case:
    stream: str  # decode | transcode
    number: int
    seed: str  # the seed file's name
    mutations: tuple[str, ...]
    data: bytes
    out_suffix: str  # the container a transcode writes

    @property
    def label(self) -> str:
        return f"{self.stream}:{self.number}"

    @property
    def suffix(self) -> str:
        return Path(self.seed).suffix

    def describe(self) -> str:
        return f"{self.label} ({self.seed}: {'; '.join(self.mutations)})"


def mutant(stream: str, number: int, seeds: dict[str, bytes]) -> Case:
    """Case ``number`` of ``stream``: the same bytes every time for the same seed files."""
    rng = np.random.default_rng([STREAMS[stream], number])
    names = sorted(seeds)
    seed = names[number % len(names)]  # every seed equally often
    data = bytearray(seeds[seed])
    funcs, weights = zip(*MUTATORS)
    p = np.array(weights) / sum(weights)
    done = []
    for _ in range(int(rng.choice((1, 1, 1, 2, 2, 3)))):
        func = funcs[int(rng.choice(len(funcs), p=p))]
        if func in (box_field, marker_field):
            done.append(func(rng, data, seeds, Path(seed).suffix))
        else:
            done.append(func(rng, data, seeds))
    out_suffix = ".mp4" if rng.random() < 0.5 else ".mkv"
    return Case(stream, number, seed, tuple(done), bytes(data), out_suffix)


# --- judging one case -----------------------------------------------------------------

OK, ERROR, CRASH, HANG, LEAK, DIRTY = "ok", "error", "crash", "hang", "leak", "dirty"
FAILURES = (CRASH, HANG, LEAK, DIRTY)


@dataclass
class Outcome:
    case: Case
    kind: str  # one of OK, ERROR (vidstyle's own), CRASH, HANG, LEAK, DIRTY
    detail: str = ""  # the error's class of message, or what went wrong
    seconds: float = 0.0
    frames: int | None = None

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES

    def report(self) -> str:
        return f"{self.kind}: {self.case.describe()}: {self.detail}"


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Resources:
    threads: frozenset
    native: int
    fds: int

    @classmethod
    def now(cls) -> "Resources":
        return cls(frozenset(t.ident for t in threading.enumerate()), native_threads(), open_fds())

    def extra_over(self, before: "Resources") -> list[str]:
        extra = [f"thread {t.name}" for t in threading.enumerate() if t.ident not in before.threads]
        if self.native > before.native:
            extra.append(f"{self.native - before.native} native thread(s)")
        if self.fds > before.fds:
            extra.append(f"{self.fds - before.fds} file descriptor(s)")
        return extra


def settled(before: Resources, patience: float = 2.0) -> list[str]:
    """What is open now and was not ``before``, once exiting threads have gone.

    A joined Python thread has finished its work, but its OS thread is still
    leaving /proc/self/task for a moment afterwards: wait for that (polling,
    up to ``patience`` seconds) before calling anything a leak.
    """
    give_up = time.monotonic() + patience
    while True:
        extra = Resources.now().extra_over(before)
        if not extra or time.monotonic() > give_up:
            return extra
        time.sleep(0.01)


def innermost(exc: BaseException) -> BaseException:
    """The exception a PipelineError (or a chain of them) wraps."""
    while isinstance(exc, PipelineError):
        exc = exc.cause
    return exc


def message_class(exc: BaseException, *paths) -> str:
    """The error with paths and numbers taken out, so equal failures group together."""
    prefix = ""
    while isinstance(exc, PipelineError):
        prefix += f"{type(exc).__name__}[{exc.stage}] "
        exc = exc.cause
    text = str(exc)
    for p in paths:
        text = text.replace(str(p), "FILE")
    text = re.sub(r"\.?\S*\.partial-[0-9a-f]+\.\w+", "TEMP", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
    return f"{prefix}{type(exc).__name__}: {text}"[:200]


def where(exc: BaseException) -> str:
    """file:line of the innermost frame of ``exc`` inside vidstyle, else the last frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "vidstyle" in f.filename.replace(os.sep, "/").split("/site-packages/")[-1]]
    f = (ours or frames or [None])[-1]
    return f"{Path(f.filename).name}:{f.lineno}" if f else "?"


def decode_job(path: Path, cancel: list) -> int:
    """probe, every video frame through FileSource, every audio packet (what the sink copies)."""
    probe(path)
    frames = 0
    with FileSource(path) as source:
        cancel.append(source.close)
        for _ in source.frames():
            frames += 1
    audio = AudioPackets(path)
    try:
        sum(1 for _ in audio.until(None))
    finally:
        audio.close()
    return frames


def transcode_job(path: Path, output: Path, cancel: list) -> int:
    """The whole transcode at a tiny processing size (16 px, longer side): the engine is shared and
    fast, and every stage, the sink and the audio copy still see the damaged file."""
    config = TranscodeConfig(path, output, size=16, batch=4, encode=EncodeSettings(preset="ultrafast"))
    return transcode(config, on_pipeline=lambda p: cancel.append(p.cancel)).frames


def output_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def run_case(case: Case, folder: Path, timeout: float = 60.0) -> Outcome:
    """Write the mutant into ``folder`` (emptied first), run its job with a deadline, judge it."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    path = folder / f"in{case.suffix}"
    path.write_bytes(case.data)
    output = folder / f"out{case.out_suffix}"
    digest = hashlib.sha1(case.data).hexdigest()
    cancel: list = []
    result: dict = {}

    def work():
        try:
            if case.stream == "decode":
                result["frames"] = decode_job(path, cancel)
            else:
                result["frames"] = transcode_job(path, output, cancel)
        except BaseException as exc:  # noqa: BLE001 - judged below
            result["error"] = exc

    before = Resources.now()
    worker = threading.Thread(target=work, name=f"fuzz-{case.label}", daemon=True)
    start = time.perf_counter()
    worker.start()
    worker.join(timeout)
    seconds = time.perf_counter() - start
    outcome = Outcome(case, OK, seconds=seconds)
    if worker.is_alive():
        for stop in cancel:
            stop()
        worker.join(10.0)
        stuck = " and still running after a cancel" if worker.is_alive() else ""
        return Outcome(case, HANG, f"no end after {timeout:g} s{stuck}", seconds)
    cancel.clear()  # the pipeline: judge what vidstyle holds on to, not what this harness does
    error = result.pop("error", None)
    if error is None:
        outcome.frames = result.get("frames")
    elif isinstance(error, VidstyleError) and isinstance(innermost(error), VidstyleError):
        outcome.kind, outcome.detail = ERROR, message_class(error, path, output)
    else:
        inner = innermost(error)
        outcome.kind = CRASH
        outcome.detail = (f"{message_class(error, path, output)} at {where(inner)}"
                          + (" (wrapped in PipelineError)" if inner is not error else ""))
    del error, result  # a traceback holds frames, and frames hold containers

    problems = []
    if hashlib.sha1(path.read_bytes()).hexdigest() != digest:
        problems.append("the input file changed")
    others = sorted(p.name for p in folder.iterdir() if p not in (path, output))
    if others:
        problems.append(f"left behind: {', '.join(others)}")
    if case.stream == "transcode":
        if outcome.kind != OK and output.exists():
            problems.append("a failed transcode left its output")
        elif outcome.kind == OK:
            if not output.exists():
                problems.append("success without an output")
            else:
                try:
                    written = output_frames(output)
                except av.FFmpegError as exc:
                    written = f"unreadable ({exc})"
                if written != outcome.frames:
                    problems.append(f"output holds {written} frame(s), transcode reported {outcome.frames}")
    if problems and outcome.kind != CRASH:
        outcome.kind, outcome.detail = DIRTY, "; ".join(problems)

    extra = settled(before)
    if extra and outcome.kind != CRASH:
        # Held by a reference cycle is a leak too: a decoder's threads would live until the
        # collector happens to run (a cycle through a kept FFmpeg error did exactly that).
        gc.collect()
        still = settled(before)
        outcome.kind = LEAK
        outcome.detail = (", ".join(still) if still else
                          f"{', '.join(extra)} (freed only by the garbage collector)")
    return outcome
