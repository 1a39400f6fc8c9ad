"""`--cluster local` against the plain single-process transcode, and joins on real footage.

Three parts, each measured side by side in this one run:

1. **Overhead**: frames/s of the plain transcode, of the segmented path run inline
   (pre-roll + join alone) and of a local Ray runtime with one actor per worker (with
   Ray's and the actors' start-up, and without), on one synthetic clip with a keyframe
   every ``--gop`` frames, default segments (10x the pre-roll).
2. **Joins**: real clips (the sample's cup, carphone, bikes) re-encoded with a keyframe
   every 30 frames and cut into 30-frame segments (many joins), with the default
   pre-roll. Warping error of the pairs that straddle a join against elsewhere, raw and
   divided by a single-machine output at the same pairs (``join_excess``), once encoded
   losslessly (the smoothing alone) and once at the default crf 18.
3. **x264's keyframe at each join**: the lossless single-machine output of each clip
   re-encoded at crf 18 whole, whole with keyframes at the join frames, and in
   segment-sized pieces with and without the landing zone (more bits for the last
   frames before a join, as segments are encoded); the frame-to-frame jump at the
   joins beyond the source's own.

    .venv/bin/python benchmarks/cluster.py [--frames 3600] [--size 160x120] [--workers 2] [--skip-overhead]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import av  # noqa: E402
import numpy as np  # noqa: E402
from test_cluster import gop_video  # noqa: E402  (the tests' clip maker)

from benchmarks import clips  # noqa: E402
from vidstyle.cluster.plan import default_segment_frames, plan_segments, preroll_frames  # noqa: E402
from benchmarks.join_quality import join_excess, join_quality, pair_errors  # noqa: E402
from vidstyle.cluster.run import transcode_segmented  # noqa: E402
from vidstyle.cluster.segment import landing_options  # noqa: E402
from vidstyle.io.sink import EncodeSettings  # noqa: E402
from vidstyle.offline import TranscodeConfig, transcode  # noqa: E402

JOIN_GOP = 30
PREROLL = preroll_frames("flow", 0.95)


def overhead(tmp: Path, frames: int, size: tuple[int, int], gop: int, workers: int) -> dict:
    clip = gop_video(tmp / "in.mp4", frames=frames, size=size, gop=gop)
    segment_frames = default_segment_frames(PREROLL)
    rows = {}
    t = time.perf_counter()
    transcode(TranscodeConfig(input=clip, output=tmp / "single.mp4"))
    rows["single"] = time.perf_counter() - t

    t = time.perf_counter()
    result = transcode_segmented(TranscodeConfig(input=clip, output=tmp / "inline.mp4"))
    rows["segmented inline"] = time.perf_counter() - t

    import ray

    from vidstyle.cluster.ray_exec import RayExecutor

    t0 = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    executor = RayExecutor(workers)
    config = TranscodeConfig(input=clip, output=tmp / "ray.mp4")
    executor._start(config)
    ray.get([a.__ray_ready__.remote() for a in executor.actors])  # actors up, engines loaded
    t1 = time.perf_counter()
    transcode_segmented(config, executor)
    t2 = time.perf_counter()
    executor.close()
    ray.shutdown()
    rows["ray local, with start-up"] = t2 - t0
    rows["ray local, warm"] = t2 - t1

    print(f"overhead: {frames} frames {size[0]}x{size[1]}, gop {gop}, {result.segments} segments of >= "
          f"{segment_frames} with {PREROLL} pre-roll frames, {workers} Ray worker(s), {os.cpu_count()} CPUs")
    out = {"frames": frames, "size": list(size), "segments": result.segments, "segment_frames": segment_frames,
           "preroll": PREROLL, "workers": workers, "cpus": os.cpu_count(), "runs": {}}
    for name, wall in rows.items():
        ratio = wall / rows["single"]
        out["runs"][name] = {"wall_s": round(wall, 3), "fps": round(frames / wall, 2), "time_vs_single": round(ratio, 3)}
        print(f"  {name:26s} {wall:7.2f} s  {frames / wall:6.1f} fps  time x{ratio:.2f} of single")
    return out


def write_clip(frames: np.ndarray, path: Path, gop: int, crf: int = 12, extra: dict | None = None) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt = "yuv420p"
        video.codec_context.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "crf": str(crf),
                                       **(extra or {})}
        for i, rgb in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, 25)
            out.mux(video.encode(picture))
        out.mux(video.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def keyframe_jump(lossless: Path, tmp: Path, starts: list[int]) -> dict:
    """Mean frame-to-frame change beyond the lossless source's, at the joins and elsewhere,
    for the frames re-encoded at crf 18 whole and in pieces cut at ``starts``."""
    src = np.stack(decoded(lossless))
    cuts = [0, *starts, len(src)]
    whole = decoded(write_clip(src, tmp / "whole.mp4", gop=250, crf=18))
    keyed = decoded(write_clip(src, tmp / "keyed.mp4", gop=JOIN_GOP, crf=18))  # keyframes where the joins are
    pieces = [f for a, b in zip(cuts, cuts[1:])
              for f in decoded(write_clip(src[a:b], tmp / "piece.mp4", gop=250, crf=18,
                                          extra=landing_options("libx264", b - a, b == len(src))))]
    bare = [f for a, b in zip(cuts, cuts[1:]) for f in decoded(write_clip(src[a:b], tmp / "piece.mp4", gop=250, crf=18))]

    def jumps(frames):
        return np.array([np.abs(frames[i].astype(np.float32) - frames[i - 1]).mean()
                         - np.abs(src[i].astype(np.float32) - src[i - 1]).mean() for i in range(1, len(src))])

    at = np.zeros(len(src) - 1, bool)
    at[[s - 1 for s in starts]] = True
    w, k, p, n = jumps(whole), jumps(keyed), jumps(pieces), jumps(bare)
    return {"pieces_at_joins": float(p[at].mean()), "pieces_elsewhere": float(p[~at].mean()),
            "pieces_without_landing_at_joins": float(n[at].mean()),
            "whole_at_same_pairs": float(w[at].mean()), "whole_keyframes_at_same_pairs": float(k[at].mean())}


def joins(tmp: Path, names: list[str], size: tuple[int, int]) -> dict:
    print(f"joins: keyframe every {JOIN_GOP} frames, {JOIN_GOP}-frame segments, {PREROLL} pre-roll frames")
    out = {}
    for name in names:
        frames = clips.real_frames(name, size=size)
        clip = write_clip(frames, tmp / f"{name}.mp4", JOIN_GOP)
        starts = [s.start for s in plan_segments(clip, JOIN_GOP, PREROLL).segments if s.start]
        row = {"frames": len(frames), "joins": len(starts)}
        for label, crf in (("lossless", 0), ("crf18", 18)):
            enc = EncodeSettings(crf=crf)
            single = transcode(TranscodeConfig(input=clip, output=tmp / f"{name}-{crf}-single.mp4", encode=enc)).output
            seg = transcode_segmented(TranscodeConfig(input=clip, output=tmp / f"{name}-{crf}-seg.mp4", encode=enc),
                                      segment_frames=JOIN_GOP).output
            e_seg, e_single = pair_errors(clip, seg), pair_errors(clip, single)
            q, r = join_quality(e_seg, [0, *starts]), join_quality(e_single, [0, *starts])
            row[label] = {"joins_vs_elsewhere": q.ratio, "single_at_same_pairs_vs_elsewhere": r.ratio,
                          "join_excess": join_excess(e_seg, e_single, [0, *starts])}
            print(f"  {name:9s} {label:8s} {len(starts):2d} joins: joins/elsewhere x{q.ratio:.2f}, the single run "
                  f"there x{r.ratio:.2f}; join excess x{row[label]['join_excess']:.3f}")
            if crf == 0:
                jump = keyframe_jump(single, tmp, starts)
                row["x264_keyframe"] = jump
                print(f"  {name:9s} x264 keyframe at each join: jump beyond the source {jump['pieces_at_joins']:+.3f} "
                      f"levels ({jump['pieces_without_landing_at_joins']:+.3f} without the landing zone; "
                      f"elsewhere {jump['pieces_elsewhere']:+.3f}; one encode, same pairs "
                      f"{jump['whole_at_same_pairs']:+.3f}, or {jump['whole_keyframes_at_same_pairs']:+.3f} "
                      f"with its own keyframes there)")
        out[name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=3600)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--gop", type=int, default=25)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--clips", default="cup,carphone,bikes")
    ap.add_argument("--join-size", default="320x240")
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--skip-joins", action="store_true")
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / f"cluster-{stamp}.json")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vidstyle-cluster-bench-"))
    result = {}
    if not args.skip_overhead:
        result["overhead"] = overhead(tmp, args.frames, tuple(map(int, args.size.split("x"))), args.gop, args.workers)
    if not args.skip_joins:
        result["joins"] = joins(tmp, args.clips.split(","), tuple(map(int, args.join_size.split("x"))))
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
