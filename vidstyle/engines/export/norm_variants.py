"""The two graphs region recompute runs, made from a stylizer's exported ONNX graph.

- ``"stats"`` also returns each instance norm's per-channel mean and variance (outputs
  ``norm{i}.mean`` / ``norm{i}.var``, (N, C), in graph order);
- ``"frozen"`` takes them as inputs (``norm{i}.mean`` / ``norm{i}.var``, (C,) each) in place
  of measuring its input, so the network becomes local and a crop comes out as the whole
  frame did there.

Both are rewrites of the shipped float32 file, so they need onnx but no Keras.
"""
from __future__ import annotations

import numpy as np

VARIANTS = ("stats", "frozen")


def _channels(model) -> dict[str, int]:
    """The channel count of each InstanceNormalization's scale, by node name."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model).graph
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.value_info}
    out = {}
    for node in model.graph.node:
        if node.op_type == "InstanceNormalization":
            shape = dims.get(node.input[1], [])
            if len(shape) != 1 or not shape[0]:
                raise ValueError(f"the scale of {node.name} has no static channel count")
            out[node.name] = shape[0]
    return out


def variant(model, norms: str):
    """A copy of ``model`` (an exported stylizer, ``onnx.ModelProto``) as the ``norms``
    variant described at the top of this module."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if norms not in VARIANTS:
        raise ValueError(f"norms must be one of {VARIANTS}, not {norms!r}")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    channels = _channels(model) if norms == "frozen" else {}
    column = "variant_column"
    if norms == "frozen":
        graph.initializer.append(numpy_helper.from_array(np.array([1, -1, 1, 1], np.int64), column))
    nodes, inputs, outputs = [], [], []
    count = 0
    for node in graph.node:
        if node.op_type != "InstanceNormalization":
            nodes.append(node)
            continue
        i, (x, scale, bias) = count, node.input
        count += 1
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        mean, var = f"norm{i}.mean", f"norm{i}.var"
        tag = f"{node.name}.{{}}".format  # unique names per norm
        if norms == "stats":
            centred = tag("centred")
            nodes += [helper.make_node("ReduceMean", [x], [mean], name=mean, axes=[2, 3], keepdims=0),
                      helper.make_node("ReduceMean", [x], [tag("mean4")], name=tag("mean4"), axes=[2, 3], keepdims=1),
                      helper.make_node("Sub", [x, tag("mean4")], [centred], name=centred),
                      helper.make_node("Mul", [centred, centred], [tag("sq")], name=tag("sq")),
                      helper.make_node("ReduceMean", [tag("sq")], [var], name=var, axes=[2, 3], keepdims=0),
                      node]
            outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", None]) for n in (mean, var)]
            continue
        graph.initializer.append(numpy_helper.from_array(np.float32(eps), tag("eps")))
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [channels[node.name]]) for n in (mean, var)]
        nodes += [helper.make_node("Add", [var, tag("eps")], [tag("v")], name=tag("v")),
                  helper.make_node("Sqrt", [tag("v")], [tag("sd")], name=tag("sd")),
                  helper.make_node("Div", [scale, tag("sd")], [tag("gain")], name=tag("gain")),
                  helper.make_node("Reshape", [mean, column], [tag("m")], name=tag("m")),
                  helper.make_node("Reshape", [tag("gain"), column], [tag("k")], name=tag("k")),
                  helper.make_node("Reshape", [bias, column], [tag("b")], name=tag("b")),
                  helper.make_node("Sub", [x, tag("m")], [tag("centred")], name=tag("centred")),
                  helper.make_node("Mul", [tag("centred"), tag("k")], [tag("scaled")], name=tag("scaled")),
                  helper.make_node("Add", [tag("scaled"), tag("b")], list(node.output), name=node.name)]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.extend(inputs)
    graph.output.extend(outputs)
    onnx.checker.check_model(model)
    return model


def variant_bytes(plain: bytes, norms: str) -> bytes:
    """``variant`` on serialized bytes (what the model cache stores)."""
    import onnx

    return variant(onnx.ModelProto.FromString(plain), norms).SerializeToString()
