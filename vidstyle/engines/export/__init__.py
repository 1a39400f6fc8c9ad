"""The ONNX files engines run: exported from the Keras models, converted, cached."""
from __future__ import annotations

from vidstyle.engines.export import model_cache
from vidstyle.errors import EngineError


def onnxruntime():
    """The onnxruntime module, or a one-line error naming the package."""
    try:
        import onnxruntime
    except ImportError:
        raise EngineError("the onnxruntime engine needs onnxruntime: pip install onnxruntime") from None
    return onnxruntime


def model_file(model: str, precision: str, norms: str = "plain"):
    """The cached ONNX file of ``model`` at ``precision``, exported (and quantised) if missing.
    ``norms`` "stats" or "frozen": the float32 variants region recompute runs (onnx_export)."""
    import onnx

    ort = onnxruntime()
    versions = {"onnx": onnx.__version__}

    def export_float(variant: str = "plain") -> bytes:
        from vidstyle.models import pretrained
        from vidstyle.engines.export.onnx_export import export

        return export(pretrained(model), model, norms=variant).SerializeToString()

    if norms != "plain":
        if precision != "fp32":
            raise ValueError("frozen or measured norm statistics come in float32 only")
        return model_cache.cached(model_cache.key(model, "fp32", norms=norms, **versions), ".onnx",
                                  lambda: export_float(norms))
    float_path = model_cache.cached(model_cache.key(model, "fp32", **versions), ".onnx", export_float)
    if precision == "fp32":
        return float_path
    from vidstyle.engines.export import quantize

    def build_int8() -> bytes:
        from vidstyle.models import pretrained

        return quantize.quantize(float_path.read_bytes(), int(pretrained(model).inputs[1].shape[-1]))

    parts = {**versions, "ort": ort.__version__, "cal": quantize.calibration_digest(),
             "vnni": str(quantize.cpu_has_vnni())}
    return model_cache.cached(model_cache.key(model, "int8", **parts), ".onnx", build_int8)
