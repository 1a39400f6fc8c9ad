"""TF-TRT engine: the Keras network as a SavedModel, converted by TensorFlow's TensorRT
integration (``tf.experimental.tensorrt``) to FP16 (or FP32).

TensorFlow removed TF-TRT in 2.18; 2.17, the last release with it, needs numpy < 2. So
this engine exists for machines that keep such a TensorFlow; everywhere else creating
it is a one-line error pointing to ``--engine tensorrt`` (ONNX -> TensorRT, NVIDIA's
recommended path, trt_engine.py). The version is read from the installed package's
metadata first, so the error costs no TensorFlow import.

The conversion uses dynamic shapes: TF-TRT builds a TensorRT engine for each new input
shape on its first run (the stream's size after the first batch) and keeps up to 16.
Converted models live in a temporary folder for the process; they are not cached.
"""
from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from pathlib import Path

import numpy as np

from vidstyle.errors import EngineError
from vidstyle.engines.base import RunsNow, broadcast_style

PRECISIONS = ("fp16", "fp32")
REMOVED_IN = (2, 18)
_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly", "tensorflow-intel")


def tensorflow_version() -> str | None:
    """The installed TensorFlow's version from package metadata (no import), or None."""
    for dist in _DISTRIBUTIONS:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _release(version: str) -> tuple[int, int]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def unavailable_reason(version: str | None) -> str | None:
    """Why TF-TRT cannot exist with TensorFlow ``version`` (None: it may)."""
    if version is None:
        return ("the tf-trt engine needs TensorFlow <= 2.17 built with TensorRT, and no TensorFlow is "
                "installed; use --engine tensorrt")
    if _release(version) >= REMOVED_IN:
        return (f"TF-TRT was removed in TensorFlow 2.18 (this is TensorFlow {version}); use --engine tensorrt, "
                "which builds TensorRT engines from the ONNX export (docs/gpu.md)")
    return None


def _tftrt():
    reason = unavailable_reason(tensorflow_version())
    if reason:
        raise EngineError(reason)
    from vidstyle.models.tfimport import import_tensorflow

    tf = import_tensorflow()
    trt = getattr(tf.experimental, "tensorrt", None)
    if trt is None or not hasattr(trt, "TrtGraphConverterV2"):
        raise EngineError(f"this TensorFlow ({tf.__version__}) has no tf.experimental.tensorrt; "
                          "use --engine tensorrt")
    return tf, trt


class TFTRTEngine(RunsNow):
    name = "tf-trt"

    def __init__(self, model: str, precision: str = "fp16"):
        if precision not in PRECISIONS:
            raise EngineError(f"the tf-trt engine computes in {' or '.join(PRECISIONS)}, not {precision}")
        tf, trt = _tftrt()
        from vidstyle.engines import gpu

        if not gpu.gpu_present() or not tf.config.list_physical_devices("GPU"):
            raise EngineError("the tf-trt engine needs an NVIDIA GPU that TensorFlow sees; none here")
        from vidstyle.models import pretrained

        self.model, self.precision = model, precision
        keras_model = pretrained(model)
        dim = int(keras_model.inputs[1].shape[-1])

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8),
                                      tf.TensorSpec((None, dim), tf.float32)])
        def stylize(images, style):
            x = tf.cast(images, tf.float32) * (1.0 / 255.0)
            y = tf.cast(keras_model([x, style], training=False), tf.float32)
            return tf.cast(tf.clip_by_value(tf.floor(y * 255.0 + 0.5), 0.0, 255.0), tf.uint8)

        holder = tf.Module()
        holder.model, holder.stylize = keras_model, stylize
        self._dir = Path(tempfile.mkdtemp(prefix="vidstyle-tftrt-"))
        source, converted = self._dir / "savedmodel", self._dir / "tftrt"
        try:
            tf.saved_model.save(holder, str(source), signatures={"serving_default": stylize})
            params = trt.TrtConversionParams(
                precision_mode=trt.TrtPrecisionMode.FP16 if precision == "fp16" else trt.TrtPrecisionMode.FP32,
                maximum_cached_engines=16)
            converter = trt.TrtGraphConverterV2(input_saved_model_dir=str(source), conversion_params=params,
                                                use_dynamic_shape=True, dynamic_shape_profile_strategy="Optimal")
            converter.convert()
            converter.save(str(converted))
            self._fn = tf.saved_model.load(str(converted)).signatures["serving_default"]
        except EngineError:
            raise
        except Exception as exc:  # noqa: BLE001 - TF-TRT's own message, in one line
            shutil.rmtree(self._dir, ignore_errors=True)
            raise EngineError(f"TF-TRT could not convert {model}: {str(exc).strip().splitlines()[-1]}") from None
        self._tf = tf

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        if h % 4 or w % 4:
            raise EngineError(f"frame size {w}x{h} is not a multiple of 4")
        out = self._fn(images=self._tf.constant(batch), style=self._tf.constant(broadcast_style(style, n)))
        return next(iter(out.values())).numpy()

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
