"""Keras networks -> ONNX, written from the Keras graph itself.

``export(stylizer)``: the graph every engine runs takes ``image`` uint8 (N, H, W, 3)
with N, H and W free, and ``style`` float32 (D,) shared by the batch; it returns
``stylized`` uint8 (N, H, W, 3). Conversion to float and back happens inside the graph,
so the runtime fuses it instead of the host touching every pixel four times.
``export_predictor(predictor)``: ``image`` uint8 (N, 256, 256, 3) -> ``style_vector``
float32 (N, D), the style predictor's embedding of a picture.

Only the layer kinds these networks use are converted (a walk over the functional
graph, one ONNX node or a few per layer); anything else is an error naming the layer,
never a silently different network. Conditional instance norm becomes one
``InstanceNormalization`` whose scale and bias are the style's mix of the per-style
tables (a (1, D) x (D, C) product inside the graph): one fused kernel instead of the
mean / variance / normalise chain of elementwise ops. The variants region recompute
runs are made from this graph by :mod:`vidstyle.engines.export.norm_variants`.

The output is deterministic (node names count up, weights are the Keras ones), so the
files shipped in ``vidstyle/models/onnx`` can be checked byte for byte against a
fresh export (``python -m tools.export_onnx --check``).
"""
from __future__ import annotations

import numpy as np

from vidstyle.errors import EngineError

OPSET = 17


class _Graph:
    def __init__(self):
        from onnx import helper

        self.helper = helper
        self.nodes, self.inits, self._n = [], [], 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint: str) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, kind: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.nodes.append(self.helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out


def _norm_params(g: _Graph, layer, style: str) -> tuple[str, str]:
    """(scale, bias) of shape (C,) for this style: a mix of per-style tables."""
    from vidstyle.models.layers import ConditionalInstanceNorm

    if isinstance(layer, ConditionalInstanceNorm):
        gamma = g.op("MatMul", [style, g.const(np.asarray(layer.gamma, np.float32), f"{layer.name}.gamma")], "gamma")
        beta = g.op("MatMul", [style, g.const(np.asarray(layer.beta, np.float32), f"{layer.name}.beta")], "beta")
    else:  # StyleNorm: affine in the style embedding
        gamma = g.op("Add", [g.op("MatMul", [style, g.const(np.asarray(layer.gamma_kernel, np.float32), "gk")], "gm"),
                             g.const(np.asarray(layer.gamma_bias, np.float32), "gb")], "gamma")
        beta = g.op("Add", [g.op("MatMul", [style, g.const(np.asarray(layer.beta_kernel, np.float32), "bk")], "bm"),
                            g.const(np.asarray(layer.beta_bias, np.float32), "bb")], "beta")
    flat = g.const(np.array([-1], np.int64), "flat")
    return g.op("Reshape", [gamma, flat], "scale"), g.op("Reshape", [beta, flat], "bias")


def _activation(g: _Graph, kind: str, x: str, layer) -> str:
    if kind == "relu":
        return g.op("Relu", [x], "relu")
    if kind == "sigmoid":
        return g.op("Sigmoid", [x], "sigmoid")
    if kind in ("linear", None):
        return x
    raise EngineError(f"cannot export layer {layer.name}: activation {kind!r}")


def _same_pads(layer, shape) -> list[int]:
    """ONNX pads (top, left, bottom, right) for Keras "same" padding on a known input size:
    TensorFlow puts the odd pixel after, which ONNX's SAME_UPPER does too, but explicit pads
    keep the file independent of how a runtime reads auto_pad."""
    if shape[1] is None or shape[2] is None:
        raise EngineError(f"cannot export layer {layer.name}: 'same' padding needs a fixed input size")
    before, after = [], []
    for n, k, s in zip(shape[1:3], layer.kernel_size, layer.strides):
        total = max((-(-n // s) - 1) * s + k - n, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return before + after


def _conv(g: _Graph, layer, x: str, shape, depthwise: bool) -> str:
    if layer.padding not in ("valid", "same") or tuple(layer.dilation_rate) != (1, 1):
        raise EngineError(f"cannot export layer {layer.name}: only valid or same, undilated convolutions")
    if depthwise:
        kernel = np.asarray(layer.kernel, np.float32)  # (kh, kw, C, multiplier)
        kh, kw, c, m = kernel.shape
        kernel, groups = kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw), c
    else:
        if layer.groups != 1:
            raise EngineError(f"cannot export layer {layer.name}: only ungrouped convolutions")
        kernel, groups = np.asarray(layer.kernel, np.float32).transpose(3, 2, 0, 1), 1  # HWIO -> OIHW
    args = [x, g.const(kernel, f"{layer.name}.w")]
    if layer.use_bias:
        args.append(g.const(np.asarray(layer.bias, np.float32), f"{layer.name}.b"))
    attrs = {"kernel_shape": list(kernel.shape[2:]), "strides": list(layer.strides)}
    if groups != 1:
        attrs["group"] = groups
    if layer.padding == "same":
        attrs["pads"] = _same_pads(layer, shape)
    return _activation(g, layer.activation.__name__, g.op("Conv", args, "conv", **attrs), layer)


def _convert(g: _Graph, layer, inputs: list[str], shapes: list, style: str | None) -> str:
    from keras import layers as L

    from vidstyle.models.layers import ConditionalInstanceNorm, ReflectPad, StyleNorm

    if isinstance(layer, ReflectPad):
        p = layer.pad
        return g.op("Pad", [inputs[0], g.const(np.array([0, 0, p, p, 0, 0, p, p], np.int64), "pads")], "pad",
                    mode="reflect")
    if type(layer) in (L.Conv2D, L.DepthwiseConv2D):
        return _conv(g, layer, inputs[0], shapes[0], depthwise=type(layer) is L.DepthwiseConv2D)
    if isinstance(layer, (ConditionalInstanceNorm, StyleNorm)) and style is not None:
        scale, bias = _norm_params(g, layer, style)
        return g.op("InstanceNormalization", [inputs[0], scale, bias], "norm", epsilon=float(layer.eps))
    if isinstance(layer, L.ReLU) and not layer.negative_slope and not layer.threshold:
        if layer.max_value is None:
            return g.op("Relu", [inputs[0]], "relu")
        return g.op("Clip", [inputs[0], g.const(np.float32(0), "zero"), g.const(np.float32(layer.max_value), "max")],
                    "relu_max")
    if isinstance(layer, L.Activation):
        return _activation(g, layer.activation.__name__, inputs[0], layer)
    if isinstance(layer, L.Add):
        out = inputs[0]
        for other in inputs[1:]:
            out = g.op("Add", [out, other], "add")
        return out
    if isinstance(layer, L.UpSampling2D) and layer.interpolation == "nearest":
        sh, sw = layer.size
        scales = g.const(np.array([1, 1, sh, sw], np.float32), "scales")
        # asymmetric + floor: output pixel (y, x) reads input (y // sh, x // sw), as Keras does.
        return g.op("Resize", [inputs[0], "", scales], "up", mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    if isinstance(layer, L.GlobalAveragePooling2D) and not layer.keepdims:
        return g.op("ReduceMean", [inputs[0]], "pool", axes=[2, 3], keepdims=0)
    if type(layer) is L.Dense:
        y = g.op("MatMul", [inputs[0], g.const(np.asarray(layer.kernel, np.float32), f"{layer.name}.w")], "dense")
        if layer.use_bias:
            y = g.op("Add", [y, g.const(np.asarray(layer.bias, np.float32), f"{layer.name}.b")], "dense_bias")
        return _activation(g, layer.activation.__name__, y, layer)
    raise EngineError(f"cannot export layer {layer.name} ({type(layer).__name__}) to ONNX")


def _onnx():
    try:
        import onnx
    except ImportError:
        raise EngineError("exporting to ONNX needs onnx: pip install onnx") from None
    return onnx


def _walk(g: _Graph, keras_model, names: dict, style: str | None) -> str:
    """Convert every layer of ``keras_model`` in graph order; the name of its output."""
    from keras import layers as L

    for layer in keras_model.operations:
        if isinstance(layer, L.InputLayer):
            continue
        node = layer._inbound_nodes[0]
        tensors = node.arguments.keras_tensors
        names[id(node.outputs[0])] = _convert(g, layer, [names[id(t)] for t in tensors],
                                              [t.shape for t in tensors], style)
    return names[id(keras_model.outputs[0])]


def _uint8_nchw(g: _Graph) -> str:
    from onnx import TensorProto

    x = g.op("Cast", ["image"], "float", to=TensorProto.FLOAT)
    x = g.op("Mul", [x, g.const(np.float32(1 / 255), "inv255")], "unit")
    return g.op("Transpose", [x], "nchw", perm=[0, 3, 1, 2])


def _model(onnx, g: _Graph, name: str, inputs: list, outputs: list):
    graph = onnx.helper.make_graph(g.nodes, name, inputs, outputs, initializer=g.inits)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="vidstyle")
    model.ir_version = min(model.ir_version, 9)  # runtimes a year old still load it
    onnx.checker.check_model(model)
    return model


def export(keras_model, name: str | None = None):
    """An ``onnx.ModelProto`` computing the stylizer ``keras_model`` (image in [0, 1],
    style) -> [0, 1] on uint8 NHWC frames, as described at the top of this module."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    image_in, style_in = keras_model.inputs
    dim = int(style_in.shape[-1])
    g = _Graph()
    x = _uint8_nchw(g)
    style = g.op("Reshape", ["style", g.const(np.array([1, dim], np.int64), "row")], "style_row")
    y = _walk(g, keras_model, {id(image_in): x, id(style_in): style}, style)
    y = g.op("Transpose", [y], "nhwc", perm=[0, 2, 3, 1])
    # floor(y * 255 + 0.5), clipped: the rounding the tf engine uses, so engines agree to the level.
    y = g.op("Floor", [g.op("Add", [g.op("Mul", [y, g.const(np.float32(255), "c255")], "scaled"),
                                   g.const(np.float32(0.5), "half")], "biased")], "rounded")
    y = g.op("Clip", [y, g.const(np.float32(0), "lo"), g.const(np.float32(255), "hi")], "clipped")
    g.nodes.append(helper.make_node("Cast", [y], ["stylized"], name="to_uint8", to=TensorProto.UINT8))
    return _model(onnx, g, name or keras_model.name,
                  [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3]),
                   helper.make_tensor_value_info("style", TensorProto.FLOAT, [dim])],
                  [helper.make_tensor_value_info("stylized", TensorProto.UINT8, ["N", "H", "W", 3])])


def export_predictor(keras_model, name: str | None = None):
    """An ``onnx.ModelProto`` computing the style predictor ``keras_model`` on uint8 NHWC
    pictures of its fixed size: ``image`` (N, S, S, 3) -> ``style_vector`` (N, D)."""
    onnx = _onnx()
    from onnx import TensorProto, helper

    (image_in,) = keras_model.inputs
    _, h, w, _ = image_in.shape
    dim = int(keras_model.outputs[0].shape[-1])
    g = _Graph()
    y = _walk(g, keras_model, {id(image_in): _uint8_nchw(g)}, None)
    g.nodes.append(helper.make_node("Identity", [y], ["style_vector"], name="style_vector"))
    return _model(onnx, g, name or keras_model.name,
                  [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", int(h), int(w), 3])],
                  [helper.make_tensor_value_info("style_vector", TensorProto.FLOAT, ["N", dim])])


def export_network(name: str):
    """The ONNX model of the pretrained network ``name`` (a vidstyle.models.MODEL_NAMES
    entry), built from its Keras definition and weights."""
    from vidstyle.models import PREDICTORS, pretrained

    return (export_predictor if name in PREDICTORS else export)(pretrained(name), name)
