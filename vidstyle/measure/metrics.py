"""Flicker and fidelity of a stylized video, measured against its input (``vidstyle metrics``).

*Warping error* (Lai et al. 2018): output frame t+1 warped back onto frame t along the
optical flow of the *input* (DIS MEDIUM, full resolution, both ways), mean squared RGB
difference on [0, 1] over the pixels where the flow is trusted (Ruder et al. 2016:
consistent, not a motion boundary, inside the frame), then the mean over pairs. A pair
whose input warping error exceeds CUT_FACTOR x the clip's median is a scene cut and left
out. ``flicker_excess`` = E_warp(output) / E_warp(input). *Deviation* from a per-frame
stylization, over all pixels and over the moving ones, is what smoothing costs.
``evaluate`` grades frames in memory, ``measure`` streams files. Why these definitions:
docs/design-notes.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from vidstyle.errors import InputError

# A pixel counts as "moving" when the blurred mean RGB change from the previous
# input frame exceeds this (on [0, 1]); the blur keeps sensor noise out.
MOVING_THRESHOLD = 0.04
CUT_FACTOR = 20


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def strong_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from grey frame ``a`` to grey frame ``b`` (DIS MEDIUM, full resolution)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(a, b, None)


def _sample(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class PairMotion:
    """How input frame t maps onto frame t+1, and where that mapping is trusted."""

    map_x: np.ndarray  # float32 H x W: x + forward flow
    map_y: np.ndarray
    valid: np.ndarray  # bool H x W: consistent, not a motion boundary, inside the frame
    moving: np.ndarray  # bool H x W: the input changed between t and t+1

    @property
    def coverage(self) -> float:
        return float(self.valid.mean())


@lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def consistency_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Ruder et al. 2016: True where ``forward`` (t -> t+1) is trusted, given ``backward`` (t+1 -> t)."""
    h, w = forward.shape[:2]
    xs, ys = _grid(h, w)
    map_x, map_y = xs + forward[..., 0], ys + forward[..., 1]
    back = _sample(backward, map_x, map_y)
    fwd_sq = (forward ** 2).sum(-1)
    occluded = ((forward + back) ** 2).sum(-1) > 0.01 * (fwd_sq + (back ** 2).sum(-1)) + 0.5
    du_y, du_x = np.gradient(forward[..., 0])
    dv_y, dv_x = np.gradient(forward[..., 1])
    boundary = du_x ** 2 + du_y ** 2 + dv_x ** 2 + dv_y ** 2 > 0.01 * fwd_sq + 0.002
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    return ~occluded & ~boundary & inside


def moving_mask(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    diff = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(-1) / 255.0
    return cv2.GaussianBlur(diff, (5, 5), 0) > MOVING_THRESHOLD


def pair_motion(a: np.ndarray, b: np.ndarray) -> PairMotion:
    """Motion between consecutive RGB input frames ``a`` (t) and ``b`` (t+1)."""
    ga, gb = gray(a), gray(b)
    forward, backward = strong_flow(ga, gb), strong_flow(gb, ga)
    xs, ys = _grid(*ga.shape)
    return PairMotion(xs + forward[..., 0], ys + forward[..., 1],
                      consistency_mask(forward, backward), moving_mask(a, b))


def input_motion(frames: Iterable[np.ndarray]) -> Iterator[PairMotion]:
    previous = None
    for frame in frames:
        if previous is not None:
            yield pair_motion(previous, frame)
        previous = frame


def pair_warp_error(a: np.ndarray, b: np.ndarray, motion: PairMotion) -> float:
    """Masked mean squared RGB difference between frame ``a`` and frame ``b`` warped back onto it."""
    if not motion.valid.any():
        return float("nan")
    warped = _sample(b, motion.map_x, motion.map_y).astype(np.float32)
    sq = ((a.astype(np.float32) - warped) / 255.0) ** 2
    return float(sq.sum(-1)[motion.valid].mean())


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004) of two H x W [x C] images on [0, data_range]:
    11x11 Gaussian window, sigma 1.5, C1 = (0.01 R)^2, C2 = (0.03 R)^2, the map averaged
    over the pixels and then over the channels (reflected borders)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim of differently shaped images: {a.shape} vs {b.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    chans = [a] if a.ndim == 2 else [a[..., c] for c in range(a.shape[-1])]
    other = [b] if b.ndim == 2 else [b[..., c] for c in range(b.shape[-1])]
    values = []
    for x, y in zip(chans, other):
        x, y = np.ascontiguousarray(x), np.ascontiguousarray(y)
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        values.append(m.mean())
    return float(np.mean(values))


@dataclass
class Report:
    frames: int
    warp_error: float
    input_warp_error: float
    deviation: float | None = None  # mean abs vs the reference, all pixels
    moving_deviation: float | None = None  # ... over pixels where the input changed
    coverage: float = 0.0  # share of pixels the flow was trusted at
    per_pair: list[float] = field(default_factory=list)  # output warping error, pair by pair
    input_per_pair: list[float] = field(default_factory=list)
    cuts: list[int] = field(default_factory=list)  # pairs left out as scene cuts

    @property
    def flicker_excess(self) -> float:
        if self.input_warp_error != self.input_warp_error:
            return float("nan")
        return self.warp_error / self.input_warp_error if self.input_warp_error > 0 else float("inf")

    def rows(self) -> list[tuple[str, str]]:
        rows = [("frames", str(self.frames)),
                ("warping error (output)", f"{self.warp_error:.6f}"),
                ("warping error (input)", f"{self.input_warp_error:.6f}"),
                ("flicker excess", f"{self.flicker_excess:.2f}"),
                ("flow coverage", f"{self.coverage:.1%}"),
                ("scene cuts left out", ", ".join(f"frame {i + 1}" for i in self.cuts) or "none")]
        if self.deviation is not None:
            moving = "n/a (nothing moved)" if self.moving_deviation != self.moving_deviation \
                else f"{self.moving_deviation:.4f}"
            rows += [("deviation from per-frame (all pixels)", f"{self.deviation:.4f}"),
                     ("deviation from per-frame (moving pixels)", moving)]
        return rows

    def as_dict(self) -> dict:
        return {"frames": self.frames, "warp_error": self.warp_error,
                "input_warp_error": self.input_warp_error, "flicker_excess": self.flicker_excess,
                "deviation": self.deviation, "moving_deviation": self.moving_deviation,
                "coverage": self.coverage, "cuts": self.cuts, "per_pair": self.per_pair,
                "input_per_pair": self.input_per_pair}


def _nanmean(values: list[float], skip: list[int]) -> float:
    kept = [v for i, v in enumerate(values) if v == v and i not in skip]
    return float(np.mean(kept)) if kept else float("nan")


def scene_cuts(input_per_pair: list[float]) -> list[int]:
    """Pairs whose input warping error dwarfs the clip's typical pair."""
    known = [v for v in input_per_pair if v == v]
    if len(known) < 3:
        return []
    typical = float(np.median(known))
    return [i for i, v in enumerate(input_per_pair) if v == v and v > CUT_FACTOR * max(typical, 1e-6)]


def evaluate(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
             reference: Iterable[np.ndarray] | None = None,
             motion: Iterable[PairMotion] | None = None) -> Report:
    """Score ``outputs`` (a stylization of ``inputs``), streaming frame by frame.

    ``motion`` may carry precomputed :func:`input_motion` of ``inputs`` so one
    input can grade many outputs; ``reference`` is plain per-frame stylization.
    """
    inputs, outputs = iter(inputs), iter(outputs)
    reference = iter(reference) if reference is not None else None
    motion = iter(motion) if motion is not None else None
    out_err: list[float] = []
    in_err: list[float] = []
    coverage: list[float] = []
    dev_sum = dev_n = mov_sum = mov_n = 0.0
    prev_in = prev_out = None
    frames = 0
    for frame_in, frame_out in zip(inputs, outputs, strict=True):
        if frame_in.shape != frame_out.shape:
            raise ValueError(f"frame {frames}: output is {frame_out.shape[1]}x{frame_out.shape[0]}, "
                             f"input {frame_in.shape[1]}x{frame_in.shape[0]}; they must match")
        if prev_in is not None:
            pm = next(motion, None) if motion is not None else pair_motion(prev_in, frame_in)
            if pm is None:
                raise ValueError(f"motion ends before frame {frames}: it belongs to a shorter clip")
            out_err.append(pair_warp_error(prev_out, frame_out, pm))
            in_err.append(pair_warp_error(prev_in, frame_in, pm))
            coverage.append(pm.coverage)
        if reference is not None:
            ref = next(reference, None)
            if ref is None:
                raise ValueError(f"the reference ends at frame {frames}, before the output")
            diff = np.abs(frame_out.astype(np.float32) - ref.astype(np.float32)).mean(-1) / 255.0
            dev_sum += float(diff.sum())
            dev_n += diff.size
            if prev_in is not None:
                moving = pm.moving
                mov_sum += float(diff[moving].sum())
                mov_n += int(moving.sum())
        prev_in, prev_out = frame_in, frame_out
        frames += 1
    if frames < 2:
        raise ValueError("need at least two frames to measure flicker")
    cuts = scene_cuts(in_err)
    report = Report(frames, _nanmean(out_err, cuts), _nanmean(in_err, cuts), coverage=float(np.mean(coverage)),
                    per_pair=out_err, input_per_pair=in_err, cuts=cuts)
    if reference is not None:
        report.deviation = dev_sum / dev_n
        report.moving_deviation = mov_sum / mov_n if mov_n else float("nan")
    return report


def _images(path, name: str, size: tuple[int, int], counts: dict) -> Iterator[np.ndarray]:
    """Decoded RGB frames of ``path``, cut to ``size``: the sink pads odd sizes by a pixel."""
    from vidstyle.io import FileSource

    w, h = size
    with FileSource(path) as source:
        info = source.info
        if not (0 <= info.width - w <= 1 and 0 <= info.height - h <= 1):
            raise InputError(f"{path}: {name} is {info.width}x{info.height} but the input is {w}x{h}")
        counts[name] = 0
        for frame in source.frames():
            counts[name] += 1
            yield frame.image[:h, :w]


def measure(input_path, output_path, reference_path=None, json_path=None) -> Report:
    """:func:`evaluate` on video files, streaming; ``json_path`` also gets the figures."""
    from vidstyle.io import probe

    info = probe(input_path)
    size = (info.width, info.height)
    counts: dict[str, int] = {}
    streams = [_images(input_path, "input", size, counts), _images(output_path, "output", size, counts)]
    if reference_path:
        streams.append(_images(reference_path, "reference", size, counts))
    problem = None
    try:
        try:
            report = evaluate(*streams)
        except ValueError as exc:
            problem = str(exc)
        for stream in streams:  # a longer video has frames left over
            next(stream, None)
    finally:
        for stream in streams:
            stream.close()
    if len(set(counts.values())) > 1:
        raise InputError("frame counts differ (" + ", ".join(f"{k} {v}" for k, v in counts.items())
                         + "); compare a video with its own stylization")
    if problem:
        raise InputError(problem)
    if json_path:
        import json

        Path(json_path).write_text(json.dumps(report.as_dict(), indent=1))
    return report
