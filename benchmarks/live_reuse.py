"""Live video with and without reuse, measured: delivered fps, latency, keyframes, and the picture.

Each clip is played as a 640x480 camera at its own rate through ``vidstyle live`` (a
subprocess, as a user runs it) with ``--record`` and ``--stats-json``, for each
``--reuse`` setting: ``off`` (every frame through the network at the adaptive processing
size) and ``auto`` (keyframes at 480 px on their own thread, every frame carried from
them). The recorded frames keep the source's timestamps, so each is compared with the
per-frame full-size stylization of the same source frame: deviation over all pixels and
over moving ones, and the recording's flicker against the source's (flicker excess). The
offline default transcode of the same clip is measured beside it, since the live bound
is relative to it (deviation <= 1.5x the offline default's).

Clips: the sample (cup: a still camera and a hand) and the synthetic ``objects``, ``pan``
and ``cut`` clips (benchmarks/clips.py) at ``--seconds`` each.

    .venv/bin/python benchmarks/live_reuse.py [--clips cup,pan] [--reuse off,auto] [--seconds 10]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import clips  # noqa: E402
from benchmarks.common import save_results, system_block, table  # noqa: E402
from vidstyle.measure.metrics import evaluate, measure  # noqa: E402
from vidstyle.offline import TranscodeConfig, transcode  # noqa: E402

HEADERS = ["clip", "mode", "fps", "dropped", "p50 ms", "p95 ms", "p99 ms", "picture at", "keyframes/s",
           "deviation", "moving dev", "dev / offline", "flicker"]


def clip_file(name: str, seconds: float, folder: Path) -> Path:
    if name == "cup":
        return clips.SAMPLE
    frames = round(seconds * clips.rate(name))
    return clips.write_mp4(clips.make_clip(name, frames), folder / f"{name}.mp4", clips.rate(name))


def frames_by_pts(path: Path) -> dict[int, np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}


def live(clip: Path, setting: str, folder: Path, style: str) -> tuple[dict, Path]:
    """``vidstyle live`` on ``clip`` played once as a camera; its stats and its recording."""
    rec, stats = folder / f"{clip.stem}-live-{setting}.mp4", folder / f"{clip.stem}-live-{setting}.json"
    command = [sys.executable, "-m", "vidstyle", "live", "--camera", str(clip), "--style", style,
               "--reuse", setting, "--record", str(rec), "--stats-json", str(stats)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    print(done.stdout.strip().splitlines()[-1], flush=True)
    return json.loads(stats.read_text()), rec


def judge(source: dict[int, np.ndarray], recording: Path, reference: dict[int, np.ndarray]):
    """The recording's frames against the same source frames' per-frame stylization."""
    recorded = frames_by_pts(recording)
    stamps = [p for p in sorted(recorded) if p in source and p in reference]
    if len(stamps) < len(recorded):
        raise SystemExit(f"{recording}: {len(recorded) - len(stamps)} frames do not match a source frame")
    return evaluate((source[p] for p in stamps), (recorded[p] for p in stamps), (reference[p] for p in stamps))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="cup,objects,pan,cut")
    ap.add_argument("--reuse", default="off,auto")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clips")
    ap.add_argument("--style", default="7")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    rows, payload = [], {"system": system_block(), "style": args.style, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.clips.split(","):
            clip = clip_file(name, args.seconds, folder)
            reference, offline = folder / f"{name}-perframe.mp4", folder / f"{name}-offline.mp4"
            transcode(TranscodeConfig(clip, reference, style=args.style, temporal="off"))
            transcode(TranscodeConfig(clip, offline, style=args.style))
            base = measure(clip, offline, reference)
            figures = {"offline": {"deviation": base.deviation, "moving_deviation": base.moving_deviation,
                                   "flicker_excess": base.flicker_excess}}
            rows.append([name, "offline default", None, None, None, None, None, "640x480", None,
                         f"{base.deviation:.4f}", f"{base.moving_deviation:.4f}", 1.0, base.flicker_excess])
            source, per_frame = frames_by_pts(clip), frames_by_pts(reference)
            for setting in args.reuse.split(","):
                stats, rec = live(clip, setting, folder, args.style)
                report = judge(source, rec, per_frame)
                stats.update(deviation=report.deviation, moving_deviation=report.moving_deviation,
                             flicker_excess=report.flicker_excess, judged=report.frames)
                figures[setting] = stats
                lat = stats["latency_ms"]
                rows.append([name, f"live {setting}", stats["fps"], f"{stats['drop_rate']:.0%}", lat["p50"],
                             lat["p95"], lat["p99"], stats.get("keyframe_size", stats["processing"]),
                             stats.get("keyframe_fps"), f"{report.deviation:.4f}", f"{report.moving_deviation:.4f}",
                             report.deviation / base.deviation, report.flicker_excess])
            payload["clips"][name] = figures
            print(table(rows[-len(args.reuse.split(",")) - 1:], HEADERS), flush=True)
    print()
    print(table(rows, HEADERS))
    print(f"wrote {save_results(args.out, 'live-reuse', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
