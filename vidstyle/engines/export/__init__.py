"""The ONNX files engines run: the networks' shipped exports and what is made from them
(int8, the region-recompute variants), cached."""
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


def onnx():
    """The onnx module, or a one-line error naming the package."""
    try:
        import onnx
    except ImportError:
        raise EngineError("rewriting ONNX files needs onnx: pip install onnx") from None
    return onnx


def style_dim(onnx_bytes: bytes) -> int:
    """The length D of an exported stylizer's ``style`` input (read from the file)."""
    graph = onnx().ModelProto.FromString(onnx_bytes).graph
    style = next(i for i in graph.input if i.name == "style")
    return int(style.type.tensor_type.shape.dim[-1].dim_value)


def model_file(model: str, precision: str, norms: str = "plain"):
    """The ONNX file of ``model`` at ``precision``: float32 is the file shipped with the
    package; int8 is quantised from it on first use and cached. ``norms`` "stats" or
    "frozen": the float32 variants region recompute runs (export/norm_variants.py)."""
    from vidstyle.models import onnx_file

    plain = onnx_file(model)
    if norms != "plain":
        if precision != "fp32":
            raise ValueError("frozen or measured norm statistics come in float32 only")
        from vidstyle.engines.export.norm_variants import variant_bytes

        return model_cache.cached(model_cache.key(model, "fp32", norms=norms, onnx=onnx().__version__), ".onnx",
                                  lambda: variant_bytes(plain.read_bytes(), norms))
    if precision == "fp32":
        return plain
    from vidstyle.engines.export import quantize

    def build_int8() -> bytes:
        data = plain.read_bytes()
        return quantize.quantize(data, style_dim(data))

    parts = {"onnx": onnx().__version__, "ort": onnxruntime().__version__, "cal": quantize.calibration_digest(),
             "vnni": str(quantize.cpu_has_vnni())}
    return model_cache.cached(model_cache.key(model, "int8", **parts), ".onnx", build_int8)
