"""TensorFlow engine: the Keras model inside a ``tf.function`` with uint8 in and out.

The float conversion and the final scaling/rounding live in the graph, so the
host moves a quarter of the bytes and TensorFlow can fuse them into the
first and last convolutions.
"""
from __future__ import annotations

import threading

import numpy as np

from vidstyle.errors import EngineError
from vidstyle.engines.base import RunsNow, broadcast_style


def configure_threads(threads: int) -> None:
    """Set TensorFlow's intra-op pool size; 0 keeps TensorFlow's default (one per core).

    TensorFlow only accepts this before its runtime starts, so a second engine
    asking for a different count in the same process gets a clear error.
    """
    import tensorflow as tf

    if threads <= 0 or tf.config.threading.get_intra_op_parallelism_threads() == threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:
        raise EngineError(
            f"cannot set TensorFlow to {threads} threads: its runtime already started with "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'}"
        ) from None


_SHARED: dict[tuple[str, int, str], "TFEngine"] = {}
_SHARED_LOCK = threading.RLock()


def shared_engine(model: str, threads: int = 0, precision: str = "fp32") -> "TFEngine":
    """One engine per (model, threads, precision) per process, so a second transcode of the
    same shape reuses the traced graph instead of paying the trace again."""
    with _SHARED_LOCK:
        if (model, threads, precision) not in _SHARED:
            _SHARED[(model, threads, precision)] = TFEngine(model, threads=threads, precision=precision)
        return _SHARED[(model, threads, precision)]


def bf16_network(name: str):
    """``name`` computing in bfloat16 with float32 weights (Keras' mixed_bfloat16 policy),
    loaded with the same weights file as the float32 network."""
    import keras

    from vidstyle.models import WEIGHTS_DIR, _builder, load_weights

    with _SHARED_LOCK:  # the dtype policy is global while the layers are made
        before = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_bfloat16")
        try:
            model = _builder(name)()
        finally:
            keras.config.set_dtype_policy(before)
    load_weights(model, WEIGHTS_DIR / f"{name}.npz")
    return model


class TFEngine(RunsNow):
    name = "tf"

    def __init__(self, model: str, threads: int = 0, jit_compile: bool = False, precision: str = "fp32"):
        from vidstyle.models import TF_EXTRA, pretrained
        from vidstyle.models.tfimport import import_tensorflow

        try:
            tf = import_tensorflow()
        except ImportError:
            raise EngineError(f"the tf engine needs TensorFlow, which is not installed: {TF_EXTRA}") from None

        if precision not in ("fp32", "bf16"):
            raise EngineError(f"the tf engine computes in fp32 or bf16, not {precision}")
        configure_threads(threads)
        self._tf = tf
        self.model, self.precision = model, precision
        self._keras = pretrained(model) if precision == "fp32" else bf16_network(model)
        self._jit = jit_compile
        self._compiled: dict[tuple[int, int, int], object] = {}
        self._lock = threading.Lock()  # shared engines may be called from two pipelines

    def _function(self, n: int, h: int, w: int, dim: int):
        key = (n, h, w)
        if key not in self._compiled:
            tf, keras_model = self._tf, self._keras

            @tf.function(
                input_signature=[tf.TensorSpec((n, h, w, 3), tf.uint8), tf.TensorSpec((n, dim), tf.float32)],
                jit_compile=self._jit,
                reduce_retracing=False,
            )
            def stylize(images, style):
                x = tf.cast(images, tf.float32) * (1.0 / 255.0)
                y = tf.cast(keras_model([x, style], training=False), tf.float32)
                return tf.cast(tf.clip_by_value(tf.floor(y * 255.0 + 0.5), 0.0, 255.0), tf.uint8)

            self._compiled[key] = stylize
        return self._compiled[key]

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        if h % 4 or w % 4:
            raise EngineError(f"frame size {w}x{h} is not a multiple of 4")
        style = broadcast_style(style, n)
        with self._lock:
            fn = self._function(n, h, w, style.shape[1])
        return fn(batch, style).numpy()

    def close(self) -> None:
        self._compiled.clear()
