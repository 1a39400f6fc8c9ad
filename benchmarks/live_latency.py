"""Live latency: capture -> present on a paced 30 fps 640x480 camera, in process and through a browser.

    .venv/bin/python benchmarks/live_latency.py [--seconds 20] [--rounds 2] [--no-browser]

In process: the synthetic camera (vidstyle.io.paced.moving_pictures, paced like a
real one) feeds the live scheduler exactly as `vidstyle live` does; "present"
converts each frame to BGR, what a window or a virtual camera does with it.
Each setting runs for --seconds, interleaved over --rounds; the table gives
the median over rounds of delivered FPS, drop rate and latency p50/p95/p99
(milliseconds from capture to present). "adaptive" is the default: the
processing size calibrated on this machine, then following the measured
service time; fixed sizes are there to show what the adaptive choice trades.

Browser: the `--serve` page in headless Debian Chromium on localhost, its camera
a canvas whose brightness jumps at random moments; the time from a jump on the
page to the stylized picture coming back past the midpoint is one round-trip
sample (see benchmarks/serve_probe.py).

Targets: in process, delivered >= 25 fps with p95 <= 80 ms; browser
round trip p95 <= 150 ms. Results go to benchmarks/results/live-latency-*.json.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, median, save_results, system_block, table  # noqa: E402

CAMERA = (640, 480, 30.0)
TARGET_FPS, TARGET_P95, TARGET_BROWSER_P95 = 25.0, 80.0, 150.0


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=20.0, help="per setting and round (default 20)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--style", default="7")
    p.add_argument("--sizes", default="256,192,160", help="fixed processing sizes shown beside adaptive")
    p.add_argument("--no-browser", action="store_true", help="skip the browser round trip")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    return p.parse_args(argv)


def run_in_process(stylizer, size, mode: str, seconds: float) -> dict:
    import cv2

    from vidstyle.io.paced import PacedSource, moving_pictures
    from vidstyle.measure.stats import latency_summary
    from vidstyle.pipeline.scheduler import run_live
    from vidstyle.pipeline.sizing import for_camera
    from vidstyle.processing import temporal

    width, height, rate = CAMERA
    sizing = for_camera(stylizer.run, width, height, rate, size)
    source = PacedSource(moving_pictures(width, height), rate, loop=True, count=int(seconds * rate))
    stats = run_live(source, stylizer, sizing, temporal.create(mode), lambda f: cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    g = sizing.current
    return {"fps": stats.fps, "drop_rate": stats.drop_rate, "latency_ms": latency_summary(stats.latencies),
            "processing": f"{g.proc_w}x{g.proc_h}", "size_changes": getattr(sizing, "changes", [])}


def main(argv=None) -> int:
    args = parse_args(argv)
    from vidstyle.processing import styles
    from vidstyle.pipeline.stylizer import Stylizer

    stylizer = Stylizer(styles.parse(args.style))
    settings = [(None, mode) for mode in ("flow", "off")] + [(int(s), "flow") for s in args.sizes.split(",")]
    runs: dict[str, list[dict]] = {}
    for r in range(args.rounds):
        for size, mode in settings:
            label = f"{'adaptive' if size is None else size} {mode}"
            result = run_in_process(stylizer, size, mode, args.seconds)
            runs.setdefault(label, []).append(result)
            print(f"round {r + 1} {label}: {result['fps']:.1f} fps at {result['processing']}, "
                  f"p95 {result['latency_ms']['p95']:.0f} ms", flush=True)
    rows, summary = [], {}
    for label, results in runs.items():
        s = {"fps": median(r["fps"] for r in results), "drop_rate": median(r["drop_rate"] for r in results),
             **{k: median(r["latency_ms"][k] for r in results) for k in ("p50", "p95", "p99")},
             "processing": [r["processing"] for r in results]}
        summary[label] = s
        rows.append([label, "/".join(sorted(set(s["processing"]))), s["fps"], f"{s['drop_rate']:.0%}",
                     s["p50"], s["p95"], s["p99"]])
    print("\nIn process, 640x480 camera at 30 fps (medians over rounds):")
    print(table(rows, ["setting", "processing", "fps", "dropped", "p50 ms", "p95 ms", "p99 ms"]))
    default = summary["adaptive flow"]
    verdict = {"in_process_fps": default["fps"], "in_process_p95_ms": default["p95"],
               "in_process_met": default["fps"] >= TARGET_FPS and default["p95"] <= TARGET_P95}
    print(f"default (adaptive, flow): {default['fps']:.1f} fps (target >= {TARGET_FPS:g}), "
          f"p95 {default['p95']:.0f} ms (target <= {TARGET_P95:g}): {'met' if verdict['in_process_met'] else 'NOT met'}")
    browser = None
    if not args.no_browser:
        from benchmarks.serve_probe import browser_round_trip

        browser = {}
        for mode in ("flow", "off"):
            browser[mode] = browser_round_trip(seconds=args.seconds * args.rounds, temporal=mode, style=args.style)
            b = browser[mode]
            print(f"browser round trip, temporal {mode}: p50 {b['p50']:.0f} / p95 {b['p95']:.0f} / "
                  f"p99 {b['p99']:.0f} ms over {b['n']} jumps, {b['fps']:.1f} fps back", flush=True)
        verdict["browser_p95_ms"] = browser["flow"]["p95"]
        verdict["browser_met"] = browser["flow"]["p95"] <= TARGET_BROWSER_P95
        print(f"browser p95 {browser['flow']['p95']:.0f} ms (target <= {TARGET_BROWSER_P95:g}): "
              f"{'met' if verdict['browser_met'] else 'NOT met'}")
    path = save_results(args.out, "live-latency", {
        "command": sys.argv, "system": system_block(), "camera": CAMERA, "seconds": args.seconds,
        "rounds": args.rounds, "in_process": runs, "summary": summary, "browser": browser, "verdict": verdict})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
