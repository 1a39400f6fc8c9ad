"""Inference engines: ``run(batch_uint8_nhwc, style) -> batch_uint8_nhwc``.

Each engine imports its runtime lazily, so a missing optional runtime is a
clear error at selection time, never an ImportError at ``import vidstyle``.
"""
from __future__ import annotations

import importlib.util
import threading

from ..errors import EngineError
from .base import Engine

ENGINES = ("onnxruntime", "tf")
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def available() -> list[str]:
    """Engines that can run here, fastest first."""
    # find_spec, not import: choosing an engine must not pay TensorFlow's start-up.
    return [name for name, module in (("onnxruntime", "onnxruntime"), ("tf", "tensorflow"))
            if importlib.util.find_spec(module)]


# Which engine computes which precision: bf16 through TensorFlow's oneDNN kernels, int8
# through onnxruntime's; fp32 on both.
PRECISION_ENGINES = {"fp32": ("onnxruntime", "tf"), "bf16": ("tf",), "int8": ("onnxruntime",)}


def resolve(name: str, precision: str = "auto") -> str:
    """The engine ``name`` stands for: "auto" is the fastest installed one that computes in
    ``precision`` (auto: float32; see docs/cpu-speed.md for why)."""
    can = PRECISION_ENGINES["fp32" if precision == "auto" else precision]
    if name == "auto":
        present = [e for e in available() if e in can]
        if not present:
            raise EngineError(f"no installed engine computes in {precision}; pip install "
                              + ("onnxruntime" if "onnxruntime" in can else "tensorflow"))
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
        from .tf_engine import shared_engine

        return shared_engine(model, threads, "fp32" if precision == "auto" else precision)
    if name == "onnxruntime":
        return _shared_ort(model, threads, "fp32" if precision == "auto" else precision)
    raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available()) or 'none'}")


_ORT: dict[tuple[str, int, str], Engine] = {}
_ORT_LOCK = threading.Lock()


def _shared_ort(model: str, threads: int, precision: str) -> Engine:
    """One onnxruntime session per (model, threads, precision) per process: sessions are
    safe to call from several threads, and a second pipeline skips loading the file."""
    from .ort_engine import ORTEngine

    with _ORT_LOCK:
        if (model, threads, precision) not in _ORT:
            _ORT[(model, threads, precision)] = ORTEngine(model, threads=threads, precision=precision)
        return _ORT[(model, threads, precision)]
