"""onnxruntime engine: the Keras network exported to ONNX (float32, or int8 QDQ), run by
onnxruntime on the CPU.

The exported file is cached on disk (engines/model_cache.py), so only the first run of a
network at a precision pays for the export (about a second) or the int8 calibration
(about half a minute). One session serves every frame size: the graph's N, H and W are
free, and onnxruntime plans each new shape on its first run.
"""
from __future__ import annotations

import numpy as np

from ..errors import EngineError
from . import model_cache

PRECISIONS = ("fp32", "int8")


def _runtime():
    try:
        import onnxruntime
    except ImportError:
        raise EngineError("the onnxruntime engine needs onnxruntime: pip install onnxruntime") from None
    return onnxruntime


def model_file(model: str, precision: str):
    """The cached ONNX file of ``model`` at ``precision``, exported (and quantised) if missing."""
    import onnx

    ort = _runtime()
    versions = {"onnx": onnx.__version__}

    def export_float() -> bytes:
        from ..models import pretrained
        from .onnx_export import export

        return export(pretrained(model), model).SerializeToString()

    float_path = model_cache.cached(model_cache.key(model, "fp32", **versions), ".onnx", export_float)
    if precision == "fp32":
        return float_path
    from . import quantize

    def build_int8() -> bytes:
        from ..models import pretrained

        return quantize.quantize(float_path.read_bytes(), int(pretrained(model).inputs[1].shape[-1]))

    parts = {**versions, "ort": ort.__version__, "cal": quantize.calibration_digest(),
             "vnni": str(quantize.cpu_has_vnni())}
    return model_cache.cached(model_cache.key(model, "int8", **parts), ".onnx", build_int8)


class ORTEngine:
    name = "onnxruntime"

    def __init__(self, model: str, threads: int = 0, precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise EngineError(f"the onnxruntime engine computes in {' or '.join(PRECISIONS)}, not {precision}")
        ort = _runtime()
        self.model, self.precision = model, precision
        path = model_file(model, precision)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            opts.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # a damaged cache file: say which, so it can be deleted
            raise EngineError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        self._closed = False

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        if h % 4 or w % 4:
            raise EngineError(f"frame size {w}x{h} is not a multiple of 4")
        style = np.asarray(style, np.float32)
        batch = np.ascontiguousarray(batch, np.uint8)
        if style.ndim == 1 or (style == style[:1]).all():
            # The graph mixes one style's normalisation tables for the whole batch.
            return self._session.run(None, {"image": batch, "style": np.ascontiguousarray(style.reshape(-1, style.shape[-1])[0])})[0]
        return np.concatenate([self._session.run(None, {"image": batch[i:i + 1], "style": style[i]})[0] for i in range(n)])

    def close(self) -> None:
        self._closed = True
