"""Test videos made in code, and a reader that returns what a player would see.

Nothing is downloaded: every clip is drawn with numpy and encoded with PyAV, so a
test states exactly what went in (frame content, timestamps, audio length, rotation)
and can assert on what came out.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Nominal frame durations, in quarter-frame ticks, cycled for variable frame rate
# clips: irregular enough that a sink re-timing frames at a constant rate fails.
VFR_PATTERN = (4, 4, 8, 2, 6, 3, 4, 1, 5)
AUDIO_RATE = 44100
TONE_HZ = 440.0


def draw_frame(index: int, width: int, height: int) -> np.ndarray:
    """A deterministic RGB picture that differs from every other index.

    A diagonal gradient drifts with the index, a red square moves right and a green
    bar moves down, so neither a repeated nor a mirrored/rotated frame looks right.
    """
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), np.uint8)
    image[..., 0] = (x * 255 // max(width - 1, 1) + index * 7) % 256
    image[..., 1] = (y * 255 // max(height - 1, 1) + index * 3) % 256
    image[..., 2] = (index * 11) % 256
    side = max(min(width, height) // 4, 2)
    left = (index * 2) % max(width - side, 1)
    image[: side, left: left + side] = (255, 0, 0)
    top = (index * 3) % max(height - 2, 1)
    image[top: top + 2, width // 2:] = (0, 255, 0)
    return image


def frame_times(frames: int, fps: int, vfr: bool) -> tuple[list[int], Fraction, int]:
    """Presentation timestamps, their time base, and the end time of the last frame."""
    if not vfr:
        return list(range(frames)), Fraction(1, fps), frames
    time_base = Fraction(1, fps * 4)
    pts, now = [], 0
    for i in range(frames):
        pts.append(now)
        now += VFR_PATTERN[i % len(VFR_PATTERN)]
    return pts, time_base, now


def _default_codecs(path: Path) -> tuple[str, str]:
    if path.suffix.lower() == ".webm":
        return "libvpx-vp9", "libopus"
    return "libx264", "aac"


def make_video(
    path,
    frames: int = 30,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    audio: bool | int = True,
    vfr: bool = False,
    rotation: int | None = None,
    codec: str | None = None,
    audio_codec: str | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Write a clip of moving shapes (and a sine tone as long as the video).

    ``size`` is (width, height) as stored; ``rotation`` is the counter-clockwise
    display rotation written to the container (e.g. 90 for a phone held upright).
    ``audio`` may be a number of tone tracks (each a different pitch).
    ``codec``/``audio_codec`` default by container: VP9 + Opus for .webm, else
    H.264 + AAC. Odd sizes need ``pix_fmt="yuv444p"``. ``frames=0`` into .mkv
    gives a file whose video stream holds no frames (with 1 s of tone, if audio,
    so that FFmpeg can open it); MP4 drops an empty track altogether.
    """
    path = Path(path)
    default_video, default_audio = _default_codecs(path)
    audio_codec = audio_codec or default_audio
    width, height = size
    pts_list, time_base, end = frame_times(frames, fps, vfr)
    duration = float(end * time_base) if frames else 1.0

    with av.open(str(path), "w") as out:
        video = out.add_stream(codec or default_video, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        # One thread keeps the encoded bytes identical from run to run.
        video.codec_context.thread_count = 1
        tones = []
        for track in range(int(audio)):
            stream = out.add_stream(audio_codec, rate=_audio_rate(audio_codec))
            stream.layout = "mono"
            tones.append(_Tone(stream, round(duration * stream.rate), TONE_HZ * (track + 1)))
        if frames == 0:
            out.start_encoding()
        for i, pts in enumerate(pts_list):
            for tone in tones:  # interleave: audio that starts before this frame first
                tone.mux_until(out, float(pts * time_base))
            picture = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="rgb24")
            picture.pts, picture.time_base = pts, time_base
            out.mux(video.encode(picture))
        if frames:
            out.mux(video.encode(None))
        for tone in tones:
            tone.mux_until(out, None)
            out.mux(tone.stream.encode(None))
    return path


class _Tone:
    """A sine wave fed to an audio encoder in 1024-sample chunks."""

    def __init__(self, stream, total: int, hz: float = TONE_HZ):
        self.stream, self.total, self.hz, self.done = stream, total, hz, 0

    def mux_until(self, out, seconds: float | None) -> None:
        rate = self.stream.rate
        while self.done < self.total and (seconds is None or self.done / rate < seconds):
            count = min(1024, self.total - self.done)
            t = np.arange(self.done, self.done + count) / rate
            samples = (0.3 * np.sin(2 * np.pi * self.hz * t)).astype(np.float32)[None, :]
            chunk = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            chunk.sample_rate = rate
            chunk.pts, chunk.time_base = self.done, Fraction(1, rate)
            out.mux(self.stream.encode(chunk))
            self.done += count


def _audio_rate(codec: str) -> int:
    return 48000 if "opus" in codec else AUDIO_RATE


def make_corrupt_video(path, frames: int = 10, bad_frame: int = 5, size=(64, 48)) -> Path:
    """An .mkv of intra-only MJPEG whose packet ``bad_frame`` is garbage past its header.

    MJPEG (unlike H.264, which conceals damage) refuses such a packet, so decoding
    fails at a known frame.
    """
    path = Path(path)
    width, height = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuvj420p"
        video.codec_context.time_base = Fraction(1, 25)
        for i in range(frames):
            picture = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, 25)
            for packet in video.encode(picture):
                if i == bad_frame:
                    data = bytearray(bytes(packet))
                    keep = len(data) // 4
                    data[keep:] = rng.integers(0, 256, len(data) - keep, dtype=np.uint8).tobytes()
                    broken = av.Packet(bytes(data))
                    broken.pts = broken.dts = packet.pts
                    broken.time_base, broken.stream = packet.time_base, video
                    broken.is_keyframe = True
                    packet = broken
                out.mux(packet)
        out.mux(video.encode(None))
    return path


def make_audio_only(path, seconds: float = 1.0) -> Path:
    """An .m4a with a tone and no video stream."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=AUDIO_RATE)
        stream.layout = "mono"
        _Tone(stream, round(seconds * AUDIO_RATE)).mux_until(out, None)
        out.mux(stream.encode(None))
    return path


@dataclass
class VideoData:
    """What decoding a file gives back, for assertions."""

    frames: list[np.ndarray]  # RGB uint8, as stored (no rotation applied)
    pts: list[int]
    time_base: Fraction
    width: int
    height: int
    rotation: int  # counter-clockwise degrees from the display matrix, 0..359
    codec: str
    audio_codec: str | None
    audio_duration: float | None  # seconds of decoded samples
    audio_end: float | None  # end time of the last audio sample, seconds

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]


def read_video(path) -> VideoData:
    """Decode every video frame and the first audio stream of ``path``."""
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        time_base = _fraction(vstream.time_base)
        images, pts, rotation = [], [], 0
        for frame in container.decode(vstream):
            if not pts:
                rotation = round(frame.rotation) % 360
            images.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
        width, height = vstream.codec_context.width, vstream.codec_context.height
        codec = vstream.codec_context.name
    audio_codec = audio_duration = audio_end = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            astream = container.streams.audio[0]
            audio_codec = astream.codec_context.name
            samples, rate = 0, astream.codec_context.sample_rate
            for packet in container.demux(astream):
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    # Damaged audio is copied as it came; a player skips such packets, and
                    # PyAV 19 raises on some that PyAV 18 let its decoder conceal.
                    continue
                for frame in decoded:
                    samples += frame.samples
                    if frame.pts is not None:
                        start = float(frame.pts * _fraction(frame.time_base))
                        audio_end = start + frame.samples / frame.sample_rate
            audio_duration = samples / rate
    return VideoData(images, pts, time_base, width, height, rotation, codec,
                     audio_codec, audio_duration, audio_end)


def _fraction(value) -> Fraction:
    # PyAV 19 returns av.AVRational instead of Fraction.
    return Fraction(value.numerator, value.denominator)


ROOT = Path(__file__).resolve().parents[1]
RUN_LIMIT = 120  # seconds; a hung command fails the test instead of blocking CI


def vidstyle(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m vidstyle ARGS`` in ``cwd`` as a user runs it, output captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "vidstyle", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=RUN_LIMIT)
