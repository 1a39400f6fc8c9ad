"""Issue 9: `--cluster local` against the plain single-process transcode, on this machine.

Side by side in one run, on one synthetic clip (moving shapes + a tone, keyframe
every GOP frames): frames/s of the plain transcode, of the segmented path run
inline (segment + join overhead alone), and of a local Ray runtime with one actor
per worker (start-up of Ray and of the actors' engines counted, and not counted);
then the warping error at segment joins against elsewhere, and against the
single-machine output at the same frame pairs.

    .venv/bin/python benchmarks/cluster.py [--frames 300] [--size 320x240] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from test_cluster import gop_video  # noqa: E402  (the tests' clip maker)

from vidstyle.cluster.plan import plan_segments  # noqa: E402
from vidstyle.cluster.quality import join_quality, pair_errors  # noqa: E402
from vidstyle.cluster.run import transcode_segmented  # noqa: E402
from vidstyle.transcode import TranscodeConfig, transcode  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--gop", type=int, default=25)
    ap.add_argument("--segment-frames", type=int, default=75)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "cluster.json")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="vidstyle-cluster-bench-"))
    clip = gop_video(tmp / "in.mp4", frames=args.frames, size=(w, h), gop=args.gop)
    rows = {}

    t = time.perf_counter()
    transcode(TranscodeConfig(input=clip, output=tmp / "single.mp4"))
    rows["single"] = time.perf_counter() - t

    t = time.perf_counter()
    transcode_segmented(TranscodeConfig(input=clip, output=tmp / "inline.mp4"), segment_frames=args.segment_frames)
    rows["segmented inline"] = time.perf_counter() - t

    import ray

    from vidstyle.cluster.ray_exec import RayExecutor

    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    executor = RayExecutor(args.workers)
    config = TranscodeConfig(input=clip, output=tmp / "ray.mp4")
    executor._start(config)
    ray.get([a.__ray_ready__.remote() for a in executor.actors])  # actors up, engines loaded
    t1 = time.perf_counter()
    transcode_segmented(config, executor, segment_frames=args.segment_frames)
    t2 = time.perf_counter()
    executor.close()
    ray.shutdown()
    rows["ray local, with start-up"] = t2 - t0
    rows["ray local, warm"] = t2 - t1

    print(f"{args.frames} frames {w}x{h}, gop {args.gop}, segments of >= {args.segment_frames}, "
          f"{args.workers} Ray worker(s), {os.cpu_count()} CPUs")
    result = {"frames": args.frames, "size": [w, h], "workers": args.workers, "cpus": os.cpu_count(), "runs": {}}
    for name, wall in rows.items():
        fps = args.frames / wall
        ratio = wall / rows["single"]
        result["runs"][name] = {"wall_s": round(wall, 3), "fps": round(fps, 2), "time_vs_single": round(ratio, 3)}
        print(f"  {name:26s} {wall:7.2f} s  {fps:6.1f} fps  time x{ratio:.2f} of single")

    starts = [s.start for s in plan_segments(clip, args.segment_frames).segments]
    seg = join_quality(pair_errors(clip, tmp / "ray.mp4"), starts)
    ref = join_quality(pair_errors(clip, tmp / "single.mp4"), starts)
    result["join_quality"] = {"segmented_at_joins": seg.at_joins, "segmented_elsewhere": seg.elsewhere,
                              "segmented_ratio": seg.ratio, "single_at_same_pairs": ref.at_joins,
                              "single_ratio": ref.ratio, "joins": seg.joins}
    print(f"  warping error at {seg.joins} joins {seg.at_joins:.5f} vs elsewhere {seg.elsewhere:.5f} "
          f"(x{seg.ratio:.2f}); the single-machine output at the same pairs {ref.at_joins:.5f} (x{ref.ratio:.2f})")
    args.json.parent.mkdir(exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
