"""The batch x size x engine grid of `vidstyle bench`, with plots, and a check that bench tells the truth.

    .venv/bin/python benchmarks/sweep.py [--batch 1,2,4,8] [--size 320x180,640x360,1280x720]
                                         [--engine all] [--temporal off] [--frames 48]

Every point is a real transcode after an untimed warm-up (see vidstyle/bench.py). After
the grid, one point (the middle size at batch 4) is run again as a plain `transcode()`
call, timed from outside, and its FPS is compared with what bench reported for the same
settings: the target is within 10%. Results (JSON with the system block, CSV, and the
FPS and latency plots) go to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, Stopwatch, save_results, system_block  # noqa: E402
from vidstyle.measure import bench  # noqa: E402
from vidstyle.engines import available  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="all")
    p.add_argument("--batch", default="1,2,4,8")
    p.add_argument("--size", default="320x180,640x360,1280x720")
    p.add_argument("--temporal", default="off")
    p.add_argument("--style", default="7")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args(argv)


def check_against_transcode(result: bench.Result, style: str, frames: int) -> dict:
    """The same settings through transcode() alone (warm engine, its own clip): FPS ratio to bench's."""
    from vidstyle.offline import TranscodeConfig, transcode

    p = result.point
    with tempfile.TemporaryDirectory() as tmp:
        clip = bench.synthetic_clip(Path(tmp) / "in.mp4", *p.size, frames)
        config = TranscodeConfig(clip, Path(tmp) / "out.mp4", style=style, batch=p.batch, engine=p.engine,
                                 temporal=p.temporal)
        transcode(config)  # warm: same shape as the timed run
        with Stopwatch() as sw:
            again = transcode(config)
    return {"point": p.label, "bench_fps": result.fps, "transcode_fps": again.fps,
            "transcode_call_fps": again.frames / sw.seconds, "ratio": again.fps / result.fps}


def main(argv=None) -> int:
    args = parse_args(argv)
    engines = available() if args.engine == "all" else bench.parse_list(args.engine, str, "--engine")
    sizes = bench.parse_list(args.size, bench.wxh, "--size")
    points = [bench.Point(e, b, s, t) for e in engines for s in sizes
              for t in bench.parse_list(args.temporal, str, "--temporal")
              for b in bench.parse_list(args.batch, bench.positive, "--batch")]
    from vidstyle.measure.flops import matmul_peak

    peak = matmul_peak()
    print(f"sweep: {len(points)} points, {args.frames} frames each; matmul peak {peak / 1e9:.0f} GFLOP/s", flush=True)
    results = bench.sweep(points, None, args.style, args.frames, args.warmup, peak,
                          on_result=lambda r: print(f"  {r.point.label}: {r.fps:.2f} fps", flush=True))
    print(bench.table(results))
    middle = sizes[len(sizes) // 2]
    probe = next((r for r in results if r.point.size == middle and r.point.batch == 4), results[0])
    check = check_against_transcode(probe, args.style, args.frames)
    print(f"bench vs transcode at {check['point']}: bench {check['bench_fps']:.2f} fps, transcode "
          f"{check['transcode_fps']:.2f} fps, ratio {check['ratio']:.2f} (target within 10%)")
    args.out.mkdir(parents=True, exist_ok=True)
    system = system_block()
    path = save_results(args.out, "sweep", {"system": system, "command": [sys.executable, *sys.argv],
                                            "matmul_peak_flops": peak, "points": [bench.as_dict(r) for r in results],
                                            "bench_vs_transcode": check})
    written = [path, bench.write_csv(path.with_suffix(".csv"), results), *bench.plot(args.out, results)]
    print("wrote:\n  " + "\n  ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
