"""Internal scale and guided upsampling: how far from the full-resolution stylization, and how fast.

    .venv/bin/python benchmarks/internal_scale.py [--frames 3] [--styles 0,7,19]

Real frames (benchmarks/clips.py: cup, bikes, carphone at 640x480). The reference
is the float32 tf engine's stylization of each frame at 640x480. For each internal
scale S the network runs at S x 640x480 (sides rounded to multiples of 4) and its
output is brought back to 640x480 by a plain bilinear resize or by guided
upsampling (vidstyle.processing.guided, the frame as the guide) in several settings. MAD
(mean |difference| on [0, 1] RGB) and SSIM against the reference, per clip, style
and method, then the mean over them. The CPU levers' quality bound: MAD <= 0.02 and
SSIM >= 0.92.

"identity" rows: the same upsampling applied to the frame's own downscale,
against the frame (what guided upsampling can recover when the low-resolution
picture is a faithful small copy; a stylization at a smaller size is not one).

"live" rows: vidstyle live stylizes at a small processing size (the adaptive
ladder; 320x240 and 160x120 here) and grows the result to the camera's 640x480,
then compared with the full-size stylization the same way.

--live-seconds N: the live loop itself (paced synthetic 640x480 camera at 30 fps,
adaptive size, flow), the result grown by the plain resize or guided upsampling,
interleaved over --live-rounds: delivered fps, drops, latency.

Timing: milliseconds per 640x480 frame for each method, 320x240 -> 640x480 and
160x120 -> 640x480 (median and minimum of repeated runs, this process, shared
machine). Results: benchmarks/results/internal-scale-*.json.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import REPO, save_results, system_block, table  # noqa: E402

SIZE = (640, 480)
BOUND_MAD, BOUND_SSIM = 0.02, 0.92
# name -> upsample(low, guide) ; "plain" is the bilinear resize every other method is compared with
METHODS = {
    "plain": None,
    "guided gray r1 e1e-3 (default)": dict(radius=1, eps=1e-3, guide_mode="gray"),
    "guided gray r1 e1e-4": dict(radius=1, eps=1e-4, guide_mode="gray"),
    "guided gray r2 e1e-2": dict(radius=2, eps=1e-2, guide_mode="gray"),
    "guided gray r1 e1e-3 no residual": dict(radius=1, eps=1e-3, guide_mode="gray", residual=False),
    "guided color r1 e1e-3": dict(radius=1, eps=1e-3, guide_mode="color"),
}


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM (Wang et al. 2004) on [0, 1]: 11x11 Gaussian window, sigma 1.5, averaged over
    pixels then channels. vidstyle.measure.metrics.ssim when it is there, else this same definition."""
    try:
        from vidstyle.measure.metrics import ssim

        return ssim(a, b)
    except ImportError:
        pass
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    values = []
    for c in range(a.shape[-1]):
        x, y = np.ascontiguousarray(a[..., c], np.float64), np.ascontiguousarray(b[..., c], np.float64)
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        values.append((((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean())
    return float(np.mean(values))


def compare(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    a, b = out.astype(np.float32) / 255, ref.astype(np.float32) / 255
    return float(np.abs(a - b).mean()), _ssim(a, b)


def upsample(method, low: np.ndarray, guide: np.ndarray) -> np.ndarray:
    from vidstyle.processing import guided

    h, w = guide.shape[:2]
    if method is None:
        return guided.plain(low, w, h)
    return guided.upsample(low, guide, **method)


def timing(low: np.ndarray, guide: np.ndarray, repeats: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, method in METHODS.items():
        if upsample(method, low, guide) is None:
            continue
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            upsample(method, low, guide)
            times.append((time.perf_counter() - t0) * 1e3)
        out[name] = {"median_ms": float(np.median(times)), "min_ms": float(np.min(times))}
    return out


def live_run(grow: str, seconds: float) -> dict:
    """vidstyle live's loop on the paced synthetic 640x480 camera at 30 fps (adaptive size,
    flow smoothing at the processing size), the result grown to 640x480 by ``grow``."""

    from vidstyle.frame import Frame
    from vidstyle.io.paced import PacedSource, moving_pictures
    from vidstyle.measure.stats import latency_summary
    from vidstyle.pipeline.runner import Stage
    from vidstyle.pipeline.scheduler import LiveScheduler
    from vidstyle.pipeline.sizing import for_camera
    from vidstyle.pipeline.stages import stylize_stages
    from vidstyle.pipeline.stylizer import Stylizer
    from vidstyle.processing import geometry, guided, styles, temporal

    stylizer = Stylizer(styles.parse("7"))
    sizing = for_camera(stylizer.run, *SIZE, 30.0)
    smoother = temporal.create("flow")
    source = PacedSource(moving_pictures(*SIZE), rate=30, count=round(seconds * 30))
    scheduler = LiveScheduler(source, sizing=sizing)
    stages = stylize_stages(stylizer, sizing, 1, smoother, smooth_at="processing", due=scheduler.due,
                            gate=scheduler.gate)

    def smooth(work):  # the "temporal" stage of stylize_stages, with the chosen way up
        f = work.frame
        out = smoother.blend(f.index, work.out, work.motion)
        out = guided.upsample(out, f.image) if grow == "guided" else geometry.grow(out, work.geom)
        yield Frame(f.index, f.pts, f.time_base, stylizer.touch_up(np.ascontiguousarray(out), f.image), f.captured)

    stages = [Stage("temporal", smooth) if st.name == "temporal" else st for st in stages]
    stats = scheduler.run(stages, lambda frame: None)
    return {"grow": grow, "fps": stats.fps, "drop_rate": stats.drop_rate, "latency_ms": latency_summary(stats.latencies),
            "processing": f"{sizing.current.proc_w}x{sizing.current.proc_h}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=3, help="frames per clip (spread over the clip; default 3)")
    p.add_argument("--styles", default="0,7,19")
    p.add_argument("--scales", default="0.75,0.5")
    p.add_argument("--clips", default="cup,bikes,carphone")
    p.add_argument("--repeats", type=int, default=30, help="timing repeats per method (default 30)")
    p.add_argument("--live-seconds", type=float, default=0.0,
                   help="also run the live loop this long per way up (plain, guided), interleaved (default 0: skip)")
    p.add_argument("--live-rounds", type=int, default=3)
    args = p.parse_args(argv)
    if args.live_seconds > 0:
        runs = [live_run(grow, args.live_seconds) for _ in range(args.live_rounds) for grow in ("plain", "guided")]
        print(table([[r["grow"], r["processing"], round(r["fps"], 1), f"{r['drop_rate']:.0%}",
                      round(r["latency_ms"]["p50"]), round(r["latency_ms"]["p95"])] for r in runs],
                    ["live grow", "processing", "fps", "dropped", "p50 ms", "p95 ms"]), flush=True)

    from benchmarks.clips import real_frames
    from vidstyle import engines
    from vidstyle.processing import geometry, styles

    engine = engines.create("tf", "multistyle26")
    style_ids = [int(s) for s in args.styles.split(",")]
    scales = [float(s) for s in args.scales.split(",")]
    clips = args.clips.split(",")
    frames = {}
    for clip in clips:
        every = {"cup": 70, "bikes": 40, "carphone": 120}.get(clip, 30)
        frames[clip] = real_frames(clip, every=every, limit=args.frames, size=SIZE)
    rows: list[dict] = []

    def record(kind, clip, style, scale, name, outs, refs):
        values = [compare(o, r) for o, r in zip(outs, refs)]
        rows.append({"kind": kind, "clip": clip, "style": style, "scale": scale, "method": name,
                     "mad": float(np.mean([v[0] for v in values])), "ssim": float(np.mean([v[1] for v in values]))})

    # identity: the frame's own downscale, upsampled, against the frame
    for clip, batch in frames.items():
        for scale in scales:
            iw, ih = geometry.internal_size(*SIZE, scale)
            lows = [cv2.resize(f, (iw, ih), interpolation=cv2.INTER_AREA) for f in batch]
            for name, method in METHODS.items():
                outs = [upsample(method, lo, f) for lo, f in zip(lows, batch)]
                if outs[0] is not None:
                    record("identity", clip, None, scale, name, outs, batch)

    for style in style_ids:
        weights = styles.parse(str(style)).weights
        for clip, batch in frames.items():
            t0 = time.perf_counter()
            refs = [engine.run(f[None], weights)[0] for f in batch]
            again = [engine.run(f[None], weights)[0] for f in batch]
            record("internal", clip, style, 1.0, "none (S=1, a second run)", again, refs)
            for scale in scales:
                iw, ih = geometry.internal_size(*SIZE, scale)
                lows = [engine.run(cv2.resize(f, (iw, ih), interpolation=cv2.INTER_AREA)[None], weights)[0]
                        for f in batch]
                for name, method in METHODS.items():
                    outs = [upsample(method, lo, f) for lo, f in zip(lows, batch)]
                    if outs[0] is not None:
                        record("internal", clip, style, scale, name, outs, refs)
            for side in (320, 160):  # live: processing size on the ladder, grown to the camera size
                g = geometry.plan(*SIZE, side)
                lows = [geometry.crop(engine.run(geometry.prepare(f, g)[None], weights)[0], g) for f in batch]
                for name in ("plain", "guided gray r1 e1e-3 (default)"):
                    outs = [upsample(METHODS[name], lo, f) for lo, f in zip(lows, batch)]
                    record("live", clip, style, f"{g.proc_w}x{g.proc_h}", name, outs, refs)
            print(f"style {style} {clip}: {time.perf_counter() - t0:.1f} s", flush=True)

    # Means over clips and styles per (kind, scale, method)
    summary = []
    keys = []
    for r in rows:
        k = (r["kind"], r["scale"], r["method"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        sel = [r for r in rows if (r["kind"], r["scale"], r["method"]) == k]
        mads, ssims = [r["mad"] for r in sel], [r["ssim"] for r in sel]
        summary.append({"kind": k[0], "scale": k[1], "method": k[2], "mad_mean": float(np.mean(mads)),
                        "mad_max": float(np.max(mads)), "ssim_mean": float(np.mean(ssims)),
                        "ssim_min": float(np.min(ssims)),
                        "within_bound": bool(max(mads) <= BOUND_MAD and min(ssims) >= BOUND_SSIM)})
    print()
    print(table([[s["kind"], str(s["scale"]), s["method"], f"{s['mad_mean']:.4f}", f"{s['mad_max']:.4f}",
                  f"{s['ssim_mean']:.3f}", f"{s['ssim_min']:.3f}", "yes" if s["within_bound"] else "no"]
                 for s in summary],
                ["kind", "S / size", "method", "MAD mean", "MAD max", "SSIM mean", "SSIM min", "in bound"]))

    guide = frames[clips[0]][0]
    times = {}
    for lw, lh in ((320, 240), (160, 120)):
        low = cv2.resize(guide, (lw, lh), interpolation=cv2.INTER_AREA)
        times[f"{lw}x{lh}->640x480"] = timing(low, guide, args.repeats)
    print()
    print(table([[k, name, round(v["median_ms"], 2), round(v["min_ms"], 2)] for k, t in times.items()
                 for name, v in t.items()], ["upsampling", "method", "median ms", "min ms"]))
    print(f"load average: {os.getloadavg()}")
    path = save_results(REPO / "benchmarks" / "results", "internal-scale",
                        {"system": system_block(), "args": vars(args), "bound": {"mad": BOUND_MAD, "ssim": BOUND_SSIM},
                         "summary": summary, "rows": rows, "timing": times, "load_average": os.getloadavg(),
                         "live": runs if args.live_seconds > 0 else None})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
