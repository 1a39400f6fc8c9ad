"""MAC counting against hand counts, the measured matmul peak, and efficiency arithmetic."""
from __future__ import annotations

import math

import pytest

from vidstyle.measure import flops
from vidstyle.models.tfimport import import_tensorflow

import_tensorflow()
import keras  # noqa: E402  (after the quiet TensorFlow import)
from keras import layers  # noqa: E402


def tiny_net():
    """3x3 conv, stride-2 3x3 conv, 1x1 conv, upsampling, Dense over channels."""
    x = keras.Input((None, None, 3))
    h = layers.Conv2D(4, 3, padding="same", name="c1")(x)
    h = layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(h)
    h = layers.Conv2D(6, 1, name="c3")(layers.ReLU()(h))
    h = layers.UpSampling2D(2, name="up")(h)
    return keras.Model(x, layers.Dense(5, name="d")(h))


def tiny_macs(h: int, w: int) -> int:
    """By hand: one MAC per kernel weight per output pixel."""
    half = (h // 2) * (w // 2)
    return h * w * 3 * 3 * 3 * 4 + half * 3 * 3 * 4 * 8 + half * 8 * 6 + h * w * 6 * 5


def test_tiny_network_exact():
    assert flops.multiply_adds(tiny_net(), 16, 12) == tiny_macs(16, 12) == 42_624
    costs = flops.per_layer(tiny_net(), 16, 12)
    counted = [(c.name, c.kind) for c in costs if c.macs]
    assert counted == [("c1", "conv"), ("c2", "conv"), ("c3", "conv"), ("d", "dense")]
    assert {c.kind for c in costs if not c.macs} == {"elementwise"}  # relu, upsampling


def test_fully_convolutional_cost_scales_with_pixels():
    model = tiny_net()
    assert flops.multiply_adds(model, 64, 48) == 4 * flops.multiply_adds(model, 32, 24) == tiny_macs(64, 48)


def test_depthwise_grouped_and_nested():
    x = keras.Input((None, None, 4))
    h = layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(x)  # valid: 10x10 -> 8x8, 8 channels
    inner_in = keras.Input((None, None, 8))
    inner = keras.Model(inner_in, layers.Conv2D(6, 3, padding="same", groups=2, name="g")(inner_in), name="inner")
    seq = keras.Sequential([keras.Input((None, None, 6)), layers.Conv2D(2, 1, name="pw")], name="seq")
    model = keras.Model(x, seq(inner(h)))
    dw, grouped, pointwise = 64 * 3 * 3 * 4 * 2, 64 * 3 * 3 * (8 // 2) * 6, 64 * 6 * 2
    costs = flops.per_layer(model, 10, 10)
    assert [(c.name, c.kind, c.macs) for c in costs] == [
        ("dw", "depthwise", dw), ("inner/g", "conv", grouped), ("seq/pw", "conv", pointwise)]
    assert not any("compute_output_spec" in vars(layer) for layer in (*model.layers, *inner.layers))


def test_style_norms_counted_per_element():
    from vidstyle.models.layers import ConditionalInstanceNorm, StyleNorm

    x, s = keras.Input((None, None, 3)), keras.Input((2,))
    h = layers.Conv2D(4, 1, use_bias=False)(x)
    h = ConditionalInstanceNorm(2)(h, s)
    h = StyleNorm()(h, s)
    model = keras.Model([x, s], h)
    per_norm = flops.STATS_NORM_MACS_PER_ELEMENT * 8 * 8 * 4 + 2 * 2 * 4  # elements + gamma/beta mixing
    assert flops.multiply_adds(model, 8, 8) == 8 * 8 * 3 * 4 + 2 * per_norm


def test_fixed_input_size_must_match():
    x = keras.Input((32, 32, 3))
    model = keras.Model(x, layers.Conv2D(2, 3)(x))
    assert flops.multiply_adds(model, 32, 32) == 30 * 30 * 3 * 3 * 3 * 2
    with pytest.raises(ValueError, match="fixed"):
        flops.multiply_adds(model, 64, 64)


def test_unknown_weighted_layer_warns():
    x = keras.Input((None, None, 3))
    model = keras.Model(x, layers.Conv2DTranspose(2, 3)(layers.PReLU(shared_axes=[1, 2])(x)))
    with pytest.warns(UserWarning, match="PReLU|p_re_lu"):
        assert flops.multiply_adds(model, 4, 4) == 4 * 4 * 3 * 3 * 2 * 3  # transpose: per input pixel


def test_multistyle_per_pixel_matches_design():
    """The design states ~19.4k MACs per pixel (5.96 G per 640x480 frame): that
    is the convolutions exactly; the norms add ~1.2% on top. Loads the weights
    (under a second) but runs no inference."""
    from vidstyle.models import pretrained

    costs = flops.per_layer(pretrained("multistyle26"), 480, 640)
    conv = sum(c.macs for c in costs if c.kind == "conv")
    assert conv == 19_404 * 640 * 480
    total = sum(c.macs for c in costs)
    assert total / (640 * 480) == pytest.approx(19_400, rel=0.03)


def test_matmul_peak_is_a_rate():
    for backend in ("tensorflow", "numpy"):
        peak = flops.matmul_peak(seconds=0.2, size=256, backend=backend)
        assert peak > 0 and math.isfinite(peak)
    with pytest.raises(ValueError):
        flops.matmul_peak(0.01, 8, backend="torch")


def test_efficiency():
    # 10 fps x 2 x 6e9 MACs = 120 GFLOP/s achieved, of a 480 GFLOP/s peak.
    assert flops.efficiency(10, 6e9, 480e9) == pytest.approx(0.25)
    assert flops.efficiency(0, 6e9, 1e9) == 0
    with pytest.raises(ValueError):
        flops.efficiency(1, 1, 0)
