"""The exported float32 ONNX graph -> the same graph computing in float16.

The tensorrt engine builds strongly typed networks (TensorRT 10 and 11): a network
computes in the types its ONNX file states, and TensorRT 11 has no FP16 builder flag at
all (10 deprecated it). This pass writes those types:

- the frame path (convolutions, activations, padding, resizing, adds) in float16, with
  its float initializers stored as float16 and the first cast from uint8 going straight
  to float16;
- ``InstanceNormalization`` in float32, with casts around it: its mean and variance over
  a whole feature map overflow or lose their precision in float16;
- the style path (the (1, D) x (D, C) products that make the norm's scale and bias)
  in float32: it only depends on the style vector and is tiny;
- the output tail (x255, +0.5, floor, clip, cast to uint8) in float32: float16 spaces
  its values 0.125 apart above 128, so rounding there would move output levels.

The interface is unchanged: ``image`` uint8 in, ``style`` float32 in, ``stylized`` uint8
out. Inputs that ONNX types independently of the data (Resize's roi and scales) stay
float32.
"""
from __future__ import annotations

import numpy as np

# Ops kept in float32 wherever they are.
FLOAT32_OPS = {"InstanceNormalization"}
# Elementwise ops that may form the output tail (walking back from the graph outputs).
TAIL_OPS = {"Cast", "Clip", "Floor", "Round", "Add", "Sub", "Mul", "Div"}
# (op, input index) pairs whose float inputs keep their own type whatever the data's.
FIXED_INPUTS = {("Resize", 1), ("Resize", 2)}


def node_types(graph) -> dict[int, int]:
    """For each node index, the float type it computes in when the frame path is float16:
    TensorProto.FLOAT for the norms, the style path and the output tail, FLOAT16 for the
    rest (the torch engine reads FLOAT16 as its half type, float16 or bfloat16)."""
    from onnx import TensorProto

    inits = {i.name for i in graph.initializer}
    consumers: dict[str, list[int]] = {}
    for k, node in enumerate(graph.node):
        for name in node.input:
            consumers.setdefault(name, []).append(k)
    # Style-only nodes: every non-constant input derives from the graph input "style"
    # (or from any float graph input other than the image).
    image_like = {i.name for i in graph.input if i.type.tensor_type.elem_type != TensorProto.FLOAT}
    derived = {i.name for i in graph.input if i.name not in image_like}
    style_only = set()
    for k, node in enumerate(graph.node):
        live = [n for n in node.input if n and n not in inits]
        if live and all(n in derived for n in live):
            style_only.add(k)
            derived.update(node.output)
    # The output tail.
    outputs = {o.name for o in graph.output}
    tail: set[int] = set()
    for k in reversed(range(len(graph.node))):
        node = graph.node[k]
        if node.op_type in TAIL_OPS and k not in style_only and all(
                (o in outputs and not consumers.get(o)) or (consumers.get(o) and all(c in tail for c in consumers[o]))
                for o in node.output):
            tail.add(k)
    return {k: TensorProto.FLOAT if (k in style_only or k in tail or node.op_type in FLOAT32_OPS)
            else TensorProto.FLOAT16 for k, node in enumerate(graph.node)}


def convert(model):
    """A float16 copy of ``model`` (an ``onnx.ModelProto`` from onnx_export.export), as
    described at the top of this module."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    region = node_types(graph)
    floats = (TensorProto.FLOAT, TensorProto.FLOAT16)
    kind: dict[str, int] = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    inits = {i.name: i for i in graph.initializer}
    for name, init in inits.items():
        kind[name] = init.data_type
    new_inits: dict[str, object] = {}
    casts: dict[tuple[str, int], str] = {}
    nodes = []

    def as_type(name: str, want: int) -> str:
        if kind.get(name) not in floats or kind[name] == want:
            return name
        if name in inits:  # a constant: store it converted (a copy if others need the original)
            conv = f"{name}__fp16" if want == TensorProto.FLOAT16 else f"{name}__fp32"
            if conv not in new_inits:
                dtype = np.float16 if want == TensorProto.FLOAT16 else np.float32
                new_inits[conv] = numpy_helper.from_array(numpy_helper.to_array(inits[name]).astype(dtype), conv)
                kind[conv] = want
            return conv
        if (name, want) not in casts:
            out = f"{name}__as{'16' if want == TensorProto.FLOAT16 else '32'}"
            nodes.append(helper.make_node("Cast", [name], [out], name=out, to=want))
            casts[(name, want)] = out
            kind[out] = want
        return casts[(name, want)]

    for k, node in enumerate(graph.node):
        want = region[k]
        if node.op_type == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            if to.i in floats:
                to.i = want
            kind[node.output[0]] = to.i
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            if name and (node.op_type, i) not in FIXED_INPUTS:
                node.input[i] = as_type(name, want)
        data = [kind.get(n) for i, n in enumerate(node.input) if n and (node.op_type, i) not in FIXED_INPUTS]
        out_kind = want if any(t in floats for t in data) else next((t for t in data if t is not None), want)
        for o in node.output:
            kind[o] = out_kind
        nodes.append(node)
    for out in graph.output:  # a float graph output keeps its declared type
        declared = out.type.tensor_type.elem_type
        if declared in floats and kind.get(out.name) != declared:
            src = f"{out.name}__pre"
            for node in nodes:
                node.input[:] = [src if n == out.name else n for n in node.input]
                node.output[:] = [src if n == out.name else n for n in node.output]
            nodes.append(helper.make_node("Cast", [src], [out.name], name=f"{out.name}__cast", to=declared))
    used = {n for node in nodes for n in node.input}
    keep = [i for name, i in inits.items() if name in used] + [i for name, i in new_inits.items() if name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def fp16_bytes(fp32_onnx: bytes) -> bytes:
    """``convert`` on serialized bytes (what model_cache stores)."""
    import onnx

    return convert(onnx.ModelProto.FromString(fp32_onnx)).SerializeToString()
