"""Arbitrary-style networks (Ghiasi et al. 2017, "Exploring the structure of a
real-time, arbitrary neural artistic stylization network"), in the small form
TensorFlow's style transfer tutorial ships.

* ``build_predictor``: MobileNet-v2 over a 256x256 style picture, global
  average pool, 1x1 conv to a 100-d style vector.
* ``build_transformer``: a 32-channel encoder/decoder whose instance-norm
  parameters are affine in that vector. The shipped int8 graph is fixed at
  384x384; this one is fully convolutional (H, W multiples of 4).
"""
from __future__ import annotations

import keras
from keras import layers

from vidstyle.models import STYLE_DIM, STYLE_IMAGE_SIZE
from vidstyle.models.layers import ReflectPad, StyleNorm

NORM_EPS = 1e-5  # read from the source graph (StyleNorm/batchnorm/add/y)


# -- transformer ------------------------------------------------------------

def _conv(x, filters: int, kernel: int, stride: int, name: str):
    x = ReflectPad(kernel // 2, name=f"{name}.pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, name=f"{name}.conv")(x)


def _conv_style_norm(x, s, filters: int, kernel: int, name: str, activation: str | None = "relu"):
    x = _conv(x, filters, kernel, 1, name)
    x = StyleNorm(NORM_EPS, name=f"{name}.norm")(x, s)
    return layers.Activation(activation, name=f"{name}.act")(x) if activation else x


def _residual(x, s, name: str):
    h = _conv_style_norm(x, s, 32, 3, f"{name}.conv1")
    h = _conv_style_norm(h, s, 32, 3, f"{name}.conv2", activation=None)
    return layers.Add(name=f"{name}.add")([x, h])


def build_transformer() -> keras.Model:
    """Float model: image (B,H,W,3) in [0,1] and style vector (B,100) -> (B,H,W,3) in [0,1]."""
    image = keras.Input((None, None, 3), name="image")
    style = keras.Input((STYLE_DIM,), name="style")
    x = image
    # The encoder's batch norms were folded into conv biases by the exporter.
    for i, (filters, kernel, stride) in enumerate([(8, 9, 1), (16, 3, 2), (32, 3, 2)], start=1):
        x = layers.ReLU(name=f"contract.conv{i}.relu")(_conv(x, filters, kernel, stride, f"contract.conv{i}"))
    for i in range(1, 6):
        x = _residual(x, style, f"residual{i}")
    for i, filters in enumerate([16, 8], start=1):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"expand.conv{i}.up")(x)
        x = _conv_style_norm(x, style, filters, 3, f"expand.conv{i}")
    out = _conv_style_norm(x, style, 3, 9, "expand.conv3", activation="sigmoid")
    return keras.Model([image, style], out, name="arbitrary_transformer")


# -- style predictor ----------------------------------------------------------

# (expansion, output channels, repeats, first stride): MobileNet-v2, width 1.0
_MOBILENET_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _relu6(name: str):
    return layers.ReLU(6.0, name=name)


def _inverted_residual(x, expansion: int, filters: int, stride: int, name: str):
    """Sandler et al. 2018: 1x1 expand, 3x3 depthwise, linear 1x1 projection."""
    c = x.shape[-1]
    h = x
    if expansion != 1:
        h = _relu6(f"{name}.expand.relu6")(layers.Conv2D(c * expansion, 1, name=f"{name}.expand")(h))
    # TF "same" padding puts the odd pixel after, matching the exported graph.
    h = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"{name}.depthwise")(h)
    h = _relu6(f"{name}.depthwise.relu6")(h)
    h = layers.Conv2D(filters, 1, name=f"{name}.project")(h)
    if stride == 1 and c == filters:
        h = layers.Add(name=f"{name}.add")([x, h])
    return h


def build_predictor() -> keras.Model:
    """Float model: style picture (B,256,256,3) in [0,1] -> style vector (B,100)."""
    image = keras.Input((STYLE_IMAGE_SIZE, STYLE_IMAGE_SIZE, 3), name="style_image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", name="stem")(image)
    x = _relu6("stem.relu6")(x)
    block = 0
    for expansion, filters, repeats, stride in _MOBILENET_V2:
        for r in range(repeats):
            x = _inverted_residual(x, expansion, filters, stride if r == 0 else 1, f"block{block}")
            block += 1
    x = _relu6("head.relu6")(layers.Conv2D(1280, 1, name="head")(x))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(STYLE_DIM, name="bottleneck")(x)
    return keras.Model(image, out, name="style_predictor")
