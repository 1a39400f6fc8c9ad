"""Flicker against ghosting: what each temporal smoothing mode does to a stylized video.

    .venv/bin/python benchmarks/flicker.py [--clips sample,objects,pan,cut,noise] [--frames N]
        [--style 7] [--strengths 0.5,0.8] [--rounds 2] [--no-fps] [--video-clips sample,objects]
        [--out benchmarks/results/]

Per clip: stylize every frame once (the per-frame reference), measure the input's motion
once, then smooth the same stylized frames with each variant (off, ema, flow at several
strengths) and grade it with vidstyle.measure.metrics: warping error (flicker) and deviation from
the reference (ghosting, blur). Then, unless --no-fps, the end-to-end cost of each mode
through the real transcode pipeline, interleaved per round. See benchmarks/README.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import clips  # noqa: E402
from benchmarks.common import REPO, Stopwatch, median, save_results, system_block, table  # noqa: E402
from vidstyle.models.tfimport import quiet_stderr  # noqa: E402

with quiet_stderr():  # TF prints its oneDNN notice through absl, which ignores TF_CPP_MIN_LOG_LEVEL
    import tensorflow  # noqa: E402, F401
    import keras  # noqa: E402, F401
from vidstyle.processing import geometry, styles, temporal  # noqa: E402
from vidstyle.measure import metrics
from vidstyle.pipeline.stylizer import Stylizer  # noqa: E402
from vidstyle.offline import TranscodeConfig, transcode  # noqa: E402

SIZE = (640, 480)  # processing size: the clips' own, so stylization never resizes
BATCH = 4
EMA_STRENGTHS = (0.5, 0.8)
PLOT_EMA = 0.8  # the ema variant drawn in plots and videos, and timed end to end
DEFAULT_CLIPS = ("sample", "objects", "pan", "cut", "noise")
VIDEO_CLIPS = ("sample", "objects")
VIDEO_MAX_BYTES = 8_000_000


@dataclass(frozen=True)
class Variant:
    mode: str
    strength: float

    @property
    def name(self) -> str:
        return "off" if self.mode == "off" else f"{self.mode} {self.strength:g}"

    @property
    def label(self) -> str:
        if self.mode == "off":
            return "off (per-frame)"
        return self.name + (" (default)" if self.mode == "flow" and self.strength == temporal.DEFAULT_STRENGTH else "")


OFF = Variant("off", temporal.DEFAULT_STRENGTH)
EMA = Variant("ema", PLOT_EMA)
FLOW = Variant("flow", temporal.DEFAULT_STRENGTH)


def variants(flow_strengths: list[float]) -> list[Variant]:
    return [OFF, *(Variant("ema", s) for s in EMA_STRENGTHS), *(Variant("flow", s) for s in flow_strengths)]


def parse_strengths(text: str) -> list[float]:
    """'0.5,0.8' -> [0.5, 0.8, DEFAULT]: the default is always run, since the plots, the
    videos and the FPS part show it."""
    values = [temporal.DEFAULT_STRENGTH if v.strip() == "default" else float(v) for v in text.split(",") if v.strip()]
    return sorted(set(values) | {temporal.DEFAULT_STRENGTH})


def stylize_all(stylizer: Stylizer, frames: np.ndarray) -> list[np.ndarray]:
    """Plain per-frame stylization, as `--temporal off` produces it: the reference."""
    geom = geometry.plan(frames.shape[2], frames.shape[1], SIZE)
    out = []
    for i in range(0, len(frames), BATCH):
        chunk = frames[i:i + BATCH]
        nets = np.stack([geometry.prepare(f, geom) for f in chunk])
        out += [stylizer.finish(o, f, geom) for o, f in zip(stylizer.run(nets, size=BATCH), chunk)]
    return out


def timed(iterable, clock: list[float]):
    """Pass ``iterable`` through, adding the time spent producing its items to clock[0], so the
    smoother is timed alone although the grader consumes it frame by frame."""
    it = iter(iterable)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        finally:
            clock[0] += time.perf_counter() - t0
        yield item


def score(frames: np.ndarray, reference: list[np.ndarray], motion: list[metrics.PairMotion],
          variant: Variant) -> tuple[metrics.Report, float]:
    """Smooth the reference with ``variant`` and grade it; returns the report and ms/frame of
    smoothing. OpenCV gets one thread, so the time is the smoother's CPU cost, not what a
    thread pool hides on an idle machine."""
    clock = [0.0]
    smoothed = timed(temporal.smooth(frames, reference, temporal.create(variant.mode, variant.strength)), clock)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        report = metrics.evaluate(frames, smoothed, reference=reference, motion=motion)
    finally:
        cv2.setNumThreads(threads)
    return report, 1000 * clock[0] / len(frames)


def clip_table(results: dict[Variant, tuple[metrics.Report, float]]) -> str:
    rows = [[v.label, f"{r.warp_error:.5f}", r.flicker_excess, f"{r.deviation:.4f}", f"{r.moving_deviation:.4f}", ms]
            for v, (r, ms) in results.items()]
    return table(rows, ["variant", "E_warp", "flicker excess", "deviation", "moving dev.", "smooth ms/frame"])


def plot_curves(name: str, input_curve: list[float], curves: dict[str, list[float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    ax.plot(input_curve, color="0.5", lw=1.2, ls="--", label="input")
    for label, curve in curves.items():
        ax.plot(curve, lw=1.2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("frame pair (t, t+1)")
    ax.set_ylabel("warping error (log)")
    ax.set_title(f"{name}: warping error per frame pair")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _label(img: np.ndarray, text: str) -> np.ndarray:
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined: readable on any style
        cv2.putText(img, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, width, cv2.LINE_AA)
    return img


def side_by_side(frames: np.ndarray, reference: list[np.ndarray], fps, path: Path) -> Path:
    """input | per-frame | ema | flow, each at half size. The smoothers are run again here
    (milliseconds a frame) rather than keeping every variant's frames in memory."""
    h, w = frames.shape[1] // 2, frames.shape[2] // 2

    def rows():
        columns = [("input", frames), ("per-frame", reference),
                   *((v.name, temporal.smooth(frames, reference, temporal.create(v.mode, v.strength)))
                     for v in (EMA, FLOW))]
        for images in zip(*(c for _, c in columns)):
            yield np.hstack([_label(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA), name)
                             for (name, _), img in zip(columns, images)])

    for crf in (20, 24, 28, 32):  # a higher CRF only for a clip whose video would not fit the size budget
        clips.write_mp4(rows(), path, fps, crf)
        if path.stat().st_size <= VIDEO_MAX_BYTES:
            break
    return path


def print_cuts(report: metrics.Report) -> None:
    if report.cuts:
        print(f"scene cut(s) at pair(s) {', '.join(map(str, report.cuts))}: left out of every mean "
              f"(input E_warp there {max(report.input_per_pair[i] for i in report.cuts):.4f})", flush=True)


def clip_record(results: dict[Variant, tuple[metrics.Report, float]]) -> dict:
    """The JSON for one clip's variants; the input's curve is the same in every report, so it is
    stored once, by the caller."""
    record = {}
    for v, (r, ms) in results.items():
        d = r.as_dict()
        d.pop("input_per_pair")
        record[v.label] = {"mode": v.mode, "strength": v.strength, "smooth_ms_per_frame": ms, **d}
    return record


def run_clip(name: str, args, stylizer: Stylizer) -> dict:
    with Stopwatch() as sw_make:
        frames = clips.make_clip(name, args.frames)
    print(f"\n== {name}: {len(frames)} frames {frames.shape[2]}x{frames.shape[1]} "
          f"(made in {sw_make.seconds:.1f}s)", flush=True)
    with Stopwatch() as sw_style:
        reference = stylize_all(stylizer, frames)
    with Stopwatch() as sw_motion:
        motion = list(metrics.input_motion(frames))  # the slow part of grading: once per clip
    print(f"stylized in {sw_style.seconds:.1f}s ({len(frames) / sw_style.seconds:.2f} fps), "
          f"input motion in {sw_motion.seconds:.1f}s", flush=True)

    results = {v: score(frames, reference, motion, v) for v in variants(args.strengths)}
    base = results[OFF][0]
    print(f"input E_warp {base.input_warp_error:.5f}; the metric's flow is trusted on {base.coverage:.1%} of pixels")
    print(clip_table(results), flush=True)
    print_cuts(base)

    files = {"plot": str(plot_curves(name, base.input_per_pair, {v.label: results[v][0].per_pair for v in (OFF, EMA, FLOW)},
                                     args.out / f"flicker-{name}-ewarp.png"))}
    if name in args.video_clips:
        with Stopwatch() as sw_video:
            files["video"] = str(side_by_side(frames, reference, clips.rate(name),
                                              args.out / f"flicker-{name}-side-by-side.mp4"))
        print(f"side-by-side video in {sw_video.seconds:.1f}s", flush=True)
    return {"frames": len(frames), "fps": str(clips.rate(name)), "input_warp_error": base.input_warp_error,
            "input_per_pair": base.input_per_pair, "coverage": base.coverage, "cut_pairs": base.cuts,
            "seconds": {"make": sw_make.seconds, "stylize": sw_style.seconds, "input_motion": sw_motion.seconds},
            "variants": clip_record(results), "files": files}


def fps_clip(name: str, frames: int | None, tmp: Path) -> Path:
    """A file for transcode(): the sample itself when whole, else an H.264 crf 18 copy."""
    if name == "sample" and not frames:
        return clips.SAMPLE
    return clips.write_mp4(clips.make_clip(name, frames), tmp / f"{name}.mp4", clips.rate(name), crf=18)


def run_fps(clip: Path, style: str, rounds: int, tmp: Path) -> dict:
    """TranscodeResult.fps of off / ema / flow, interleaved in each round so load hits all alike;
    the order rotates from round to round so no mode always runs first."""
    modes = (OFF, EMA, FLOW)
    per_round = []
    for r in range(rounds):
        res = {"load_average_before": list(os.getloadavg())}
        print(f"round {r + 1}:", end="", flush=True)
        for v in modes[r % len(modes):] + modes[:r % len(modes)]:
            out = transcode(TranscodeConfig(input=clip, output=tmp / "out.mp4", style=style, size=SIZE, batch=BATCH,
                                            temporal=v.mode, temporal_strength=v.strength))
            res[v.label] = {"frames": out.frames, "fps": out.fps, "wall": out.stats.wall,
                            "stages": {k: {"items": s.items, "busy": s.busy} for k, s in out.stats.stages.items()}}
            print(f" {v.label} {out.fps:.2f}", end="", flush=True)
        print(flush=True)
        res["ratios"] = {f"{v.mode}/off": res[v.label]["fps"] / res[OFF.label]["fps"] for v in (EMA, FLOW)}
        per_round.append(res)
    medians = {v.label: median([r[v.label]["fps"] for r in per_round]) for v in (OFF, EMA, FLOW)}
    ratios = {k: median([r["ratios"][k] for r in per_round]) for k in per_round[0]["ratios"]}
    return {"clip": str(clip), "rounds": per_round, "median_fps": medians, "ratios": ratios}


def fps_table(fps: dict) -> str:
    rounds = fps["rounds"]
    rows = []
    for v in (OFF, EMA, FLOW):
        ratio = None if v is OFF else fps["ratios"][f"{v.mode}/off"]
        rows.append([v.label, *(r[v.label]["fps"] for r in rounds), fps["median_fps"][v.label], ratio])
    return table(rows, ["temporal mode (frames/s)", *(f"round {i + 1}" for i in range(len(rounds))), "median",
                        "vs off (median ratio)"])


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = lambda text: [n.strip() for n in text.split(",") if n.strip()]  # noqa: E731
    ap.add_argument("--clips", type=names, default=list(DEFAULT_CLIPS), help=f"from {', '.join(clips.CLIPS)}")
    ap.add_argument("--frames", type=int, help="only the first N frames of each clip")
    ap.add_argument("--style", default="7", help="a built-in style index or mix, or a picture")
    ap.add_argument("--strengths", type=parse_strengths, default=parse_strengths("0.5,0.8"),
                    help="flow strengths, comma-separated ('default' allowed); the default strength "
                         f"({temporal.DEFAULT_STRENGTH}) is always added. ema runs at {EMA_STRENGTHS}")
    ap.add_argument("--rounds", type=int, default=2, help="FPS rounds")
    ap.add_argument("--no-fps", action="store_true", help="skip the end-to-end FPS part")
    ap.add_argument("--video-clips", type=names, default=list(VIDEO_CLIPS),
                    help="clips that get a side-by-side video (empty: none)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    unknown = [n for n in args.clips if n not in clips.CLIPS]
    if unknown or not args.clips:
        ap.error(f"unknown clip(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(clips.CLIPS)}")
    if args.frames is not None and args.frames < 2:
        ap.error("--frames must be at least 2 (flicker is measured between frames)")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    system = system_block()  # before the run: its load average says how busy the machine was
    print(f"flicker: clips {', '.join(args.clips)}, style {args.style}, {SIZE[0]}x{SIZE[1]}, batch {BATCH}, "
          f"flow strengths {', '.join(f'{s:g}' for s in args.strengths)}; "
          f"load average {system['load_average'][0]:.2f}", flush=True)
    stylizer = Stylizer(styles.parse(args.style))
    with Stopwatch() as total:
        per_clip = {name: run_clip(name, args, stylizer) for name in args.clips}
        fps = None
        if not args.no_fps:
            name = "sample" if "sample" in args.clips else args.clips[0]
            tmp = Path(tempfile.mkdtemp(prefix="vidstyle-flicker-"))
            try:
                clip = fps_clip(name, args.frames, tmp)
                print(f"\n== FPS end to end: {name} ({clip.name}), {args.rounds} round(s)", flush=True)
                fps = {"clip_name": name, **run_fps(clip, args.style, args.rounds, tmp)}
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(fps_table(fps))

    payload = {"benchmark": "flicker", "command": [sys.executable, *sys.argv],
               "system": {**system, "load_average_end": list(os.getloadavg())},
               "config": {"clips": args.clips, "frames": args.frames, "style": args.style, "size": SIZE,
                          "batch": BATCH, "ema_strengths": EMA_STRENGTHS, "flow_strengths": args.strengths,
                          "default_strength": temporal.DEFAULT_STRENGTH, "rounds": None if args.no_fps else args.rounds,
                          "metrics": {"moving_threshold": metrics.MOVING_THRESHOLD}},
               "seconds": total.seconds, "clips": per_clip, "fps": fps}
    saved = save_results(args.out, "flicker", payload)
    print(f"\ntook {total.seconds / 60:.1f} min; wrote:\n  {saved}")
    for entry in per_clip.values():
        for f in entry["files"].values():
            print(f"  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
