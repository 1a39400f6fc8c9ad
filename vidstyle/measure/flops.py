"""Arithmetic cost of the stylizers and the machine's measured matmul peak.

* ``multiply_adds(model, h, w)``: multiply-adds (MACs) of one forward pass on one
  h x w image, counted from the layers themselves; ``FLOPs = 2 * MACs``.
  ``per_layer`` gives the breakdown.
* ``matmul_peak()``: float32 matmul FLOP/s measured in this process.
* ``efficiency(fps, macs_per_frame, peak_flops)``: what ``vidstyle bench`` reports.

Convolutions and Dense layers are counted exactly, normalisations estimated, weightless
layers count 0; a weighted layer of an unknown kind counts 0 with a warning. The rules
and why: docs/design-notes.md.
"""
from __future__ import annotations

import math
import time
import warnings
from typing import NamedTuple

import numpy as np

# Instance-style norms compute statistics and then apply them: about one add
# per element for the mean, one multiply-add for the squared deviation and
# one multiply-add for x * scale + shift (scale = gamma / std, per channel).
STATS_NORM_MACS_PER_ELEMENT = 3
# Inference batch norm uses stored statistics: just x * scale + shift.
AFFINE_NORM_MACS_PER_ELEMENT = 1


class LayerCost(NamedTuple):
    name: str  # "outer/inner" for layers of nested models
    kind: str  # conv, depthwise, separable, conv_transpose, dense, norm, elementwise, uncounted
    macs: int


def _leaves(model, prefix: str = ""):
    """(layer, qualified name) for every non-input layer, descending into nested
    functional/Sequential models, whose graphs are walked layer by layer."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) and getattr(layer, "inputs", None):
            yield from _leaves(layer, f"{prefix}{layer.name}/")
        else:
            yield layer, prefix + layer.name


def _input_specs(model, height: int, width: int):
    """Symbolic inputs of batch 1: image inputs (rank 4) get height x width where
    the model leaves them free; other inputs (style vectors) keep their shape."""
    import keras

    specs = []
    for x in model.inputs:
        shape = [1, *x.shape[1:]]
        if len(shape) == 4:
            for axis, size in ((1, height), (2, width)):
                if shape[axis] is None:
                    shape[axis] = size
                elif shape[axis] != size:
                    raise ValueError(f"{model.name} input {x.name} is fixed at {x.shape[1:3]}, not {height}x{width}")
        if None in shape:
            raise ValueError(f"{model.name} input {x.name} has a free dimension other than H, W: {x.shape}")
        specs.append(keras.KerasTensor(tuple(shape), dtype=x.dtype))
    return specs


def _trace(model, height: int, width: int):
    """[(name, layer, input specs, output spec)] in call order, from one symbolic
    (shape-only, no arithmetic) pass: each leaf layer's ``compute_output_spec``
    is shadowed for the duration by a recorder, so shared layers count once
    per call and nested models need no graph walking of our own."""
    calls, leaves = [], list(_leaves(model))
    try:
        for layer, name in leaves:
            def spy(*args, _layer=layer, _name=name, _orig=layer.compute_output_spec, **kwargs):
                out = _orig(*args, **kwargs)
                calls.append((_name, _layer, args, out))
                return out

            object.__setattr__(layer, "compute_output_spec", spy)
        specs = _input_specs(model, height, width)
        model.compute_output_spec(specs if len(specs) > 1 else specs[0])
    finally:
        for layer, _ in leaves:
            vars(layer).pop("compute_output_spec", None)
    return calls


def _positions(shape) -> int:
    """Output positions: every axis but the channels (batch is 1)."""
    return math.prod(shape[:-1])


def _cost(layer, args, out) -> tuple[str, int]:
    from keras import layers as L

    from vidstyle.models.layers import ConditionalInstanceNorm, StyleNorm

    def size(w):
        return math.prod(w.shape)

    if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)):
        return "depthwise", _positions(out.shape) * size(layer.kernel)  # kernel (k.., C_in, multiplier)
    if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
        return "separable", _positions(out.shape) * (size(layer.depthwise_kernel) + size(layer.pointwise_kernel))
    if isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
        # Each input position scatters through the whole kernel (k.., C_out, C_in).
        return "conv_transpose", _positions(args[0].shape) * size(layer.kernel)
    if isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
        return "conv", _positions(out.shape) * size(layer.kernel)  # kernel (k.., C_in / groups, C_out)
    if isinstance(layer, L.Dense):
        return "dense", _positions(out.shape) * size(layer.kernel)
    if isinstance(layer, (ConditionalInstanceNorm, StyleNorm)):
        # Plus the per-image gamma and beta: two (1, D) @ (D, C) products.
        mix = 2 * size(layer.gamma if isinstance(layer, ConditionalInstanceNorm) else layer.gamma_kernel)
        return "norm", STATS_NORM_MACS_PER_ELEMENT * size(out) + mix
    if isinstance(layer, (L.LayerNormalization, L.GroupNormalization)):
        return "norm", STATS_NORM_MACS_PER_ELEMENT * size(out)
    if isinstance(layer, L.BatchNormalization):
        return "norm", AFFINE_NORM_MACS_PER_ELEMENT * size(out)
    return ("uncounted" if layer.weights else "elementwise"), 0


def per_layer(model, height: int, width: int) -> list[LayerCost]:
    """MACs of each layer call for one height x width image, in call order."""
    return [LayerCost(name, *_cost(layer, args, out)) for name, layer, args, out in _trace(model, height, width)]


def multiply_adds(model, height: int, width: int) -> int:
    """Multiply-adds of one forward pass of ``model`` on one height x width image
    (batch 1; a batch of B costs B times this). FLOPs are twice this."""
    costs = per_layer(model, height, width)
    missing = sorted({c.name for c in costs if c.kind == "uncounted"})
    if missing:
        warnings.warn(f"{model.name}: no MAC rule for weighted layers {missing}; counted as 0", stacklevel=2)
    return sum(c.macs for c in costs)


def matmul_peak(seconds: float = 2.0, size: int = 2048, backend: str = "tensorflow") -> float:
    """Measured float32 matmul peak of this machine in FLOP/s (2 n^3 per product).

    Repeats ``size x size @ size x size`` products for about ``seconds`` (at
    least three) after one warm-up, and keeps the fastest: the best case is
    the peak, and slower runs are other load on a shared machine. "tensorflow"
    uses TF's own CPU matmul (oneDNN/Eigen, all intra-op threads), the path
    the stylizers' convolutions take; "numpy" uses numpy's BLAS, for
    comparison. Default ~2 s; n = 2048 is big enough to reach the plateau.
    """
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    if backend == "tensorflow":
        from vidstyle.models.tfimport import import_tensorflow

        tf = import_tensorflow()
        a, b = tf.constant(a), tf.constant(b)
        # Eager CPU ops run synchronously; reading one element makes sure.
        product = lambda: tf.linalg.matmul(a, b)[0, 0].numpy()  # noqa: E731
    elif backend == "numpy":
        product = lambda: a @ b  # noqa: E731
    else:
        raise ValueError(f"unknown backend {backend!r}: tensorflow or numpy")
    product()  # warm-up: thread pool start, kernel selection, page faults
    best, reps, deadline = math.inf, 0, time.perf_counter() + seconds
    while reps < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - start)
        reps += 1
    return 2 * size**3 / best


def efficiency(fps: float, macs_per_frame: float, peak_flops: float) -> float:
    """Achieved FLOP/s (fps x 2 x MACs per frame) as a fraction of ``peak_flops``."""
    if not peak_flops > 0:
        raise ValueError(f"peak FLOP/s must be positive, got {peak_flops}")
    return fps * 2 * macs_per_frame / peak_flops
