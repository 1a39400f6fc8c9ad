"""Video files out: encode Frames, carry the source's audio, and publish atomically."""
from __future__ import annotations

import errno
import os
import secrets
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from vidstyle.errors import InputError, OutputError
from vidstyle.frame import Frame
from vidstyle.io.source import AudioPackets, VideoInfo, as_fraction, ffmpeg_words


@dataclass(frozen=True)
class EncodeSettings:
    """Encoder choice; crf/preset are x264 terms, mapped for the codecs that differ."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    threads: int = 0


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast",
                 "medium", "slow", "slower", "veryslow", "placebo")


def encoder_options(codec: str, settings: EncodeSettings) -> dict[str, str]:
    """The FFmpeg private options that express crf/preset for ``codec``.

    Codecs not listed keep their encoder's defaults: there is no portable quality
    knob, and passing unknown options would only produce FFmpeg warnings.
    """
    if codec in ("libx264", "libx265"):
        # x264 reports a bad preset only on its own stderr; FFmpeg just says EINVAL.
        if settings.preset not in _X26X_PRESETS:
            raise OutputError(f"unknown {codec} preset {settings.preset!r} "
                              f"(use one of {', '.join(_X26X_PRESETS)})")
        options = {"crf": str(settings.crf), "preset": settings.preset}
        if codec == "libx265":
            options["x265-params"] = "log-level=error"  # x265 prints a banner per file
        return options
    if codec in ("libvpx-vp9", "libvpx"):
        # b=0 makes crf a constant-quality target instead of a cap under a bitrate;
        # the x264 preset ladder maps onto cpu-used, which runs the other way.
        speed = 8 - _X26X_PRESETS.index(settings.preset) if settings.preset in _X26X_PRESETS else 3
        return {"crf": str(settings.crf), "b": "0", "deadline": "good", "row-mt": "1",
                "cpu-used": str(max(speed, 0))}
    if codec in ("mpeg4", "mpeg2video", "mpeg1video", "mjpeg"):
        # These take a fixed quantiser (2 best .. 31 worst); crf 18 maps to 3.
        q = str(min(31, max(2, round(settings.crf / 6))))
        return {"qmin": q, "qmax": q}
    return {}


# Temp files of the sinks still open, process-wide. An abrupt exit (a second Ctrl-C
# ends the process with os._exit, which runs no finally) must still remove them,
# so they are kept where a signal handler can find them.
_OPEN_TEMPS: set[Path] = set()


def remove_open_temps() -> None:
    """Delete the temp file of every open sink, from any thread or a signal handler."""
    for temp in list(_OPEN_TEMPS):
        temp.unlink(missing_ok=True)


def write_failure(path: Path, what: str, error: BaseException) -> OutputError:
    """One line for a failed write; a full disk named as such, whatever FFmpeg was doing."""
    if getattr(error, "errno", None) == errno.ENOSPC:
        return OutputError(f"{path}: no space left on device; could not {what}")
    return OutputError(f"{path}: cannot {what} ({ffmpeg_words(error)})")


def even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    """The smallest size at or above (width, height) that ``pix_fmt`` can hold.

    Chroma-subsampled formats (yuv420p: 2x2) need whole chroma blocks. We pad with
    edge replication instead of scaling: pixels stay untouched, the extra row or
    column is invisible next to its copy, and no resampling blur creeps in.
    """
    fmt = av.VideoFormat(pix_fmt)
    step_w = 64 // fmt.chroma_width(64)
    step_h = 64 // fmt.chroma_height(64)
    return -(-width // step_w) * step_w, -(-height // step_h) * step_h


class FileSink:
    """Encodes Frames into ``path`` via a temporary file renamed into place by close().

    Each frame keeps its source pts (VFR and A/V sync survive); the source's
    rotation is written back as display-matrix metadata, so frames are expected
    as stored, not upright. Audio from ``audio_from`` is interleaved as the video
    clock advances, so even an interrupted file has sound up to that point.

    A part of the source (``start``/``end``, seconds on the source's clock): the
    output's clock starts at ``start`` (video pts and audio move back by it), and
    only the audio from ``start`` to ``end`` is carried.
    """

    def __init__(self, path, info: VideoInfo, width: int, height: int,
                 settings: EncodeSettings = EncodeSettings(), audio_from: str | None = None,
                 options: Callable[[str], dict[str, str]] | None = None, *,
                 start: Fraction | float | None = None, end: Fraction | float | None = None):
        """``options(codec_name)``: encoder options to add to what ``settings`` give."""
        self.path = Path(path)
        self._offset = Fraction(start or 0)
        self._end = None if end is None else float(end)
        self.info = info
        self.width, self.height = width, height
        self.settings = settings
        check_target(self.path, [info.path] + ([audio_from] if audio_from else []))
        codec = _video_codec(settings)
        self._options = {**encoder_options(codec.name, settings), **(options(codec.name) if options else {})}
        self._coded_size = even_size(width, height, settings.pix_fmt)
        # Left to PyAV, RGB becomes BT.601 YUV with no colour tags, which players
        # show as BT.709 for HD: shifted colours. Convert and tag explicitly.
        self._yuv_range = None if av.VideoFormat(settings.pix_fmt).is_rgb else (
            "JPEG" if settings.pix_fmt.startswith("yuvj") else "MPEG")
        self._lock = threading.Lock()
        self._container = None
        self._audio: AudioFeed | None = None
        self._state = "open"  # -> "closed" | "aborted"
        self._published = self.path
        self.frames = 0  # written so far
        self._last_pts: int | None = None
        self._clock = 0.0  # seconds of video written, to pace and trim the audio
        self._temp = self._reserve_temp()
        try:
            self._start(codec, audio_from)
        except BaseException:
            self._discard()
            raise

    def _start(self, codec: av.Codec, audio_from: str | None) -> None:
        # A copied audio stream can still be refused when the header is written
        # (AAC from MPEG-TS is ADTS, which AVI takes only with another tag); then
        # start again with the audio re-encoded.
        for transcode_audio in (False, True):
            try:
                self._container = av.open(str(self._temp), "w")
                self._video = self._add_video(codec)
                if audio_from:
                    self._audio = AudioFeed(self._container, audio_from, transcode_audio,
                                            start=float(self._offset) if self._offset else None)
                # Writing the header opens every encoder, so bad options, sizes and
                # codec/container pairs fail here, before the pipeline starts work.
                self._container.start_encoding()
                return
            except (av.FFmpegError, ValueError) as error:
                retry = self._audio is not None and not transcode_audio
                self._close_container()
                _close_stray_descriptor(self._temp)
                if not retry:
                    raise OutputError(f"{self.path}: cannot start encoding {codec.name} "
                                      f"({ffmpeg_words(error)})") from error


    def _reserve_temp(self) -> Path:
        # Hidden and marked partial, with the real extension so FFmpeg picks the
        # muxer. PyAV opens the file only when the header is written; creating it
        # here (exclusively: two runs never share one) proves the folder writable.
        name = f".{self.path.stem}.partial-{secrets.token_hex(4)}{self.path.suffix}"
        temp = self.path.with_name(name)
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as error:
            raise write_failure(self.path, f"write in {temp.parent}", error) from error
        _OPEN_TEMPS.add(temp)
        return temp

    def _add_video(self, codec: av.Codec):
        time_base = self.info.time_base
        if codec.name == "mpeg4" and time_base.denominator > 65535:
            # MPEG-4 part 2 stores the time base in 16 bits; pts are rescaled to it.
            time_base = Fraction(1, 65535)
        stream = self._container.add_stream(codec.name, rate=self.info.average_rate or 25)
        stream.width, stream.height = self._coded_size
        stream.pix_fmt = self.settings.pix_fmt
        stream.codec_context.time_base = self._time_base = time_base
        stream.codec_context.thread_count = self.settings.threads
        stream.codec_context.options = self._options
        if self.info.rotation:
            stream.set_display_rotation(self.info.rotation)
        if self._yuv_range:
            ctx = stream.codec_context
            ctx.colorspace = ctx.color_primaries = ctx.color_trc = 1  # AVCOL_*_BT709
            ctx.color_range = 2 if self._yuv_range == "JPEG" else 1  # AVCOL_RANGE_*
        # One nominal frame in encoder ticks: the spacing for frames without pts.
        self._step = max(1, round(1 / ((self.info.average_rate or 25) * time_base)))
        return stream

    def write(self, frame: Frame) -> None:
        image = frame.image
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"frame {frame.index}: expected uint8 "
                             f"{(self.height, self.width, 3)}, got {image.dtype} {image.shape}")
        pad_w, pad_h = self._coded_size[0] - self.width, self._coded_size[1] - self.height
        if pad_w or pad_h:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self._yuv_range:
            picture = picture.reformat(
                format=self.settings.pix_fmt, dst_colorspace="ITU709",
                dst_color_range=self._yuv_range, threads=self.settings.threads)
        time_base = self._time_base
        picture.pts, picture.time_base = self._encoder_pts(frame, time_base), time_base
        with self._lock:
            if self._state != "open":
                raise OutputError(f"{self.path}: sink is {self._state}")
            try:
                self._container.mux(self._video.encode(picture))
                self.frames += 1
                self._clock = float(picture.pts * time_base + self._offset)
                if self._audio:
                    self._audio.feed_until(self._clock)
            except (av.FFmpegError, OSError) as error:
                raise write_failure(self.path, f"encode frame {frame.index}", error) from error
        self._clock += float(self._step * time_base)

    def _encoder_pts(self, frame: Frame, time_base: Fraction) -> int:
        if frame.pts is None or frame.time_base is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        else:
            pts = round((frame.pts * as_fraction(frame.time_base) - self._offset) / time_base)
        # Encoders reject repeated or backward pts; a broken source should still
        # give every frame its own slot rather than fail or be dropped.
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        return pts

    def close(self, *, partial: bool = False, path=None) -> Path:
        """Finish the file and move it into place (``path``, default the output); returns it.

        ``partial=True`` (after a cancel) stops the audio where the video stops
        instead of copying the rest of the source's sound. Until the rename the
        file keeps its hidden temp name, so nothing half-written ever looks done.
        """
        with self._lock:
            if self._state == "closed":
                return self._published
            if self._state != "open":
                raise OutputError(f"{self.path}: sink is {self._state}")
            try:
                self._container.mux(self._video.encode(None))
                if self._audio:
                    self._audio.finish(self._clock if partial else self._end)
                container, self._container = self._container, None
                container.close()  # writes the trailer; unlike abort, failures count here
                self._close_container()
                target = Path(path) if path is not None else self.path
                os.replace(self._temp, target)
            except (av.FFmpegError, OSError) as error:
                self._discard()
                raise write_failure(self.path, "finish the file", error) from error
            except BaseException:
                self._discard()
                raise
            _OPEN_TEMPS.discard(self._temp)
            self._state, self._published = "closed", target
        return target

    def abort(self) -> None:
        """Drop everything written so far; the final path is never touched."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._state == "closed":
            return
        self._state = "aborted"
        self._close_container()
        self._temp.unlink(missing_ok=True)
        _OPEN_TEMPS.discard(self._temp)

    def _close_container(self) -> None:
        if self._audio:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass  # the file is dropped or rewritten; a failing trailer changes nothing
            self._container = None

    def __enter__(self) -> "FileSink":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _video_codec(settings: EncodeSettings) -> av.Codec:
    try:
        codec = av.Codec(settings.codec, "w")
    except ValueError:  # av.codec.codec.UnknownCodecError
        raise OutputError(f"unknown video encoder {settings.codec!r}") from None
    if codec.type != "video":
        raise OutputError(f"{settings.codec!r} is not a video encoder")
    formats = [f.name for f in codec.video_formats or ()]
    if formats and settings.pix_fmt not in formats:
        raise OutputError(f"{settings.codec} cannot encode pixel format {settings.pix_fmt!r} "
                          f"(it takes {', '.join(formats[:6])})")
    return codec


class AudioFeed:
    """Carries every audio stream of ``path`` into ``container``, paced by the video.

    Packets are copied untouched when the container accepts their codec, else
    decoded and re-encoded to one it does (e.g. AAC into WebM becomes Opus).
    With ``start`` (seconds) the audio before it is left out and the rest moves
    back by it, whole packets at a time, as ffmpeg's stream copy cuts.
    """

    # Preferred re-encode targets; the native opus/vorbis encoders are experimental.
    _ENCODERS = ("aac", "libopus", "libvorbis", "libmp3lame", "mp2", "flac")

    def __init__(self, container, path, transcode: bool = False, start: float | None = None):
        self._out = container
        self._transcode = transcode
        self._start = start
        self._source = AudioPackets(path, start=start)
        try:
            self._routes = {s.index: self._add_route(s) for s in self._source.streams}
        except BaseException:
            self._source.close()
            raise

    def _add_route(self, source):
        if source.codec_context is None:  # a damaged header names no codec FFmpeg knows
            raise InputError(f"{self._source.path}: audio stream {source.index} is in an unknown codec; "
                             "it can be neither copied nor re-encoded")
        names = self._out.supported_codecs
        if source.codec_context.name in names and not self._transcode:
            return self._out.add_stream_from_template(source), False
        usable = [n for n in self._ENCODERS if n in names and n in av.codecs_available]
        if not usable:
            raise OutputError(f"{self._out.name}: the container takes none of the audio "
                              f"encoders {', '.join(self._ENCODERS)}")
        encoder = usable[0]
        codec = av.Codec(encoder, "w")
        rate, rates = source.codec_context.sample_rate, codec.audio_rates or ()
        if rates and rate not in rates:
            rate = min((r for r in rates if r >= rate), default=max(rates))
        stream = self._out.add_stream(encoder, rate=rate)
        # Beyond stereo needs per-codec channel mappings; stereo plays anywhere.
        layout = source.codec_context.layout
        stream.layout = layout if layout.nb_channels <= 2 else "stereo"
        formats = [f.name for f in codec.audio_formats or ()]
        stream.format = next((f for f in ("fltp", "flt") if f in formats), formats[0])
        return stream, True

    def feed_until(self, limit: float | None) -> None:
        """Mux the audio that starts before ``limit`` seconds (None: all of it)."""
        for packet in self._source.until(limit):
            out_stream, transcode = self._routes[packet.stream.index]
            try:
                if transcode:
                    for frame in packet.decode():  # an empty packet flushes the decoder
                        if self._start and frame.pts is not None:
                            frame.pts -= round(self._start / frame.time_base)
                        self._out.mux(out_stream.encode(frame))
                elif packet.size:
                    if self._start:
                        shift = round(self._start / packet.time_base)
                        packet.pts = None if packet.pts is None else packet.pts - shift
                        packet.dts = None if packet.dts is None else packet.dts - shift
                    packet.stream = out_stream
                    self._out.mux(packet)
            except av.FFmpegError as error:
                if getattr(error, "errno", None) == errno.ENOSPC:
                    raise  # the sink names its real path, not this hidden temp name
                raise OutputError(f"{self._out.name}: cannot carry audio packet "
                                  f"pts={packet.pts} ({ffmpeg_words(error)})") from error
            except ValueError as error:
                # PyAV's encoder resamples to what the first frame was; damaged audio that later
                # decodes to another format, layout or rate is refused so (found by fuzzing).
                raise OutputError(f"{self._out.name}: cannot carry audio packet pts={packet.pts} "
                                  f"(the audio changes format mid-stream: {error})") from error

    def finish(self, limit: float | None) -> None:
        self.feed_until(limit)
        for out_stream, transcode in self._routes.values():
            if transcode:
                self._out.mux(out_stream.encode(None))

    def close(self) -> None:
        self._source.close()


def _close_stray_descriptor(path: Path) -> None:
    """Close the descriptor PyAV left open on ``path`` after a failed start.

    PyAV (18) opens the output file before writing the header, but closes it
    only once a header was written: a header the muxer refuses (found by
    fuzzing: damaged AAC copied from MPEG-TS) leaks the descriptor for good.
    The temporary name is unique to one sink, so a descriptor on it is that one.
    """
    target = os.path.realpath(path)
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:
        return  # no /proc (not Linux): nothing to look at
    for fd in descriptors:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") in (target, f"{target} (deleted)"):
                os.close(int(fd))
        except OSError:
            pass  # gone meanwhile, or the listing's own descriptor


def check_target(path, inputs=(), overwrite: bool = True) -> None:
    """Fail before any work if ``path`` cannot be a video output: its folder is missing,
    it is a folder, it is one of ``inputs``, or (``overwrite`` False) it exists."""
    path = Path(path)
    folder = path.absolute().parent
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")
    for source in inputs:
        if _same_file(path, Path(source)):
            raise OutputError(f"{path}: output would overwrite the input {source}")
    if not overwrite and path.exists():
        raise OutputError(f"{path}: already exists; -y replaces it")


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()
