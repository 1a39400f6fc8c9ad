"""Video files in: probe them, and decode them into Frames on demand."""
from __future__ import annotations

import re
import threading
import time
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import cv2
import numpy as np

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
    # Where the file itself says the video ends (seconds), when it says so: MP4/MOV
    # track durations and Matroska's DURATION tag. A decode that stops well before it
    # is a truncated or damaged file, not a short video.
    declared_end: float | None = None
    first_pts: int | None = None  # of the first picture that decodes, in time_base

    @property
    def frame_period(self) -> float:
        return 1 / float(self.average_rate) if self.average_rate else 1 / 25


DECODE_ERRORS = ("stop", "skip")  # what FileSource does with a frame FFmpeg cannot decode

# A tag that is not UTF-8 (a damaged or foreign file) fails PyAV 18's whole open with
# UnicodeDecodeError unless it is told to mangle the tag; PyAV 19 dropped the option.
_OPEN_OPTIONS = {"metadata_errors": "replace"} if int(av.__version__.split(".")[0]) < 19 else {}


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
        return av.open(str(p), **_OPEN_OPTIONS)
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
        # FFmpeg opens a PNG or JPEG as a one-frame video (png_pipe, jpeg_pipe...);
        # stylizing it into a 0.04 s clip is never what was meant.
        if container.format.name.endswith("_pipe"):
            raise InputError(f"{p}: is a still picture ({stream.codec_context.name}), not a video; "
                             f"use `vidstyle image`")
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
            declared_end=_declared_end(container, stream),
            first_pts=first.pts,
        )


def _first_frame(container, stream, path: Path):
    """The first picture that decodes. Damaged packets before it are passed over, so
    that ``--on-decode-error skip`` can handle a file whose first frame is broken;
    with ``stop`` the decoder meets the same damage again and reports it."""
    error = None
    try:
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    return frame
            except av.FFmpegError as caught:
                # Kept without its traceback: error -> traceback -> this frame -> error is a
                # cycle that would hold the decoder and its threads until the garbage
                # collector runs, even when a later packet decodes (found by fuzzing).
                error = error or caught.with_traceback(None)
    except av.FFmpegError as caught:  # the demuxer itself gave up
        error = error or caught.with_traceback(None)
    if error is not None:
        raise InputError(f"{path}: cannot decode frame 0 ({ffmpeg_words(error)})") from error
    return None


_HMS = re.compile(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def _declared_end(container, stream) -> float | None:
    """The end of the video as the file's own header or tags state it, in seconds.

    Only for formats that write it as a fact once the file is complete: MP4/MOV
    (track duration after the edit list) and Matroska/WebM (FFmpeg's and
    mkvmerge's per-track DURATION tag). Elsewhere (MPEG-TS, raw streams) FFmpeg
    estimates a duration from the very bytes we decode, or from the bitrate, which
    proves nothing either way.
    """
    formats = container.format.name.split(",")
    time_base = as_fraction(stream.time_base)
    if "mov" in formats and stream.duration and time_base:
        return float(((stream.start_time or 0) + stream.duration) * time_base)
    if "matroska" in formats:
        match = _HMS.match(stream.metadata.get("DURATION", "").strip())
        if match:
            hours, minutes, seconds = match.groups()
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return None


def letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` scaled to fit inside width x height, keeping its shape, centred on black."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    fw, fh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    scaled = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fh) // 2, (width - fw) // 2
    out[top: top + fh, left: left + fw] = scaled
    return out


class FileSource:
    """Decodes a video file into Frames, in order, with the source's timestamps.

    The container is opened inside ``frames()`` and closed in its ``finally``, so
    an abandoned, exhausted or failed iteration never leaks FFmpeg contexts.

    Damage: with ``on_decode_error="stop"`` a frame FFmpeg cannot decode, a file
    the demuxer cannot read to its end, or one that stops before the length it
    declares raises InputError naming the frame. With ``"skip"`` undecodable
    frames are dropped (their indexes go to ``skipped``; the frames around them
    keep their own pts, so timing stays right) and an early end is recorded in
    ``notes``. Frames whose size differs from the first one (a resolution
    change mid-stream) are fitted into the first size, like FFmpeg's automatic
    scaler does, but letterboxed rather than stretched; that is noted too.

    A span (the cluster's segments): ``start_pts`` seeks to ``seek_pts`` (default
    ``start_pts``; FFmpeg goes back to the keyframe at or before it) and drops the
    pictures before ``start_pts``; ``end_pts`` stops before the first picture at
    or after it; the first frame yielded is numbered ``first_index``. Damage
    outside the span is not this span's to report. The declared length is
    checked only by a span that runs to the end of the file.
    """

    rate = None  # a file is read as fast as the pipeline takes it
    dropped = 0  # ... so no frame is ever replaced by a newer one

    def __init__(self, path, threads: int = 0, on_decode_error: str = "stop", *,
                 start_pts: int | None = None, end_pts: int | None = None, first_index: int = 0,
                 seek_pts: int | None = None):
        if on_decode_error not in DECODE_ERRORS:
            raise ValueError(f"on_decode_error must be one of {DECODE_ERRORS}, not {on_decode_error!r}")
        self.path = Path(path)
        self.threads = threads
        self.on_decode_error = on_decode_error
        self.start_pts, self.end_pts, self.first_index = start_pts, end_pts, first_index
        # A caller that knows the keyframe (the cluster's plan) says where to seek: FFmpeg's
        # own search may compare against decode timestamps, which lag pts with B-frames.
        self.seek_pts = start_pts if seek_pts is None else seek_pts
        self.info = probe(self.path)
        self.skipped: list[int] = []  # indexes of frames dropped as undecodable
        self.notes: list[str] = []  # what a user should hear about even though the run went on
        self._resized_from: int | None = None
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
        index = self.first_index
        start, end = self.start_pts, self.end_pts
        try:
            stream = container.streams.video[0]
            # Frame threading adds a few frames of latency but decodes in parallel
            # off the GIL; slice threading covers codecs without frame threads.
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            time_base = as_fraction(stream.time_base) or self.info.time_base
            # Seeking to the first picture gains nothing, and MPEG-TS lands past it.
            if start is not None and self.seek_pts > (self.info.first_pts or 0):
                container.seek(self.seek_pts, stream=stream, backward=True, any_frame=False)
            packets = container.demux(stream)
            reached = None  # the end time of the latest packet read, seconds
            while not self._closed:
                try:
                    # demux() ends with an empty packet whose decode() flushes the
                    # frames the decoder still holds.
                    packet = next(packets, None)
                except av.FFmpegError as error:  # the demuxer cannot go on: the rest is lost
                    self._ends_early(index, f"cannot be read past frame {index} ({ffmpeg_words(error)})")
                    return
                if packet is None:
                    if end is None:
                        self._check_length(index, reached)
                    return
                reached = _packet_end(packet, reached)
                try:
                    decoded = packet.decode()
                except av.FFmpegError as error:
                    if not _in_span(packet.pts, start, end):
                        continue  # another span's frame: that span reports it
                    if self.on_decode_error == "stop":
                        raise InputError(f"{self.path}: cannot decode frame {index} ({ffmpeg_words(error)}); "
                                         f"--on-decode-error skip drops such frames") from error
                    self.skipped.append(index)
                    index += 1  # the gap tells temporal smoothing to start afresh here
                    continue
                for picture in decoded:
                    if start is not None and (picture.pts is None or picture.pts < start):
                        continue  # decoded only to reach the span (or with no pts to place it by)
                    if end is not None and picture.pts is not None and picture.pts >= end:
                        return
                    yield Frame(index, picture.pts, time_base, self._image(picture, index), time.monotonic())
                    index += 1
        finally:
            container.close()
            # An error raised here keeps this frame alive in its traceback, and the
            # frame would keep the decoder and its threads (close() frees neither)
            # for as long as anyone holds the error.
            container = stream = packets = packet = decoded = picture = None

    def _image(self, picture, index: int) -> np.ndarray:
        image = picture.to_ndarray(format="rgb24")
        width, height = self.info.width, self.info.height
        if image.shape[:2] == (height, width):
            return image
        if self._resized_from is None:
            self._resized_from = index
            self.notes.append(f"{self.path}: the picture size changes at frame {index} "
                              f"({picture.width}x{picture.height}); later frames are fitted into "
                              f"{width}x{height}")
        return letterbox(image, width, height)

    def _check_length(self, index: int, reached: float | None) -> None:
        declared = self.info.declared_end
        # Two frame periods of slack: edit lists and rounded tags move the end a little.
        if declared is None or reached is None or reached >= declared - 2 * self.info.frame_period - 0.01:
            return
        self._ends_early(index, f"stops at {reached:.2f} s of the {declared:.2f} s it declares")

    def _ends_early(self, index: int, what: str) -> None:
        """Truncated or damaged: an error with ``stop``, a note with ``skip``."""
        if self.on_decode_error == "stop":
            raise InputError(f"{self.path}: the video {what}: truncated or damaged; "
                             f"--on-decode-error skip keeps the {index - self.first_index} frame(s) before that")
        self.notes.append(f"{self.path}: the video {what}: truncated or damaged; kept the frames before that")

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


def _in_span(pts: int | None, start: int | None, end: int | None) -> bool:
    """Whether a packet belongs to [start, end); one without pts is given the benefit of the doubt."""
    if pts is None:
        return True
    return (start is None or pts >= start) and (end is None or pts < end)


def _packet_end(packet, reached: float | None) -> float | None:
    if packet.pts is None or not packet.time_base:
        return reached
    end = float((packet.pts + (packet.duration or 0)) * as_fraction(packet.time_base))
    return end if reached is None else max(reached, end)


class AudioPackets:
    """The audio streams of a file, demuxed in file order and handed out up to a clock.

    A sink runs one beside its video so that audio is interleaved as frames are
    written instead of in a second pass; an interrupted file still has sound.
    With ``start`` (seconds) the packets that begin before it are left out.
    """

    def __init__(self, path, start: float | None = None):
        self.path = Path(path)
        self.start = start
        self._container = open_input(self.path)
        self.streams = tuple(self._container.streams.audio)
        if self.streams and start:
            try:  # backward: the demuxer lands at or before the start; until() drops the rest
                self._container.seek(int(start * av.time_base), backward=True, any_frame=False)
            except av.FFmpegError:
                pass  # a file that cannot seek is read from its beginning
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
            if self.start and seconds is not None and seconds < self.start:
                continue
            yield packet

    def close(self) -> None:
        self._held = None
        self._container.close()
