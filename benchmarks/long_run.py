"""Long runs: does memory stay flat over a 10-minute live stream and a 20,000-frame transcode?

    .venv/bin/python benchmarks/long_run.py                          # both, full length (~25 min on 2 cores)
    .venv/bin/python benchmarks/long_run.py --part live --live-seconds 60
    .venv/bin/python benchmarks/long_run.py --part transcode --frames 2000 --trace

live: the synthetic camera (vidstyle.io.paced.moving_pictures, 640x480, paced at
30 fps) through the live scheduler as `vidstyle live` runs it: the adaptive
processing size, temporal 'flow', one frame in flight; "present" converts
each frame to BGR, what a window or a virtual camera does with it.

transcode: a synthetic clip (moving_pictures at --clip-size, 30 fps, H.264
ultrafast, a mono AAC tone as long as the video, made first) through
vidstyle.offline with its defaults (temporal 'flow', batch 4, libx264
medium) at the source size unless --size is given.

The resident set (VmRSS from /proc/self/status) is sampled every --interval
seconds with the frames done so far. Reported per part: the RSS after the
warm-up (--warmup-seconds of live stream, --warmup-frames of transcode: the
engine is loaded, every shape traced, the pools and queues full), the peak
and the end after it, growth = end - after warm-up, and the slope of a
straight line fitted to the samples after the warm-up, in MB per 1000 frames;
"growth (medians)" compares the medians of the first and last ten samples
after the warm-up instead of single samples.
PASS when growth < 50 MB. --trace adds tracemalloc's top sites of
Python allocation growth over the same span (slower). Results go to
benchmarks/results/long-run-*.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.common import REPO, save_results, system_block, table  # noqa: E402

LIMIT_MB = 50.0
CAMERA = (640, 480, 30.0)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("both", "live", "transcode"), default="both")
    p.add_argument("--live-seconds", type=float, default=600.0, help="length of the live stream (default 600)")
    p.add_argument("--frames", type=int, default=20000, help="frames of the transcode (default 20000)")
    p.add_argument("--clip-size", default="160x120", help="WxH of the synthetic clip (default 160x120)")
    p.add_argument("--size", help="transcode processing size (default: the source size)")
    p.add_argument("--style", default="7")
    p.add_argument("--warmup-seconds", type=float, default=30.0, help="live: seconds before the baseline")
    p.add_argument("--warmup-frames", type=int, default=1000, help="transcode: frames before the baseline")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between RSS samples")
    p.add_argument("--trace", action="store_true", help="tracemalloc: where Python allocations grew")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args(argv)


def memory_mb() -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (the kernel's resident peak) of this process, MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


class Sampler:
    """(seconds, frames done, RSS MB) every ``interval`` seconds on its own thread."""

    def __init__(self, frames, interval: float):
        self.frames, self.interval = frames, interval
        self.samples: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="long-run-sampler", daemon=True)
        self.start = time.monotonic()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.start, self.frames(), memory_mb()["VmRSS"]))

    def __enter__(self) -> "Sampler":
        self.start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


class Tracer:
    """tracemalloc snapshots at the warm-up mark and at the end (--trace)."""

    def __init__(self, enabled: bool):
        self.enabled, self.first, self.top = enabled, None, []
        if enabled:
            import tracemalloc

            tracemalloc.start(8)

    def mark(self) -> None:
        if self.enabled and self.first is None:
            import tracemalloc

            self.first = tracemalloc.take_snapshot()

    def finish(self) -> list[str]:
        if not (self.enabled and self.first):
            return []
        import tracemalloc

        stats = tracemalloc.take_snapshot().compare_to(self.first, "lineno")
        tracemalloc.stop()
        self.top = [str(s) for s in stats[:15]]
        return self.top


def summary(name: str, samples: list[tuple[float, int, float]], after_warmup) -> dict:
    """Figures over the samples from the first one past the warm-up mark on."""
    start = next((i for i, s in enumerate(samples) if after_warmup(s)), len(samples) - 1)
    rest = samples[start:]
    seconds, frames, rss = (np.array(c, dtype=float) for c in zip(*rest))
    slope = (float(np.polyfit(frames, rss, 1)[0] * 1000)
             if len(rest) > 2 and np.ptp(frames) > 0 else float("nan"))
    growth = float(rss[-1] - rss[0])
    # The allocator's arenas make single samples swing by tens of MB on a busy transcode;
    # medians of the first and last ten samples after the warm-up say the same without the swing.
    window = max(1, min(10, len(rss) // 4))
    growth_median = float(np.median(rss[-window:]) - np.median(rss[:window]))
    return {"part": name, "frames": int(samples[-1][1]), "seconds": float(samples[-1][0]),
            "warm_up_frames": int(frames[0]), "warm_up_seconds": float(seconds[0]),
            "rss_first_mb": float(samples[0][2]), "rss_after_warm_up_mb": float(rss[0]),
            "rss_peak_mb": float(rss.max()), "rss_end_mb": float(rss[-1]), "growth_mb": growth,
            "growth_median_mb": growth_median, "median_window_samples": window,
            "slope_mb_per_1000_frames": slope, "limit_mb": LIMIT_MB,
            "verdict": "PASS" if growth < LIMIT_MB else "FAIL"}


def make_clip(path: Path, frames: int, width: int, height: int, fps: int = 30) -> Path:
    """moving_pictures as H.264 (ultrafast) with a mono AAC tone of the same length."""
    import av

    from vidstyle.io.paced import moving_pictures

    rate = 44100
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, fps)
        video.options = {"preset": "ultrafast", "crf": "23"}
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "mono"
        total, done = round(frames / fps * rate), 0
        pictures = moving_pictures(width, height)()
        for i in range(frames):
            while done < total and done / rate < i / fps:  # interleave: audio up to this frame first
                t = np.arange(done, min(done + 1024, total)) / rate
                chunk = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                                   format="flt", layout="mono")
                chunk.sample_rate, chunk.pts, chunk.time_base = rate, done, Fraction(1, rate)
                out.mux(audio.encode(chunk))
                done += len(t)
            picture = av.VideoFrame.from_ndarray(next(pictures), format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def run_transcode(args) -> dict:
    from vidstyle.processing import geometry
    from vidstyle.measure.bench import wxh
    from vidstyle.offline import TranscodeConfig, transcode

    width, height = wxh(args.clip_size)
    with tempfile.TemporaryDirectory(prefix="vidstyle-long-run-") as tmp:
        t0 = time.perf_counter()
        clip = make_clip(Path(tmp) / "clip.mp4", args.frames, width, height)
        made = time.perf_counter() - t0
        print(f"transcode: made a {width}x{height} {args.frames}-frame clip with audio in {made:.0f} s "
              f"({clip.stat().st_size / 1e6:.1f} MB)", flush=True)
        done = [0]
        tracer = Tracer(args.trace)

        def progress(frames: int, total) -> None:
            done[0] = frames
            if frames == args.warmup_frames:
                tracer.mark()

        config = TranscodeConfig(clip, Path(tmp) / "out.mp4", style=args.style,
                                 size=geometry.parse_size(args.size) if args.size else None)
        with Sampler(lambda: done[0], args.interval) as sampler:
            result = transcode(config, progress=progress)
        figures = summary("transcode", sampler.samples, lambda s: s[1] >= args.warmup_frames)
        figures.update(clip=f"{width}x{height}", processing=args.size or f"{width}x{height}",
                       fps=result.fps, written=result.frames, clip_seconds=made, trace=tracer.finish())
        return figures | {"samples": sampler.samples}


def run_live(args) -> dict:
    import cv2

    from vidstyle.io.paced import PacedSource, moving_pictures
    from vidstyle.pipeline.scheduler import run_live
    from vidstyle.pipeline.sizing import for_camera
    from vidstyle.pipeline.stylizer import Stylizer
    from vidstyle.processing import styles, temporal

    width, height, rate = CAMERA
    stylizer = Stylizer(styles.parse(args.style))
    sizing = for_camera(stylizer.run, width, height, rate)  # the adaptive ladder, as `vidstyle live` without --size
    source = PacedSource(moving_pictures(width, height), rate, loop=True, count=int(args.live_seconds * rate))
    shown = [0]
    tracer = Tracer(args.trace)
    marked = time.monotonic() + args.warmup_seconds

    def present(frame) -> None:
        cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)
        shown[0] += 1
        if time.monotonic() >= marked:
            tracer.mark()

    print(f"live: {width}x{height} at {rate:g} fps for {args.live_seconds:g} s, adaptive size, temporal flow",
          flush=True)
    with Sampler(lambda: shown[0], args.interval) as sampler:
        stats = run_live(source, stylizer, sizing, temporal.create("flow"), present)
    figures = summary("live", sampler.samples, lambda s: s[0] >= args.warmup_seconds)
    g = sizing.current
    figures.update(camera=f"{width}x{height}@{rate:g}", fps=stats.fps, drop_rate=stats.drop_rate,
                   processing=f"{g.proc_w}x{g.proc_h}", size_changes=len(getattr(sizing, "changes", [])),
                   trace=tracer.finish())
    return figures | {"samples": sampler.samples}


def main(argv=None) -> int:
    args = parse_args(argv)
    parts = [p for p in ("transcode", "live") if args.part in (p, "both")]
    results = []
    for part in parts:
        figures = run_transcode(args) if part == "transcode" else run_live(args)
        results.append(figures)
        print(f"{part}: {figures['frames']} frames in {figures['seconds']:.0f} s ({figures['fps']:.1f} fps), "
              f"processing {figures['processing']}: RSS {figures['rss_after_warm_up_mb']:.0f} MB after the "
              f"warm-up -> {figures['rss_end_mb']:.0f} MB at the end, growth {figures['growth_mb']:+.1f} MB: "
              f"{figures['verdict']}", flush=True)
        for line in figures["trace"]:
            print(f"  {line}")
    rows = [[r["part"], r["frames"], f"{r['seconds']:.0f}", r["processing"], r["rss_first_mb"],
             r["rss_after_warm_up_mb"], r["rss_peak_mb"], r["rss_end_mb"], f"{r['growth_mb']:+.1f}",
             f"{r['growth_median_mb']:+.1f}", f"{r['slope_mb_per_1000_frames']:+.3f}", r["verdict"]]
            for r in results]
    print(f"\nResident set (MB); PASS when growth after the warm-up < {LIMIT_MB:g} MB:")
    print(table(rows, ["part", "frames", "seconds", "processing", "first", "after warm-up", "peak", "end",
                       "growth", "growth (medians)", "MB/1000 frames", "verdict"]))
    print(f"kernel peak (VmHWM) over the whole process: {memory_mb()['VmHWM']:.0f} MB")
    path = save_results(args.out, "long-run", {"command": sys.argv, "system": system_block(), "limit_mb": LIMIT_MB,
                                               "vm_hwm_mb": memory_mb()["VmHWM"], "parts": results})
    print(f"wrote {path}")
    return 0 if all(r["verdict"] == "PASS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
