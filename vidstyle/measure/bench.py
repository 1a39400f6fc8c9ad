"""``vidstyle bench``: how fast each engine and setting runs on this machine.

An offline point is a real :func:`vidstyle.offline.transcode` (decode, the stylize
stages, temporal smoothing, libx264 encode), so the numbers are the ones a transcode
with the same settings achieves. A warm-up transcode of the same shape runs first and is
not counted: it traces the engine's graph for that (batch, height, width). Without an
input file the source is a synthetic clip of the requested size, written once per size.
A live point runs a paced synthetic camera (or a real one) through the live scheduler,
with nothing encoded.
"""
from __future__ import annotations

import csv
import itertools
import json
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from vidstyle.errors import VidstyleError
from vidstyle.measure.stats import latency_summary, stage_summary



@dataclass(frozen=True)
class Point:
    engine: str
    batch: int
    size: tuple[int, int]
    temporal: str = "off"
    mode: str = "offline"
    precision: str = "auto"
    model: str = "auto"
    reuse: str | int = "off"  # applies with flow smoothing only

    @property
    def smoothing(self) -> str:
        """The temporal mode, with the reuse setting where one applies (flow, reuse on)."""
        return f"{self.temporal}+reuse-{self.reuse}" if self.temporal == "flow" and self.reuse != "off" else self.temporal

    @property
    def runs(self) -> str:
        """The engine, with the precision and the network when they are not the default."""
        return "/".join([self.engine] + [v for v in (self.precision, self.model) if v != "auto"])

    @property
    def label(self) -> str:
        return f"{self.mode} {self.runs} b{self.batch} {self.size[0]}x{self.size[1]} {self.smoothing}"


@dataclass
class Result:
    point: Point
    frames: int
    wall: float
    latency_ms: dict[str, float]  # p50 / p95 / p99, capture (decode) -> encoded
    stages: dict[str, dict[str, float]]  # name -> ms per frame, share of the busiest total
    queues: dict[str, dict[str, float]]  # name of the stage it feeds -> mean, peak, capacity
    cpu_cores_busy: float  # process CPU seconds per wall second of the whole transcode() call
    dropped: int = 0  # frames dropped (live mode; offline never drops)
    gpu: dict | None = None
    macs_per_frame: float | None = None
    efficiency: float | None = None  # achieved FLOP/s / measured matmul peak
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


def parse_list(text: str, parse, option: str) -> list:
    """'1,2,4' -> [1, 2, 4] with ``parse`` per item; a one-line error naming ``option``."""
    try:
        values = [parse(v.strip()) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise VidstyleError(f"{option}: {exc}") from None
    if not values:
        raise VidstyleError(f"{option} is empty")
    return values


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a positive whole number")
    return int(text)


def wxh(text: str) -> tuple[int, int]:
    from vidstyle.processing.geometry import parse_size

    size = parse_size(text)
    if not isinstance(size, tuple):
        raise ValueError(f"give sizes as WxH, e.g. 640x360, not {text!r}")
    return size


def synthetic_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> Path:
    """``frames`` of :func:`vidstyle.io.paced.moving_pictures` as an H.264 clip."""
    import av

    from vidstyle.io.paced import moving_pictures

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for image in itertools.islice(moving_pictures(width, height)(), frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


class _GpuSampler:
    """Mean GPU utilisation and peak memory while a point runs, where NVML is present."""

    def __init__(self):
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._handle = None
        try:
            import pynvml  # nvidia-ml-py; optional

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # noqa: BLE001 - no NVML, no GPU: report nothing rather than fail
            self._handle = None
        self._thread = threading.Thread(target=self._run, name="vidstyle-gpu-sampler", daemon=True)

    def __enter__(self):
        if self._handle is not None:
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.2):
            util = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            self._samples.append((util.gpu, memory.used / 2**20))

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def summary(self) -> dict | None:
        if not self._samples:
            return None
        return {"util_percent": float(np.mean([s[0] for s in self._samples])),
                "memory_mb_peak": float(max(s[1] for s in self._samples))}


def _macs(style_model: str, geom) -> float | None:
    try:
        from vidstyle.measure.flops import multiply_adds
        from vidstyle.models import pretrained

        return float(multiply_adds(pretrained(style_model), geom.net_h, geom.net_w))
    except Exception:  # noqa: BLE001 - a model the counter does not know: leave efficiency out
        return None


def run_live_point(point: Point, style: str, frames: int, rate: int, warmup: int,
                   peak: float | None = None, max_age: float = 0.25, camera: str | None = None) -> Result:
    """A camera (or a paced synthetic one at ``rate``) through the live scheduler; nothing is encoded.
    With a real camera, ``point.size`` is the processing size and frames are resized to it."""
    from vidstyle import models
    from vidstyle.io.camera import CameraSource, camera_format
    from vidstyle.io.paced import PacedSource, moving_pictures
    from vidstyle.pipeline.scheduler import run_live
    from vidstyle.pipeline.stylizer import Stylizer
    from vidstyle.processing import geometry, styles, temporal

    parsed = styles.parse(style)
    stylizer = Stylizer(parsed, engine_name=point.engine, precision=point.precision, model=point.model)
    if camera is not None:  # the camera's own size, processed at point.size
        width, height, _ = camera_format(camera)
        geom = geometry.plan(width, height, point.size)
    else:
        geom = geometry.plan(*point.size)
    pictures = moving_pictures(*point.size)
    for _ in range(max(1, warmup // max(point.batch, 1))):  # trace the engine at this shape, untimed
        stylizer.run(np.zeros((point.batch, geom.net_h, geom.net_w, 3), np.uint8))
    if camera is not None:
        source = CameraSource(camera, count=frames)
    else:
        source = PacedSource(pictures, rate, loop=True, count=frames)
    live = {}  # with reuse: keyframes on their own thread, as vidstyle live runs them
    if point.temporal == "flow" and point.reuse != "off":
        from vidstyle.pipeline.keyframes import fill_sizing, live_flow
        from vidstyle.processing.reuse import KeyframePolicy

        live = {"keyframes": KeyframePolicy(every=point.reuse if isinstance(point.reuse, int) else None,
                                            asynchronous=True), "key": geom}
        sizing, smoother, in_flight = fill_sizing(stylizer, geom, rate), live_flow(), 1
    else:
        sizing, smoother, in_flight = geom, temporal.create(point.temporal), point.batch
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with _GpuSampler() as gpu:
        stats = run_live(source, stylizer, sizing, smoother, lambda f: None, max_age=max_age,
                         in_flight=in_flight, smooth_at="output", **live)
    if camera is not None and source.gone:
        raise VidstyleError(source.gone)
    call_wall = time.perf_counter() - wall0
    macs = _macs(models.for_style(parsed.model, point.model), geom)
    return Result(
        point=point, frames=stats.delivered, wall=stats.wall, latency_ms=latency_summary(stats.latencies),
        # "capture" time is waiting for the camera's next frame, not work
        stages=stage_summary({k: v for k, v in stats.stages.items() if k != "capture"}, stats.delivered), queues={},
        cpu_cores_busy=(time.process_time() - cpu0) / call_wall,
        dropped=stats.dropped_source + stats.dropped_stale, gpu=gpu.summary(), macs_per_frame=macs,
        efficiency=(stats.fps * 2 * macs / peak) if (macs and peak) else None, latencies=stats.latencies)


def run_point(point: Point, clip: Path, style: str, warmup: int, workdir: Path,
              peak: float | None = None) -> Result:
    from vidstyle.processing import geometry, styles
    from vidstyle import models
    from vidstyle.io import probe
    from vidstyle.offline import TranscodeConfig, transcode

    info = probe(clip)
    size = None if (info.width, info.height) == point.size else point.size
    config = TranscodeConfig(input=clip, output=workdir / "out.mp4", style=style, size=size, batch=point.batch,
                             engine=point.engine, precision=point.precision, model=point.model,
                             temporal=point.temporal, reuse=point.reuse)
    if warmup:
        head = workdir / "warmup.mp4"
        _cut(clip, head, warmup)
        transcode(replace(config, input=head, output=workdir / "warm-out.mp4"))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with _GpuSampler() as gpu:
        result = transcode(config)
    call_wall = time.perf_counter() - wall0
    stats = result.stats
    geom = geometry.plan(info.width, info.height, size)
    macs = _macs(models.for_style(styles.parse(style).model, point.model), geom)
    fps = result.frames / stats.wall if stats.wall else 0.0
    return Result(
        point=point, frames=result.frames, wall=stats.wall,
        latency_ms=latency_summary(stats.latencies),
        stages=stage_summary(stats.stages, result.frames),
        queues={n: {"mean": q.mean, "peak": q.peak, "capacity": q.capacity} for n, q in stats.queues.items()},
        cpu_cores_busy=(time.process_time() - cpu0) / call_wall,
        gpu=gpu.summary(), macs_per_frame=macs,
        efficiency=(fps * 2 * macs / peak) if (macs and peak) else None,
        latencies=stats.latencies)


def _cut(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` video frames of ``src`` as a new clip (for warm-up)."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=vin.average_rate or Fraction(30))
        stream.width, stream.height, stream.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for frame in itertools.islice(inp.decode(vin), frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def sweep(points: list[Point], source: Path | None, style: str = "7", frames: int = 60, warmup: int = 8,
          peak: float | None = None, on_result: Callable[[Result], None] | None = None,
          rate: int = 30, camera: str | None = None) -> list[Result]:
    """Run every point; a synthetic clip of each size stands in when ``source`` is None."""
    results = []
    with tempfile.TemporaryDirectory(prefix="vidstyle-bench-") as tmp:
        workdir = Path(tmp)
        clips: dict[tuple[int, int], Path] = {}
        for point in points:
            if point.mode == "live":
                if source is not None:
                    raise VidstyleError("bench --mode live runs on a paced synthetic camera; drop the input file")
                result = run_live_point(point, style, frames, rate, warmup, peak, camera=camera)
                results.append(result)
                if on_result:
                    on_result(result)
                continue
            clip = source
            if clip is None:
                if point.size not in clips:
                    clips[point.size] = synthetic_clip(workdir / f"src-{point.size[0]}x{point.size[1]}.mp4",
                                                       *point.size, frames, rate)
                clip = clips[point.size]
            result = run_point(point, clip, style, warmup, workdir, peak)
            results.append(result)
            if on_result:
                on_result(result)
    return results


# -- reporting ----------------------------------------------------------------------------


def rows(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    header = ["mode", "engine", "batch", "size", "temporal", "fps", "dropped", "p50 ms", "p95 ms", "p99 ms",
              "engine ms/f", "stage shares", "queue mean", "cores busy", "efficiency"]
    body = []
    for r in results:
        p = r.point
        shares = " ".join(f"{n}:{s['share']:.0%}" for n, s in r.stages.items() if s["share"] >= 0.01)
        queues = " ".join(f"{n}:{q['mean']:.1f}" for n, q in r.queues.items() if q["mean"] >= 0.05)
        dropped = f"{r.dropped / (r.frames + r.dropped):.0%}" if p.mode == "live" and r.frames + r.dropped else "-"
        body.append([p.mode, p.runs, str(p.batch), f"{p.size[0]}x{p.size[1]}", p.smoothing, f"{r.fps:.2f}", dropped,
                     *(f"{r.latency_ms[k]:.0f}" for k in ("p50", "p95", "p99")),
                     f"{r.stages.get('engine', {}).get('ms_per_frame', 0):.0f}", shares, queues,
                     f"{r.cpu_cores_busy:.2f}", "-" if r.efficiency is None else f"{r.efficiency:.1%}"])
    return header, body


def table(results: list[Result]) -> str:
    header, body = rows(results)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(b) for b in body])


def as_dict(result: Result) -> dict:
    d = asdict(result)
    d["fps"] = result.fps
    d["point"]["size"] = f"{result.point.size[0]}x{result.point.size[1]}"
    return d


def write_json(path: Path, results: list[Result], system: dict, extra: dict) -> Path:
    path.write_text(json.dumps({"system": system, **extra, "points": [as_dict(r) for r in results]}, indent=1))
    return path


def write_csv(path: Path, results: list[Result]) -> Path:
    header, body = rows(results)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *body])
    return path


def plot(folder: Path, results: list[Result]) -> list[Path]:
    """FPS against batch (a line per engine and size), and the latency distribution per point."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise VidstyleError("--plot needs matplotlib: pip install 'vidstyle[bench]'") from None
    folder.mkdir(parents=True, exist_ok=True)

    def save(fig, ax, xlabel: str, ylabel: str, name: str) -> Path:
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / name)
        plt.close(fig)
        return folder / name

    line = lambda r: (r.point.mode, r.point.runs, r.point.size, r.point.temporal)  # noqa: E731
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for key, group in itertools.groupby(sorted(results, key=lambda r: (line(r), r.point.batch)), key=line):
        group = list(group)
        ax.plot([r.point.batch for r in group], [r.fps for r in group], marker="o",
                label=f"{key[0]} {key[1]} {key[2][0]}x{key[2][1]} temporal {key[3]}")
    fps_path = save(fig, ax, "batch", "frames/s (end to end)", "bench-fps.png")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for r in results:
        data = np.sort(np.asarray(r.latencies) * 1000)
        if len(data):
            ax.plot(data, np.linspace(0, 1, len(data)), label=r.point.label)
    latency_path = save(fig, ax, "latency, capture to output (ms)", "share of frames", "bench-latency.png")
    return [fps_path, latency_path]
