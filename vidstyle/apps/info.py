"""vidstyle info: what this installation can run, and with what.

The engines (usable here, or why not), the GPU, the precisions each engine computes,
the cache folder and its size, and the versions of what vidstyle runs on. It answers
in about a second: installed packages are found without importing them, and only
where an NVIDIA GPU is present are onnxruntime and PyTorch asked whether they see it.
"""
from __future__ import annotations

import importlib.util
import os
import platform
from pathlib import Path

from vidstyle import __version__
from vidstyle.engines import AUTO_PRECISION, ENGINES, PRECISION_ENGINES, available, gpu
from vidstyle.engines.cpu import cpu_flags, usable_cores
from vidstyle.engines.export.model_cache import cache_dir
from vidstyle.measure.system import cpu_model, versions

PACKAGES = ("numpy", "av", "opencv-python", "onnxruntime", "onnxruntime-gpu", "onnx", "tensorflow",
            "tensorflow-cpu", "keras", "torch", "tensorrt", "tensorrt-cu12", "cuda-python", "aiortc", "aiohttp",
            "ray", "shtab")
GPU_EXTRA = "pip install 'vidstyle[gpu]' (docs/gpu.md)"
# Instruction sets that decide how fast the reduced precisions run on a CPU.
CPU_FEATURES = {"avx2": "avx2", "avx512f": "avx512", "avx512_vnni": "vnni (int8)", "avx_vnni": "vnni (int8)",
                "amx_int8": "amx (int8)", "avx512_bf16": "bf16", "amx_bf16": "amx (bf16)"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _why_not(name: str, has_gpu: bool) -> tuple[str, str]:
    """("by name" or "no", the reason) for an engine that ``auto`` does not choose here."""
    if name == "tensorrt":
        return "no", "no NVIDIA GPU" if not has_gpu else f"TensorRT is not installed: {GPU_EXTRA}"
    if name == "torch":
        if not _installed("torch"):
            return "no", "PyTorch is not installed (pip install torch)"
        if not has_gpu:
            return "by name", "PyTorch on the CPU; onnxruntime is faster here"
        return "by name", "this PyTorch sees no CUDA GPU; it runs on the CPU"
    if name == "onnxruntime-cuda":
        return "no", "no NVIDIA GPU" if not has_gpu else f"onnxruntime has no CUDA provider: {GPU_EXTRA}"
    if name == "onnxruntime":
        return "no", "onnxruntime is not installed: pip install onnxruntime"
    if name == "tf":
        return "no", "TensorFlow is not installed: pip install 'vidstyle[tf]'"
    if name == "tf-trt":
        from vidstyle.engines.tftrt_engine import REMOVED_IN, tensorflow_version

        version = tensorflow_version()
        if version is None:
            return "no", "needs TensorFlow 2.17 or older with TensorRT"
        if tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) >= REMOVED_IN:
            return "no", f"TensorFlow {version} has no TF-TRT (removed in 2.18); use tensorrt"
        if not has_gpu:
            return "no", "no NVIDIA GPU"
        return "by name", "converts for minutes before the first frame"
    raise ValueError(name)


def engines() -> list[dict]:
    """Every engine: ``use`` is "auto" (chosen by --engine auto, in this order), "by name"
    (runs when asked for) or "no"; ``why`` says why it is not chosen automatically."""
    has_gpu = gpu.gpu_present()
    chosen = available()
    rows = []
    for name in ENGINES:
        use, why = ("auto", "") if name in chosen else _why_not(name, has_gpu)
        rows.append({"name": name, "use": use, "rank": chosen.index(name) + 1 if name in chosen else None,
                     "precisions": [p for p, names in PRECISION_ENGINES.items() if name in names],
                     "auto_precision": AUTO_PRECISION.get(name, "fp32"), "why": why})
    return rows


def cache() -> dict:
    folder = cache_dir()
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return {"folder": str(folder), "set_by": "VIDSTYLE_CACHE" if os.environ.get("VIDSTYLE_CACHE") else None,
            "exists": folder.is_dir(), "files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def ffmpeg_version() -> str | None:
    try:
        import av

        major, minor, micro = av.library_versions["libavcodec"]
        return f"libavcodec {major}.{minor}.{micro}"
    except (ImportError, KeyError, AttributeError):
        return None


def collect() -> dict:
    """Everything ``vidstyle info`` shows, as plain data (what --json prints)."""
    flags = cpu_flags()
    return {
        "vidstyle": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "package": str(Path(__file__).resolve().parents[1]),
        "engines": engines(),
        "gpus": list(gpu.nvidia_gpus()),
        "cpu": {"model": cpu_model(), "cores_usable": usable_cores(),
                "features": sorted({label for flag, label in CPU_FEATURES.items() if flag in flags})},
        "cache": cache(),
        "ffmpeg": ffmpeg_version(),
        "packages": versions(PACKAGES),
    }


def _size(count: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return ""


def render(report: dict) -> str:
    """The report for a person: a block per subject, engines in the order auto tries them."""
    lines = [f"vidstyle {report['vidstyle']} on Python {report['python']} ({report['platform']})",
             f"  package: {report['package']}", "", "engines (--engine; auto takes the first usable one):"]
    rows = sorted(report["engines"], key=lambda r: (r["rank"] is None, r["rank"] or 0))
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        state = "usable" if r["use"] == "auto" else "by name" if r["use"] == "by name" else "no"
        note = f"  ({r['why']})" if r["why"] else ""
        lines.append(f"  {r['name']:<{width}}  {state:<7}  {','.join(r['precisions']):<19}{note}".rstrip())
    auto = next((r for r in rows if r["use"] == "auto"), None)
    lines.append(f"  --engine auto: {auto['name']}, --precision auto: {auto['auto_precision']}" if auto
                 else "  --engine auto: none installed; pip install onnxruntime")
    cpu = report["cpu"]
    lines += ["", "hardware:",
              f"  GPU: {', '.join(report['gpus']) or 'no NVIDIA GPU'}",
              f"  CPU: {cpu['model']}, {cpu['cores_usable']} usable cores"
              + (f", {', '.join(cpu['features'])}" if cpu["features"] else "")]
    c = report["cache"]
    where = "$VIDSTYLE_CACHE" if c["set_by"] else "set VIDSTYLE_CACHE to move it"
    held = f"{c['files']} files, {_size(c['bytes'])}" if c["exists"] else "not made yet"
    lines += ["", "cache (int8 and region-recompute networks, TensorRT plans):", f"  {c['folder']}  ({held}; {where})"]
    lines += ["", "versions:"] + [f"  {name} {version}" for name, version in report["packages"].items()]
    if report["ffmpeg"]:
        lines.append(f"  FFmpeg ({report['ffmpeg']}, in PyAV)")
    return "\n".join(lines)
