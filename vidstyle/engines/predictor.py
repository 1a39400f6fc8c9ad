"""The style predictor: a picture's style vector, from the shipped ONNX export on
onnxruntime's CPU provider (one small network per style picture: never worth a GPU)."""
from __future__ import annotations

import functools

import numpy as np

from vidstyle.engines.export import onnxruntime
from vidstyle.errors import EngineError


@functools.lru_cache(maxsize=1)
def _session():
    from vidstyle.models import onnx_file

    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    path = onnx_file("style_predictor")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - a damaged install: say which file
        raise EngineError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None


def input_size() -> int:
    """The side of the square picture the predictor takes."""
    return int(_session().get_inputs()[0].shape[1])


def embed(square: np.ndarray) -> np.ndarray:
    """The style vector (D,) float32 of one RGB uint8 picture of ``input_size()`` squared."""
    size = input_size()
    if square.shape != (size, size, 3):
        raise EngineError(f"the style predictor takes {size}x{size} RGB pictures, not {square.shape}")
    return _session().run(None, {"image": np.ascontiguousarray(square, np.uint8)[None]})[0][0]
