"""Test videos made in code, and a reader that returns what a player would see.

Nothing is downloaded: every clip is drawn with numpy and encoded with PyAV, so a
test states exactly what went in (frame content, timestamps, audio length, rotation)
and can assert on what came out.
"""
from __future__ import annotations

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
    audio: bool = True,
    vfr: bool = False,
    rotation: int | None = None,
    codec: str | None = None,
    audio_codec: str | None = None,
    pix_fmt: str = "yuv420p",
) -> Path:
    """Write a clip of moving shapes (and a sine tone as long as the video).

    ``size`` is (width, height) as stored; ``rotation`` is the counter-clockwise
    display rotation written to the container (e.g. 90 for a phone held upright).
    ``codec``/``audio_codec`` default by container: VP9 + Opus for .webm, else
    H.264 + AAC. Odd sizes need ``pix_fmt="yuv444p"``. ``frames=0`` writes a
    valid file whose video stream holds no frames.
    """
    path = Path(path)
    default_video, default_audio = _default_codecs(path)
    width, height = size
    pts_list, time_base, end = frame_times(frames, fps, vfr)
    duration = float(end * time_base)

    with av.open(str(path), "w") as out:
        video = out.add_stream(codec or default_video, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        # One thread keeps the encoded bytes identical from run to run.
        video.codec_context.thread_count = 1
        tone = None
        if audio:
            tone = out.add_stream(audio_codec or default_audio, rate=_audio_rate(audio_codec or default_audio))
            tone.layout = "mono"
        if frames == 0:
            out.start_encoding()
        samples_total = round(duration * tone.rate) if tone else 0
        samples_done = 0
        for i, pts in enumerate(pts_list):
            # Interleave: audio that starts before this frame goes in first.
            while tone and samples_done < samples_total and samples_done / tone.rate < float(pts * time_base):
                samples_done = _mux_tone(out, tone, samples_done, samples_total)
            picture = av.VideoFrame.from_ndarray(draw_frame(i, width, height), format="rgb24")
            picture.pts, picture.time_base = pts, time_base
            out.mux(video.encode(picture))
        if frames:
            out.mux(video.encode(None))
        while tone and samples_done < samples_total:
            samples_done = _mux_tone(out, tone, samples_done, samples_total)
        if tone and frames:
            out.mux(tone.encode(None))
    return path


def _audio_rate(codec: str) -> int:
    return 48000 if "opus" in codec else AUDIO_RATE


def _mux_tone(out, stream, start: int, total: int) -> int:
    count = min(1024, total - start)
    t = (np.arange(start, start + count) / stream.rate).astype(np.float32)
    samples = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None, :]
    chunk = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
    chunk.sample_rate = stream.rate
    chunk.pts, chunk.time_base = start, Fraction(1, stream.rate)
    out.mux(stream.encode(chunk))
    return start + count


def make_audio_only(path, seconds: float = 1.0) -> Path:
    """An .m4a with a tone and no video stream."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as out:
        tone = out.add_stream("aac", rate=AUDIO_RATE)
        tone.layout = "mono"
        total, done = round(seconds * AUDIO_RATE), 0
        while done < total:
            done = _mux_tone(out, tone, done, total)
        out.mux(tone.encode(None))
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
            for frame in container.decode(astream):
                samples += frame.samples
                if frame.pts is not None:
                    audio_end = float(frame.pts * _fraction(frame.time_base)) + frame.samples / frame.sample_rate
            audio_duration = samples / rate
    return VideoData(images, pts, time_base, width, height, rotation, codec, audio_codec, audio_duration, audio_end)


def _fraction(value) -> Fraction:
    # PyAV 19 returns av.AVRational instead of Fraction.
    return Fraction(value.numerator, value.denominator)
