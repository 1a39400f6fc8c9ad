"""Keras stylizer -> ONNX, written from the Keras graph itself.

The exported graph takes what every engine takes: ``image`` uint8 (N, H, W, 3) with
N, H and W free, and ``style`` float32 (D,) shared by the batch; it returns ``stylized``
uint8 (N, H, W, 3). Conversion to float and back happens inside the graph, so the
runtime fuses it instead of the host touching every pixel four times.

Only the layer kinds the transformers use are converted (a walk over the functional
graph, one ONNX node or a few per layer); anything else is an error naming the layer,
never a silently different network. Conditional instance norm becomes one
``InstanceNormalization`` whose scale and bias are the style's mix of the per-style
tables (a (1, D) x (D, C) product inside the graph): one fused kernel instead of the
mean / variance / normalise chain of elementwise ops.

Two variants serve region recompute (``norms``): ``"stats"`` also returns each norm
layer's per-channel mean and variance (outputs ``norm{i}.mean`` / ``norm{i}.var``,
(N, C)); ``"frozen"`` takes them as inputs ((C,) each) instead of measuring its input,
so the network becomes local and a crop comes out as the whole frame did there.
"""
from __future__ import annotations

import numpy as np

from vidstyle.errors import EngineError

OPSET = 17


NORMS = ("plain", "stats", "frozen")


class _Graph:
    def __init__(self, norms: str = "plain"):
        from onnx import helper

        self.helper = helper
        self.norms = norms
        self.nodes, self.inits, self._n = [], [], 0
        self.norm_count = 0
        self.outputs: list[tuple[str, str]] = []  # (graph name, internal name) of extra outputs
        self.inputs: list[tuple[str, int]] = []  # (graph name, channels) of extra inputs

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


def _norm(g: _Graph, x: str, scale: str, bias: str, eps: float, channels: int) -> str:
    """Instance norm of ``x`` (N, C, H, W); with frozen statistics, the given ones."""
    i = g.norm_count
    g.norm_count += 1
    if g.norms == "frozen":
        mean, var = f"norm{i}.mean", f"norm{i}.var"
        g.inputs += [(mean, channels), (var, channels)]
        column = g.const(np.array([1, -1, 1, 1], np.int64), "column")
        gain = g.op("Div", [scale, g.op("Sqrt", [g.op("Add", [var, g.const(np.float32(eps), "eps")], "v")], "sd")],
                    "gain")
        centred = g.op("Sub", [x, g.op("Reshape", [mean, column], "m")], "centred")
        return g.op("Add", [g.op("Mul", [centred, g.op("Reshape", [gain, column], "k")], "scaled"),
                            g.op("Reshape", [bias, column], "b")], "norm")
    if g.norms == "stats":
        mean = g.op("ReduceMean", [x], "mean", axes=[2, 3], keepdims=0)
        centred = g.op("Sub", [x, g.op("ReduceMean", [x], "mean4", axes=[2, 3], keepdims=1)], "centred")
        var = g.op("ReduceMean", [g.op("Mul", [centred, centred], "sq")], "var", axes=[2, 3], keepdims=0)
        g.outputs += [(f"norm{i}.mean", mean), (f"norm{i}.var", var)]
    return g.op("InstanceNormalization", [x, scale, bias], "norm", epsilon=eps)


def _activation(g: _Graph, kind: str, x: str, layer) -> str:
    if kind == "relu":
        return g.op("Relu", [x], "relu")
    if kind == "sigmoid":
        return g.op("Sigmoid", [x], "sigmoid")
    if kind in ("linear", None):
        return x
    raise EngineError(f"cannot export layer {layer.name}: activation {kind!r}")


def _convert(g: _Graph, layer, inputs: list[str], style: str) -> str:
    from keras import layers as L

    from vidstyle.models.layers import ConditionalInstanceNorm, ReflectPad, StyleNorm

    if isinstance(layer, ReflectPad):
        p = layer.pad
        return g.op("Pad", [inputs[0], g.const(np.array([0, 0, p, p, 0, 0, p, p], np.int64), "pads")], "pad",
                    mode="reflect")
    if isinstance(layer, L.Conv2D) and type(layer) is L.Conv2D:
        if layer.padding != "valid" or layer.groups != 1 or tuple(layer.dilation_rate) != (1, 1):
            raise EngineError(f"cannot export layer {layer.name}: only valid, ungrouped, undilated convolutions")
        kernel = np.asarray(layer.kernel, np.float32).transpose(3, 2, 0, 1)  # HWIO -> OIHW
        args = [inputs[0], g.const(kernel, f"{layer.name}.w")]
        if layer.use_bias:
            args.append(g.const(np.asarray(layer.bias, np.float32), f"{layer.name}.b"))
        y = g.op("Conv", args, "conv", kernel_shape=list(kernel.shape[2:]), strides=list(layer.strides))
        return _activation(g, layer.activation.__name__, y, layer)
    if isinstance(layer, (ConditionalInstanceNorm, StyleNorm)):
        scale, bias = _norm_params(g, layer, style)
        channels = (layer.gamma if isinstance(layer, ConditionalInstanceNorm) else layer.gamma_bias).shape[-1]
        return _norm(g, inputs[0], scale, bias, float(layer.eps), int(channels))
    if isinstance(layer, L.ReLU):
        if layer.max_value is None and not layer.negative_slope and not layer.threshold:
            return g.op("Relu", [inputs[0]], "relu")
        raise EngineError(f"cannot export layer {layer.name}: only a plain ReLU")
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
    raise EngineError(f"cannot export layer {layer.name} ({type(layer).__name__}) to ONNX")


def export(keras_model, name: str | None = None, norms: str = "plain"):
    """An ``onnx.ModelProto`` computing ``keras_model`` (image in [0, 1], style) -> [0, 1]
    on uint8 NHWC frames, as described at the top of this module."""
    if norms not in NORMS:
        raise ValueError(f"norms must be one of {NORMS}, not {norms!r}")
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise EngineError("exporting to ONNX needs onnx: pip install onnx") from None
    from keras import layers as L

    image_in, style_in = keras_model.inputs
    dim = int(style_in.shape[-1])
    g = _Graph(norms)
    x = g.op("Cast", ["image"], "float", to=TensorProto.FLOAT)
    x = g.op("Mul", [x, g.const(np.float32(1 / 255), "inv255")], "unit")
    x = g.op("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    style = g.op("Reshape", ["style", g.const(np.array([1, dim], np.int64), "row")], "style_row")
    names = {id(image_in): x, id(style_in): style}
    for layer in keras_model.operations:
        if isinstance(layer, L.InputLayer):
            continue
        node = layer._inbound_nodes[0]
        args = [names[id(t)] for t in node.arguments.keras_tensors]
        names[id(node.outputs[0])] = _convert(g, layer, args, style)
    y = names[id(keras_model.outputs[0])]
    y = g.op("Transpose", [y], "nhwc", perm=[0, 2, 3, 1])
    # floor(y * 255 + 0.5), clipped: the rounding the tf engine uses, so engines agree to the level.
    y = g.op("Floor", [g.op("Add", [g.op("Mul", [y, g.const(np.float32(255), "c255")], "scaled"),
                                   g.const(np.float32(0.5), "half")], "biased")], "rounded")
    y = g.op("Clip", [y, g.const(np.float32(0), "lo"), g.const(np.float32(255), "hi")], "clipped")
    g.nodes.append(helper.make_node("Cast", [y], ["stylized"], name="to_uint8", to=TensorProto.UINT8))
    for public, internal in g.outputs:
        g.nodes.append(helper.make_node("Identity", [internal], [public], name=public))
    graph = helper.make_graph(
        g.nodes, name or keras_model.name,
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3]),
         helper.make_tensor_value_info("style", TensorProto.FLOAT, [dim])]
        + [helper.make_tensor_value_info(n, TensorProto.FLOAT, [c]) for n, c in g.inputs],
        [helper.make_tensor_value_info("stylized", TensorProto.UINT8, ["N", "H", "W", 3])]
        + [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", None]) for n, _ in g.outputs],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vidstyle")
    model.ir_version = min(model.ir_version, 9)  # runtimes a year old still load it
    onnx.checker.check_model(model)
    return model
