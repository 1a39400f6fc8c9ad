"""The Python steps of benchmarks/gpu_check.sh (see its header). Each step writes its JSON
and never stops the run for one engine's failure: that engine's entry carries the error.

    python benchmarks/gpu_check.py system    --json OUT/system.json
    python benchmarks/gpu_check.py parity    --engines torch:fp16,tensorrt:fp16 --size 1280x720,1279x719 --json OUT/parity.json
    python benchmarks/gpu_check.py engine    --engines torch:fp16,torch:bf16 --batch 1,4,8 --size 1280x720,1920x1080 --json OUT/engine.json
    python benchmarks/gpu_check.py make-clip --size 1920x1080 --out OUT/cup-1080p.mp4
    python benchmarks/gpu_check.py transcode --input OUT/cup-1080p.mp4 --engine torch --batch 8 --json OUT/transcode.json
    python benchmarks/gpu_check.py live      --engine torch --size 1920x1080 --rate 60 --seconds 10 --json OUT/live.json
    python benchmarks/gpu_check.py summary   --dir OUT      # every step's JSON and exit status in OUT/gpu_check.json

An engine is NAME[:PRECISION]. The reference of ``parity`` is the CPU onnxruntime engine
in float32 on real frames of samples/cup.mp4 (what --engine auto runs on a CPU, itself
checked against the tf engine by tests/test_onnx_engine.py); a size that is not a
multiple of 4 is padded, run and cropped as the pipeline does on the CPU.
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
STEPS = ("carry", "system", "parity", "engine", "make-clip", "transcode", "live")


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


# Each package under the distribution names it ships as; versions read from metadata, so
# the step imports none of them (TensorFlow alone would take seconds).
PACKAGES = {"torch": ("torch",), "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
            "onnxruntime": ("onnxruntime", "onnxruntime-gpu"), "onnx": ("onnx",), "numpy": ("numpy",),
            "opencv": ("opencv-python", "opencv-python-headless"), "av": ("av",),
            "cupy": ("cupy-cuda13x", "cupy-cuda12x", "cupy"), "cuda-python": ("cuda-python", "cuda-bindings"),
            "jax": ("jax",), "tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",)}


def installed_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name, distributions in PACKAGES.items():
        out[name] = None
        for dist in distributions:
            try:
                out[name] = f"{dist} {version(dist)}"
                break
            except PackageNotFoundError:
                continue
    return out


def cmd_system(args) -> dict:
    from vidstyle.engines import available, gpu

    info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "gpus": list(gpu.nvidia_gpus()), "engines_available": available()}
    info["packages"] = installed_versions()
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda
        info["torch_cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name(0)
            info["cudnn"] = torch.backends.cudnn.version()
    except Exception as exc:  # noqa: BLE001 - recorded: the torch engine will say more
        info["torch_error"] = one_line(exc)
    try:
        import onnxruntime

        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception as exc:  # noqa: BLE001
        info["onnxruntime_error"] = one_line(exc)
    try:
        info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                             "--format=csv,noheader"], capture_output=True, text=True, check=False,
                                            timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        info["nvidia_smi"] = f"unavailable ({one_line(exc)})"
    return info


def frames_of_sample(size: tuple[int, int], count: int) -> np.ndarray:
    from benchmarks.clips import real_frames

    return real_frames("cup", every=max(1, 200 // count), limit=count, size=size)


def cpu_reference(frames: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The CPU onnxruntime fp32 stylization, with the pipeline's pad and crop for sizes
    that are not multiples of 4."""
    from vidstyle import engines
    from vidstyle.processing import geometry

    h, w = frames.shape[1:3]
    geom = geometry.plan(w, h)
    padded = np.stack([geometry.pad(f, geom) for f in frames])
    out = engines.create("onnxruntime", "multistyle26", precision="fp32").run(padded, style)
    return np.stack([geometry.crop(f, geom) for f in out])


def cmd_parity(args) -> dict:
    from vidstyle import engines
    from vidstyle.measure.metrics import ssim

    style = style_vector()
    result = {"reference": "onnxruntime (CPU) fp32", "clip": "samples/cup.mp4", "style": STYLE_INDEX,
              "frames": args.frames, "sizes": {}}
    for size in (wxh(s) for s in args.size.split(",")):
        frames = frames_of_sample(size, args.frames)
        t0 = time.perf_counter()
        reference = cpu_reference(frames, style)
        entry = {"reference_seconds": round(time.perf_counter() - t0, 3), "engines": {}}
        result["sizes"][f"{size[0]}x{size[1]}"] = entry
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
                entry["engines"][label] = {
                    "engine": getattr(engine, "name", name), "precision": getattr(engine, "precision", precision),
                    "device": getattr(engine, "device", None), "max_abs_levels": int(diff.max()),
                    "mean_abs_levels": round(float(diff.mean()), 4),
                    "share_off_by_more_than_2": round(float(np.mean(diff > 2)), 6),
                    "ssim_min": round(float(min(scores)), 5), "create_seconds": round(created, 2),
                    "first_run_seconds": round(first, 3)}
            except Exception as exc:  # noqa: BLE001 - one engine's failure is a result, not the end
                entry["engines"][label] = {"error": one_line(exc)}
            print(label, f"{size[0]}x{size[1]}", json.dumps(entry["engines"][label]), flush=True)
    return result


def timed(call, frames_per_call: int, least: int, seconds: float) -> float:
    """Frames per second of ``call`` over at least ``least`` calls or ``seconds``."""
    calls, t0 = 0, time.perf_counter()
    while calls < least or time.perf_counter() - t0 < seconds:
        call()
        calls += 1
        if calls >= 10 * least:
            break
    return calls * frames_per_call / (time.perf_counter() - t0)


def speed(engine, frames: np.ndarray, style: np.ndarray, least: int, seconds: float) -> dict:
    """One point: the untimed first call, then frames/s of ``run`` and, for an engine that
    queues on a device, of ``stream`` over ``least`` batches."""
    t0 = time.perf_counter()
    engine.run(frames, style)  # builds, plans or captures this shape: untimed
    point = {"first_call_seconds": round(time.perf_counter() - t0, 3)}
    point["fps_run"] = round(timed(lambda: engine.run(frames, style), len(frames), least, seconds), 2)
    if getattr(engine, "queues", False) and hasattr(engine, "stream"):
        def streamed():
            for _ in engine.stream((frames for _ in range(least)), style):
                pass
        point["fps_stream"] = round(timed(streamed, len(frames) * least, 1, 0), 2)
    return point


def cmd_engine(args) -> dict:
    """Inference alone (frames already in memory): frames/s per engine x batch x size, with
    ``run`` one batch at a time and, for engines that queue on a device, ``stream`` (two
    batches in flight: upload, inference and download overlapping)."""
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
                point = {"engine": f"{name}:{precision}", "precision": getattr(engine, "precision", precision),
                         "size": f"{width}x{height}", "batch": batch}
                try:
                    point.update(speed(engine, frames, style, max(2, args.frames // batch), args.seconds))
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
    from vidstyle.io.sink import EncodeSettings
    from vidstyle.offline import TranscodeConfig, transcode

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
            "x264_preset": args.preset, "cpus": os.cpu_count(), "input": str(args.input), "frames": result.frames,
            "fps": round(result.fps, 2), "wall_seconds_with_load": round(wall, 2), "stages": stages,
            "bounded_by": bound}


def cmd_live(args) -> dict:
    """A paced synthetic camera at --rate through the live scheduler (vidstyle bench --mode
    live): delivered fps, drops and latency percentiles."""
    from vidstyle.apps.cli import main as vidstyle

    raw = Path(str(args.json or "live.json") + ".bench")
    argv = ["bench", "--mode", "live", "--engine", args.engine, "--precision", args.precision,
            "--size", args.size, "--rate", str(args.rate), "--duration", str(args.seconds),
            "--batch", str(args.batch), "--warmup", str(args.warmup), "--temporal", "off", "--no-peak",
            "--json", str(raw)]
    code = vidstyle(argv)
    if code or not raw.is_file():
        return {"engine": args.engine, "error": f"vidstyle bench exited {code}"}
    data = json.loads(raw.read_text())
    raw.unlink()
    point = data["points"][0]
    if "error" in point:
        return {"engine": args.engine, "error": point["error"]}
    wall = point.get("wall") or 0
    return {"engine": args.engine, "precision": args.precision, "camera": f"synthetic {args.size} at {args.rate} fps",
            "seconds": args.seconds, "batch": args.batch, "delivered": point["frames"], "dropped": point["dropped"],
            "fps": round(point["frames"] / wall, 2) if wall else None,
            "latency_ms": {k: round(v, 1) for k, v in point["latency_ms"].items()},
            "stages": {k: round(v["ms_per_frame"], 2) for k, v in point["stages"].items()}}


def cmd_summary(args) -> dict:
    """Every step's JSON, exit status and time in one file (rewritten after each step)."""
    folder = Path(args.dir)
    summary = {"check": "benchmarks/gpu_check.sh", "steps": {}}
    steps = folder / "steps.txt"
    for line in steps.read_text().splitlines() if steps.is_file() else []:
        name, status, seconds, limit = (line.split() + ["", "", "", ""])[:4]
        summary["steps"][name] = {"exit": status if not status.lstrip("-").isdigit() else int(status),
                                  "seconds": float(seconds or 0), "limit_seconds": float(limit or 0)}
    for name in STEPS:
        path = folder / f"{name}.json"
        if path.is_file():
            try:
                summary[name] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:  # a step cut while writing
                summary[name] = {"error": one_line(exc)}
    (folder / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {"wrote": str(folder / "gpu_check.json"), "steps": summary["steps"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("system")
    s.add_argument("--json", type=Path)
    s = sub.add_parser("parity")
    s.add_argument("--engines", default="torch:fp16,torch:bf16,torch:fp32,tensorrt:fp16,onnxruntime-cuda:fp32")
    s.add_argument("--size", default="1280x720,1279x719", help="comma list of WxH")
    s.add_argument("--frames", type=int, default=4)
    s.add_argument("--json", type=Path)
    s = sub.add_parser("engine")
    s.add_argument("--engines", default="torch:fp16,torch:bf16,torch:fp32")
    s.add_argument("--batch", default="1,4,8")
    s.add_argument("--size", default="1280x720,1920x1080")
    s.add_argument("--frames", type=int, default=64, help="at least this many frames timed per point")
    s.add_argument("--seconds", type=float, default=1.0, help="and at least this long")
    s.add_argument("--json", type=Path)
    s = sub.add_parser("make-clip")
    s.add_argument("--size", default="1920x1080")
    s.add_argument("--out", required=True)
    s.add_argument("--max-frames", type=int, default=0, help="0: the whole clip (217 frames)")
    s.add_argument("--json", type=Path)
    s = sub.add_parser("transcode")
    s.add_argument("--input", required=True)
    s.add_argument("--output")
    s.add_argument("--engine", default="torch")
    s.add_argument("--precision", default="auto")
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--temporal", default="off")
    s.add_argument("--preset", default="veryfast", help="the x264 preset")
    s.add_argument("--json", type=Path)
    s = sub.add_parser("live")
    s.add_argument("--engine", default="torch")
    s.add_argument("--precision", default="auto")
    s.add_argument("--size", default="1920x1080")
    s.add_argument("--rate", type=int, default=60)
    s.add_argument("--seconds", type=float, default=10)
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--warmup", type=int, default=8)
    s.add_argument("--json", type=Path)
    s = sub.add_parser("summary")
    s.add_argument("--dir", required=True)
    args = p.parse_args(argv)
    step = {"system": cmd_system, "parity": cmd_parity, "engine": cmd_engine, "make-clip": cmd_make_clip,
            "transcode": cmd_transcode, "live": cmd_live, "summary": cmd_summary}[args.step]
    write(getattr(args, "json", None), step(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
