"""``student26``: a distilled, cheaper copy of the 26-style network.

Same inputs and outputs as ``multistyle26`` (image (B,H,W,3) in [0,1] and style
weights (B,26) -> (B,H,W,3) in [0,1]; H and W multiples of 4) and the same layout and
conditional instance norms, at about half its multiply-adds: each conv named in
``RANKS`` (contract.0, contract.1 and the twelve residual convs) is factored, a k x k
conv cin->cout becoming a k x k conv cin->rank followed by a 1x1 conv rank->cout.
Only the teacher's layer kinds, so it exports like the teacher. ``tools/distill.py``
initialises and trains it; its quality and cost: docs/student.md.
"""
from __future__ import annotations

import keras
from keras import layers

from vidstyle.models import NUM_STYLES
from vidstyle.models.layers import ConditionalInstanceNorm, ReflectPad
from vidstyle.models.multistyle import _conv_norm, _upsample_conv

# Rank of each factored conv: a k x k conv cin->cout becomes k x k cin->rank then 1x1 rank->cout.
# Layers not named keep the teacher's full conv.
RESIDUAL_BLOCKS = 6


def ranks(contract0: int, contract1: int, contract2: int, residual: int) -> dict[str, int]:
    """The rank table for the given ranks (0: that conv is not factored)."""
    out = {"contract.0": contract0, "contract.1": contract1, "contract.2": contract2}
    out.update({f"res.{i}.{j}": residual for i in range(RESIDUAL_BLOCKS) for j in range(2)})
    return {k: v for k, v in out.items() if v}


RANKS = ranks(8, 16, 0, 14)


def _conv_norm_lr(x, w, filters: int, kernel: int, stride: int, name: str, rank: int | None, relu: bool = True):
    """_conv_norm with the conv factored through ``rank`` channels (None: not factored)."""
    if not rank:
        return _conv_norm(x, w, filters, kernel, stride, name, relu)
    x = ReflectPad(kernel // 2, name=f"{name}.pad")(x)
    x = layers.Conv2D(rank, kernel, strides=stride, use_bias=False, name=f"{name}.convk")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}.conv")(x)
    x = ConditionalInstanceNorm(NUM_STYLES, name=f"{name}.norm")(x, w)
    return layers.ReLU(name=f"{name}.relu")(x) if relu else x


def build_student(ranks: dict | None = None, blocks: int = RESIDUAL_BLOCKS, name: str = "student26") -> keras.Model:
    """Float model: image (B,H,W,3) in [0,1] and style weights (B,26) -> (B,H,W,3) in [0,1]."""
    r = RANKS if ranks is None else ranks
    image = keras.Input((None, None, 3), name="image")
    weights = keras.Input((NUM_STYLES,), name="style")
    x = _conv_norm_lr(image, weights, 32, 9, 1, "contract.0", r.get("contract.0"))
    x = _conv_norm_lr(x, weights, 32, 3, 2, "contract.1", r.get("contract.1"))
    x = _conv_norm_lr(x, weights, 32, 3, 2, "contract.2", r.get("contract.2"))
    for i in range(blocks):
        h = _conv_norm_lr(x, weights, 32, 3, 1, f"res.{i}.0", r.get(f"res.{i}.0"))
        h = _conv_norm_lr(h, weights, 32, 3, 1, f"res.{i}.1", r.get(f"res.{i}.1"), relu=False)
        x = layers.Add(name=f"res.{i}.add")([x, h])
    x = _upsample_conv(x, weights, 8, "expand.0")
    x = _upsample_conv(x, weights, 4, "expand.1")
    x = _conv_norm(x, weights, 3, 9, 1, "expand.2", relu=False)
    out = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model([image, weights], out, name=name)
