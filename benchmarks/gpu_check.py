"""The Python steps of benchmarks/gpu_check.sh (see its header). Each step writes JSON and
never stops the run for one engine's failure: that engine's entry carries the error line.

    python benchmarks/gpu_check.py system     --json OUT/system.json
    python benchmarks/gpu_check.py parity     --engines tensorrt:fp16,tensorrt:fp32,onnxruntime-cuda:fp32,tf:fp32 --json OUT/parity.json
    python benchmarks/gpu_check.py engine     --engines tensorrt:fp16,onnxruntime-cuda:fp32 --batch 1,4,8 --size 1280x720,1920x1080 --json OUT/engine.json
    python benchmarks/gpu_check.py make-clip  --size 1920x1080 --out OUT/cup1080.mp4
    python benchmarks/gpu_check.py transcode  --input OUT/cup1080.mp4 --engine tensorrt --batch 8 --json OUT/transcode.json

An engine is NAME[:PRECISION]. The reference of ``parity`` is the CPU onnxruntime engine
in float32 on real frames of samples/cup.mp4 (what --engine auto runs on a CPU, itself
checked against the tf engine by tests/test_onnx_engine.py).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

STYLE_INDEX = 7


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"


def parse_engines(text: str) -> list[tuple[str, str]]:
    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, precision = item.partition(":")
        out.append((name, precision or "auto"))
    return out


def wxh(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def style_vector() -> np.ndarray:
    return np.eye(26, dtype=np.float32)[STYLE_INDEX]


def write(path: Path | None, data: dict) -> None:
    text = json.dumps(data, indent=2)
    print(text if len(text) < 4000 else text[:4000] + "\n...")
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def cmd_system(args) -> dict:
    from vidstyle.engines import available, gpu

    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "gpus": list(gpu.nvidia_gpus()), "engines_available": available()}
    for module in ("tensorrt", "onnxruntime", "tensorflow", "numpy", "cuda.bindings", "onnx"):
        try:
            mod = __import__(module, fromlist=["_"])
            info[module] = getattr(mod, "__version__", "installed")
        except Exception as exc:  # noqa: BLE001
            info[module] = f"missing ({one_line(exc)})"
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001
        pass
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                             "--format=csv,noheader"], capture_output=True, text=True,
                                            timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia_smi"] = f"unavailable ({one_line(exc)})"
    return info


def frames_of_sample(size: tuple[int, int], count: int) -> np.ndarray:
    from benchmarks.clips import real_frames

    return real_frames("cup", every=max(1, 200 // count), limit=count, size=size)


def cmd_parity(args) -> dict:
    from vidstyle import engines
    from vidstyle.measure.metrics import ssim

    size = wxh(args.size)
    frames = frames_of_sample(size, args.frames)
    style = style_vector()
    t0 = time.perf_counter()
    reference = engines.create("onnxruntime", "multistyle26", precision="fp32").run(frames, style)
    result = {"reference": "onnxruntime (CPU) fp32", "frames": len(frames), "size": f"{size[0]}x{size[1]}",
              "clip": "samples/cup.mp4", "style": STYLE_INDEX,
              "reference_seconds": round(time.perf_counter() - t0, 3), "engines": {}}
    for name, precision in parse_engines(args.engines):
        label = f"{name}:{precision}"
        try:
            t0 = time.perf_counter()
            engine = engines.create(name, "multistyle26", precision=precision)
            created = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = engine.run(frames, style)
            first = time.perf_counter() - t0
            diff = np.abs(out.astype(np.int16) - reference.astype(np.int16))
            scores = [ssim(a.astype(np.float32) / 255, b.astype(np.float32) / 255) for a, b in zip(out, reference)]
            result["engines"][label] = {
                "engine": getattr(engine, "name", name), "max_abs_levels": int(diff.max()),
                "mean_abs_levels": round(float(diff.mean()), 4), "share_off_by_more_than_2": round(float(np.mean(diff > 2)), 6),
                "ssim_min": round(float(min(scores)), 5), "create_seconds": round(created, 2),
                "first_run_seconds": round(first, 3)}
        except Exception as exc:  # noqa: BLE001 - one engine's failure is a result, not the end
            result["engines"][label] = {"error": one_line(exc)}
    return result


def cmd_engine(args) -> dict:
    """Inference alone (frames already in memory): frames/s per engine x batch x size, with
    ``run`` one batch at a time and, for engines that have it, ``stream`` (two batches in
    flight: upload, inference and download overlapping)."""
    from vidstyle import engines

    style = style_vector()
    points = []
    for width, height in (wxh(s) for s in args.size.split(",")):
        base = frames_of_sample((width, height), 8)
        for name, precision in parse_engines(args.engines):
            try:
                engine = engines.create(name, "multistyle26", precision=precision)
            except Exception as exc:  # noqa: BLE001
                points.append({"engine": f"{name}:{precision}", "size": f"{width}x{height}", "error": one_line(exc)})
                continue
            for batch in (int(b) for b in args.batch.split(",")):
                frames = np.ascontiguousarray(np.resize(base, (batch, height, width, 3)))
                point = {"engine": f"{name}:{precision}", "size": f"{width}x{height}", "batch": batch}
                try:
                    t0 = time.perf_counter()
                    engine.run(frames, style)  # builds / plans this shape: untimed
                    point["first_call_seconds"] = round(time.perf_counter() - t0, 3)
                    engine.run(frames, style)
                    runs = max(2, args.frames // batch)
                    t0 = time.perf_counter()
                    for _ in range(runs):
                        engine.run(frames, style)
                    point["fps_run"] = round(runs * batch / (time.perf_counter() - t0), 2)
                    if hasattr(engine, "stream"):
                        t0 = time.perf_counter()
                        for _ in engine.stream((frames for _ in range(runs)), style):
                            pass
                        point["fps_stream"] = round(runs * batch / (time.perf_counter() - t0), 2)
                except Exception as exc:  # noqa: BLE001
                    point["error"] = one_line(exc)
                points.append(point)
                print(json.dumps(point), flush=True)
    return {"what": "inference only, frames in memory, style 7", "points": points}


def cmd_make_clip(args) -> dict:
    """samples/cup.mp4 upscaled (bicubic) to --size, re-encoded with libx264 (fast, crf 18)."""
    import av
    import cv2

    width, height = wxh(args.size)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames = 0
    with av.open(str(ROOT / "samples" / "cup.mp4")) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        rate = vin.average_rate or 30
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"crf": "18", "preset": "fast"}
        for frame in src.decode(vin):
            if args.max_frames and frames >= args.max_frames:
                break
            rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height), interpolation=cv2.INTER_CUBIC)
            for packet in vout.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                dst.mux(packet)
            frames += 1
        for packet in vout.encode():
            dst.mux(packet)
    return {"clip": str(out), "frames": frames, "size": f"{width}x{height}"}


def cmd_transcode(args) -> dict:
    """An end-to-end transcode with the stage breakdown: each stage's busy seconds per
    frame, and which one bounds the run (the busiest)."""
    from vidstyle.offline import TranscodeConfig, transcode
    from vidstyle.io.sink import EncodeSettings

    out = Path(args.output or (Path(args.input).with_name(f"{Path(args.input).stem}-{args.engine}.mp4")))
    config = TranscodeConfig(Path(args.input), out, style=str(STYLE_INDEX), batch=args.batch, engine=args.engine,
                             precision=args.precision, temporal=args.temporal,
                             encode=EncodeSettings(preset=args.preset))
    try:
        t0 = time.perf_counter()
        result = transcode(config)
        wall = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001
        return {"engine": args.engine, "error": one_line(exc)}
    stages = {name: {"items": s.items, "busy_seconds": round(s.busy, 3),
                     "ms_per_frame": round(1000 * s.busy / max(1, result.frames), 2)}
              for name, s in result.stats.stages.items()}
    bound = max(stages, key=lambda k: stages[k]["busy_seconds"]) if stages else None
    return {"engine": args.engine, "precision": args.precision, "batch": args.batch, "temporal": args.temporal,
            "preset": args.preset, "input": str(args.input), "frames": result.frames, "fps": round(result.fps, 2),
            "wall_seconds_with_load": round(wall, 2), "stages": stages, "bounded_by": bound}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("system")
    s.add_argument("--json", type=Path)
    s = sub.add_parser("parity")
    s.add_argument("--engines", default="tensorrt:fp16,tensorrt:fp32,onnxruntime-cuda:fp32,tf:fp32")
    s.add_argument("--size", default="1280x720")
    s.add_argument("--frames", type=int, default=4)
    s.add_argument("--json", type=Path)
    s = sub.add_parser("engine")
    s.add_argument("--engines", default="tensorrt:fp16,onnxruntime-cuda:fp32")
    s.add_argument("--batch", default="1,4,8")
    s.add_argument("--size", default="1280x720,1920x1080")
    s.add_argument("--frames", type=int, default=240, help="frames timed per point")
    s.add_argument("--json", type=Path)
    s = sub.add_parser("make-clip")
    s.add_argument("--size", default="1920x1080")
    s.add_argument("--out", required=True)
    s.add_argument("--max-frames", type=int, default=0, help="0: the whole clip (217 frames)")
    s = sub.add_parser("transcode")
    s.add_argument("--input", required=True)
    s.add_argument("--output")
    s.add_argument("--engine", default="tensorrt")
    s.add_argument("--precision", default="auto")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--temporal", default="off")
    s.add_argument("--preset", default="veryfast")
    s.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    step = {"system": cmd_system, "parity": cmd_parity, "engine": cmd_engine, "make-clip": cmd_make_clip,
            "transcode": cmd_transcode}[args.step]
    write(getattr(args, "json", None), step(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
