"""Video files in: probe them, and decode them into Frames on demand."""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from vidstyle.errors import InputError
from vidstyle.frame import Frame


@dataclass(frozen=True)
class VideoInfo:
    """What the rest of vidstyle needs to know about an input video.

    ``width``/``height`` are the picture as stored; ``rotation`` is how far a player
    turns it counter-clockwise for display (PyAV's ``VideoFrame.rotation``
    convention, snapped to 0/90/180/270). Frames are decoded as stored, never
    rotated: the sink writes the same rotation back as metadata.
    """

    path: str
    width: int
    height: int
    rotation: int
    time_base: Fraction
    average_rate: Fraction | None
    frame_count: int | None
    duration: float | None
    codec: str
    has_audio: bool


def ffmpeg_words(error: BaseException) -> str:
    """FFmpeg's own description of an error, without PyAV's errno and path."""
    return getattr(error, "strerror", None) or str(error)


def as_fraction(value) -> Fraction | None:
    """PyAV 18 gives Fraction or None; PyAV 19 gives AVRational, falsy when unset."""
    if value is None or not value:
        return None
    return Fraction(value.numerator, value.denominator)


def open_input(path) -> "av.container.InputContainer":
    """``av.open`` with the failures a user can cause turned into one-line InputErrors."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a video file")
    try:
        # A tag that is not UTF-8 (a damaged or foreign file) would fail the whole
        # open with UnicodeDecodeError; the pictures are still fine, so mangle the tag.
        return av.open(str(p), metadata_errors="replace")
    except av.FFmpegError as error:
        raise InputError(f"{p}: not a readable media file ({ffmpeg_words(error)})") from error
    except OSError as error:
        raise InputError(f"{p}: cannot open ({error.strerror or error})") from error


def probe(path) -> VideoInfo:
    """Describe the first video stream of ``path``; raise InputError if it has none.

    Decodes one frame: with PyAV 18 the display matrix is only readable from a
    decoded frame, and it also proves the stream holds a decodable picture, so a
    zero-frame or undecodable file fails here rather than mid-pipeline.
    """
    p = Path(path)
    with open_input(p) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise InputError(f"{p}: no video stream (the file holds {', '.join(kinds)})")
        stream = container.streams.video[0]
        first = _first_frame(container, stream, p)
        if first is None:
            raise InputError(f"{p}: the video stream has no frames")
        time_base = as_fraction(stream.time_base)
        duration = None
        if stream.duration and time_base:
            duration = float(stream.duration * time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        return VideoInfo(
            path=str(p),
            width=stream.codec_context.width or first.width,
            height=stream.codec_context.height or first.height,
            # Only quarter turns are meaningful for our players and for the sink;
            # phone cameras never write anything else.
            rotation=round(first.rotation / 90) * 90 % 360,
            time_base=time_base or Fraction(1, 90000),
            average_rate=as_fraction(stream.average_rate),
            frame_count=stream.frames or None,
            duration=duration,
            codec=stream.codec_context.name,
            has_audio=bool(container.streams.audio),
        )


def _first_frame(container, stream, path: Path):
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as error:
        raise InputError(f"{path}: cannot decode frame 0 ({ffmpeg_words(error)})") from error
    return None


class FileSource:
    """Decodes a video file into Frames, in order, with the source's timestamps.

    The container is opened inside ``frames()`` and closed in its ``finally``, so
    an abandoned, exhausted or failed iteration never leaks FFmpeg contexts.
    """

    def __init__(self, path, threads: int = 0):
        self.path = Path(path)
        self.threads = threads
        self.info = probe(self.path)
        self._closed = False
        self._lock = threading.Lock()
        self._generators: "weakref.WeakSet" = weakref.WeakSet()

    def frames(self) -> Iterator[Frame]:
        if self._closed:
            raise ValueError(f"{self.path}: source is closed")
        generator = self._decode()
        with self._lock:
            self._generators.add(generator)
        return generator

    def _decode(self) -> Iterator[Frame]:
        container = open_input(self.path)
        index = 0
        try:
            stream = container.streams.video[0]
            # Frame threading adds a few frames of latency but decodes in parallel
            # off the GIL; slice threading covers codecs without frame threads.
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            time_base = as_fraction(stream.time_base) or self.info.time_base
            packets = container.demux(stream)
            while not self._closed:
                try:
                    # demux() ends with an empty packet whose decode() flushes the
                    # frames the decoder still holds.
                    packet = next(packets, None)
                    if packet is None:
                        return
                    decoded = packet.decode()
                except av.FFmpegError as error:
                    raise InputError(
                        f"{self.path}: cannot decode frame {index} ({ffmpeg_words(error)})"
                    ) from error
                for picture in decoded:
                    image = picture.to_ndarray(format="rgb24")
                    yield Frame(index, picture.pts, time_base, image, time.monotonic())
                    index += 1
        finally:
            container.close()
            # An error raised here keeps this frame alive in its traceback, and the
            # frame would keep the decoder and its threads (close() frees neither)
            # for as long as anyone holds the error.
            container = stream = packets = decoded = picture = None

    def close(self) -> None:
        """Stop decoding and release the file; safe to call twice and from any thread.

        A generator paused at ``yield`` is closed now. One busy decoding on another
        thread cannot be closed under its feet (FFmpeg contexts are not thread
        safe), so it stops itself at the next packet and closes in its finally.
        """
        self._closed = True
        with self._lock:
            generators = list(self._generators)
        for generator in generators:
            try:
                generator.close()
            except ValueError:
                pass  # "generator already executing": it sees _closed and stops

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AudioPackets:
    """The audio streams of a file, demuxed in file order and handed out up to a clock.

    A sink runs one beside its video so that audio is interleaved as frames are
    written instead of in a second pass; an interrupted file still has sound.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._container = open_input(self.path)
        self.streams = tuple(self._container.streams.audio)
        self._packets = self._container.demux(*self.streams) if self.streams else iter(())
        self._held = None  # the first packet past the last limit

    def until(self, limit: float | None) -> Iterator["av.Packet"]:
        """Packets that start before ``limit`` seconds; None: all that remain.

        The end of the file yields one empty packet per stream, which flushes a
        decoder; a copier should skip it.
        """
        while True:
            packet, self._held = self._held, None
            if packet is None:
                try:
                    packet = next(self._packets, None)
                except av.FFmpegError as error:
                    raise InputError(f"{self.path}: cannot read audio "
                                     f"({ffmpeg_words(error)})") from error
            if packet is None:
                return
            ts = packet.pts if packet.pts is not None else packet.dts
            seconds = None if ts is None else ts * as_fraction(packet.time_base)
            if limit is not None and seconds is not None and seconds >= limit:
                self._held = packet
                return
            yield packet

    def close(self) -> None:
        self._held = None
        self._container.close()
