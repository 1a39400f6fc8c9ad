"""Inference engines: ``run(batch_uint8_nhwc, style) -> batch_uint8_nhwc`` (:mod:`vidstyle.engines.base`).

``available()`` lists the engines that can run here, fastest first; ``resolve`` turns
``auto`` into the fastest installed one that computes in the precision; ``create``
returns the engine, shared per process for the same model and settings. Each engine
imports its runtime lazily, so a missing optional runtime is a clear error at selection
time, never an ImportError at ``import vidstyle``.
"""
from __future__ import annotations

import importlib.util
import threading

from vidstyle.errors import EngineError
from vidstyle.engines.base import Engine

ENGINES = ("tensorrt", "torch", "onnxruntime-cuda", "onnxruntime", "tf", "tf-trt")
PRECISIONS = ("auto", "fp32", "fp16", "bf16", "int8")


def available() -> list[str]:
    """Engines that can run here, fastest first: on an NVIDIA machine TensorRT, then PyTorch
    with CUDA, then onnxruntime on CUDA, then the CPU engines. tf-trt is never listed (it
    converts for minutes and exists only in TensorFlow <= 2.17), nor torch on a machine
    without a GPU (onnxruntime is faster there): ask for them by name."""
    from vidstyle.engines import gpu

    # find_spec, not import: choosing an engine must not pay TensorFlow's start-up, and
    # on a machine without a GPU nothing GPU-side is imported or probed beyond /proc.
    found = []
    if gpu.gpu_present():
        if gpu.tensorrt_installed():
            found.append("tensorrt")
        if gpu.torch_cuda_available():
            found.append("torch")
        if gpu.ort_cuda_available():
            found.append("onnxruntime-cuda")
    return found + [name for name, module in (("onnxruntime", "onnxruntime"), ("tf", "tensorflow"))
                    if importlib.util.find_spec(module)]


# Which engine computes which precision: bf16 through PyTorch or TensorFlow's oneDNN
# kernels, int8 through onnxruntime's on the CPU, fp16 through TensorRT, PyTorch (and
# TF-TRT); fp32 on all.
PRECISION_ENGINES = {"fp32": ("tensorrt", "torch", "onnxruntime-cuda", "onnxruntime", "tf", "tf-trt"),
                     "fp16": ("tensorrt", "torch", "tf-trt"), "bf16": ("torch", "tf"), "int8": ("onnxruntime",)}
# What "auto" computes in, per engine: the GPU engines in fp16 (their fast path), the CPU
# ones in fp32 (docs/cpu-speed.md). The torch engine decides by its device.
AUTO_PRECISION = {"tensorrt": "fp16", "tf-trt": "fp16"}


def resolve(name: str, precision: str = "auto") -> str:
    """The engine ``name`` stands for: "auto" is the fastest installed one that computes in
    ``precision`` (auto: float32; see docs/cpu-speed.md for why)."""
    can = PRECISION_ENGINES["fp32" if precision == "auto" else precision]
    if name == "auto":
        present = [e for e in available() if e in can]
        if not present:
            hint = ("onnxruntime" if "onnxruntime" in can else "'vidstyle[tf]'" if "tf" in can
                    else "'vidstyle[gpu]' on a machine with an NVIDIA GPU (docs/gpu.md)")
            raise EngineError(f"no installed engine computes in {precision}; pip install {hint}")
        return present[0]
    if name in ENGINES and name not in can:
        raise EngineError(f"the {name} engine does not compute in {precision}; {' or '.join(can)} does")
    return name


def create(name: str, model: str, threads: int = 0, precision: str = "auto") -> Engine:
    """An engine for ``model`` (a name from vidstyle.models.MODEL_NAMES) computing in
    ``precision`` (auto: the engine's fastest that keeps the quality bound)."""
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    name = resolve(name, precision)
    if name == "tf":
        from vidstyle.engines.tf_engine import shared_engine

        return shared_engine(model, threads, "fp32" if precision == "auto" else precision)
    if name == "onnxruntime":
        return _shared_ort(model, threads, "fp32" if precision == "auto" else precision)
    if name == "torch":
        from vidstyle.engines.torch_engine import shared_engine as shared_torch

        return shared_torch(model, precision, threads=threads)
    if precision == "auto":
        precision = AUTO_PRECISION.get(name, "fp32")
    if name == "onnxruntime-cuda":
        return _shared_ort(model, threads, precision, device="cuda")
    if name == "tensorrt":
        from vidstyle.engines.trt_engine import shared_engine as shared_trt

        return shared_trt(model, precision)
    if name == "tf-trt":
        from vidstyle.engines.tftrt_engine import TFTRTEngine

        return TFTRTEngine(model, precision=precision)
    raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available()) or 'none'}")


_ORT: dict[tuple, Engine] = {}
_ORT_LOCK = threading.Lock()


def _shared_ort(model: str, threads: int, precision: str, device: str = "cpu") -> Engine:
    """One onnxruntime session per (model, threads, precision, device) per process:
    sessions are safe to call from several threads, and a second pipeline skips loading
    the file."""
    from vidstyle.engines.ort_engine import ORTEngine

    key = (model, threads, precision) if device == "cpu" else (model, threads, precision, device)
    with _ORT_LOCK:
        if key not in _ORT:
            _ORT[key] = ORTEngine(model, threads=threads, precision=precision, device=device)
        return _ORT[key]
