"""The 26-style feed-forward network (Dumoulin et al. 2017, as shipped by Magenta).

Layout: reflect-pad convs 9x9/32, 3x3/32 s2, 3x3/32 s2; six residual blocks of
32 channels; two nearest-upsample + 3x3 conv stages (32->8->4); a 9x9 conv to 3
and a sigmoid. Every conv is followed by conditional instance norm, so the
convs carry no bias. Fully convolutional: H and W must be multiples of 4 so the
two stride-2 convs and the two upsamplings give back the input size.
"""
from __future__ import annotations

import keras
from keras import layers

from vidstyle.models import NUM_STYLES
from vidstyle.models.layers import ConditionalInstanceNorm, ReflectPad


def _conv_norm(x, w, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
    x = ReflectPad(kernel // 2, name=f"{name}.pad")(x)
    x = layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=f"{name}.conv")(x)
    x = ConditionalInstanceNorm(NUM_STYLES, name=f"{name}.norm")(x, w)
    return layers.ReLU(name=f"{name}.relu")(x) if relu else x


def _residual(x, w, name: str):
    h = _conv_norm(x, w, 32, 3, 1, f"{name}.0")
    h = _conv_norm(h, w, 32, 3, 1, f"{name}.1", relu=False)
    return layers.Add(name=f"{name}.add")([x, h])


def _upsample_conv(x, w, filters: int, name: str):
    x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}.up")(x)
    return _conv_norm(x, w, filters, 3, 1, name)


def build_multistyle() -> keras.Model:
    """Float model: image (B,H,W,3) in [0,1] and style weights (B,26) -> (B,H,W,3) in [0,1]."""
    image = keras.Input((None, None, 3), name="image")
    weights = keras.Input((NUM_STYLES,), name="style")
    x = _conv_norm(image, weights, 32, 9, 1, "contract.0")
    x = _conv_norm(x, weights, 32, 3, 2, "contract.1")
    x = _conv_norm(x, weights, 32, 3, 2, "contract.2")
    for i in range(6):
        x = _residual(x, weights, f"res.{i}")
    x = _upsample_conv(x, weights, 8, "expand.0")
    x = _upsample_conv(x, weights, 4, "expand.1")
    x = _conv_norm(x, weights, 3, 9, 1, "expand.2", relu=False)
    out = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model([image, weights], out, name="multistyle26")
