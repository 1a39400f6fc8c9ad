"""Static int8 quantisation of an exported stylizer (onnxruntime QDQ).

``quantize(float_model, style_dim)``: bytes in, bytes out. Activation ranges come from
the calibration pictures bundled in ``vidstyle/data/calibration`` (frames of the sample
clip), each with one built-in style in turn (picture models: random style vectors).
Only the convolutions between the first KEEP_FLOAT_HEAD and the last KEEP_FLOAT_TAIL are
quantised: weights per channel, activations per tensor at the PERCENTILE-th percentile;
weights unsigned on CPUs without VNNI. Why, and what it costs in quality:
docs/design-notes.md and docs/cpu-speed.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from vidstyle.errors import EngineError

CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "data" / "calibration"
KEEP_FLOAT_HEAD, KEEP_FLOAT_TAIL = 2, 3  # convolutions left in float32 at each end
PERCENTILE = 99.99


def cpu_has_vnni() -> bool:
    from vidstyle.engines.cpu import cpu_flags

    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def calibration_frames() -> list[np.ndarray]:
    """The bundled calibration pictures, RGB uint8."""
    import cv2

    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(CALIBRATION_DIR.glob("*.jpg"))]
    frames = [f[: f.shape[0] // 4 * 4, : f.shape[1] // 4 * 4] for f in frames if f is not None]
    if not frames:
        raise EngineError(f"no calibration pictures in {CALIBRATION_DIR}")
    return frames


def calibration_digest() -> str:
    h = hashlib.sha256()
    for p in sorted(CALIBRATION_DIR.glob("*.jpg")):
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def quantize(float_model: bytes, style_dim: int) -> bytes:
    """The int8 QDQ version of an exported float model (bytes in, bytes out)."""
    try:
        import onnx
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
    except ImportError:
        raise EngineError("int8 needs onnxruntime and onnx: pip install onnxruntime onnx") from None

    frames = calibration_frames()
    rng = np.random.default_rng(0)

    class Frames(CalibrationDataReader):
        def __init__(self):
            feeds = []
            for i, frame in enumerate(frames):
                if style_dim == 26:  # each built-in style in turn
                    style = np.eye(style_dim, dtype=np.float32)[i % style_dim]
                else:  # embeddings of pictures are spread around zero
                    style = (0.5 * rng.standard_normal(style_dim)).astype(np.float32)
                feeds.append({"image": frame[None], "style": style})
            self._feeds = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    model = onnx.load_from_string(float_model)
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    inner = convs[KEEP_FLOAT_HEAD:len(convs) - KEEP_FLOAT_TAIL]
    weight_type = QuantType.QInt8 if cpu_has_vnni() else QuantType.QUInt8
    with tempfile.TemporaryDirectory(prefix="vidstyle-int8-") as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(float_model)
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice about pre-processing
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # and its progress prints
                quantize_static(str(src), str(dst), Frames(), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=["Conv"], nodes_to_quantize=inner, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=weight_type,
                                calibrate_method=CalibrationMethod.Percentile,
                                extra_options={"CalibPercentile": PERCENTILE})
        finally:
            logging.getLogger().setLevel(quiet)
        return dst.read_bytes()
