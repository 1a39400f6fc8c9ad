"""A stylizer's exported ONNX graph rebuilt as PyTorch operations, with the graph's own weights.

The shipped ONNX file (made from the Keras model) is the only source: each node becomes
one torch call, in graph order, so the torch engine runs the same network without a
second definition of it. Only the operators the exporter writes are known; anything
else is an error naming the node.

Precision follows export/fp16.py's split: in ``half`` (torch.float16 or torch.bfloat16)
the frame path computes in that type, while the instance norms (statistics over a whole
feature map), the style path and the output tail (x255, +0.5, floor, clip) compute in
float32. In float32 everything does.

Frames whose sides are not multiples of 4 are reflect-padded at the bottom and right
right after the float conversion and cropped back before the output transpose, as
geometry.pad and the tensorrt engine's ``with_pad_crop`` do, so pad and crop happen on
the device.
"""
from __future__ import annotations

import numpy as np

from vidstyle.errors import EngineError

OPS = {"Cast", "Mul", "Add", "Sub", "Div", "Transpose", "Reshape", "MatMul", "Pad", "Conv",
       "InstanceNormalization", "Relu", "Sigmoid", "Resize", "Floor", "Clip"}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pads_2d(pads, node) -> tuple[int, int, int, int]:
    """ONNX NCHW pads [n0, c0, t, l, n1, c1, b, r] as torch's (l, r, t, b)."""
    pads = [int(p) for p in pads]
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)):
        raise EngineError(f"the torch engine pads only height and width ({node.name}: {pads})")
    return pads[3], pads[7], pads[2], pads[6]


class Network:
    """``network(image, style)``: uint8 (N, H, W, 3) and float32 (D,) tensors on ``device``
    -> uint8 (N, H, W, 3), for any N, H and W (>= 3). Built once per device and precision."""

    def __init__(self, onnx_bytes: bytes, device, half=None, channels_last: bool = False):
        import onnx
        import torch
        from onnx import TensorProto, numpy_helper

        from vidstyle.engines.export.fp16 import node_types

        self.torch, self.device = torch, torch.device(device)
        self.half = half or torch.float32
        # NHWC in memory: what cuDNN's tensor-core convolutions read; the frames arrive so.
        self._layout = torch.channels_last if channels_last else None
        graph = onnx.ModelProto.FromString(onnx_bytes).graph
        self._consts = consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.dim = next(int(i.type.tensor_type.shape.dim[-1].dim_value) for i in graph.input if i.name == "style")
        types = node_types(graph)
        self._weights: dict[tuple, object] = {}
        self.steps = []
        transposes = [k for k, n in enumerate(graph.node) if n.op_type == "Transpose"]
        self._to_nchw, self._to_nhwc = graph.node[transposes[0]].output[0], graph.node[transposes[-1]].input[0]
        for k, node in enumerate(graph.node):
            if node.op_type not in OPS:
                raise EngineError(f"the torch engine cannot run node {node.name} ({node.op_type})")
            dtype = torch.float32 if types[k] == TensorProto.FLOAT else self.half
            self.steps.append(self._step(node, _attrs(node), consts, dtype))

    def _const(self, name: str, dtype, layout=None):
        """The graph constant ``name`` on the device, float ones in ``dtype``, made while the
        network is built (never during a run, which a CUDA graph capture would record)."""
        value = self._consts[name]
        key = (name, dtype if value.dtype.kind == "f" else None, layout)
        if key not in self._weights:
            t = self.torch.tensor(np.ascontiguousarray(value), device=self.device)
            t = t.to(dtype) if value.dtype.kind == "f" else t
            self._weights[key] = t.contiguous(memory_format=layout) if layout is not None else t
        return self._weights[key]

    def _step(self, node, attrs: dict, consts: dict, dtype):
        """(function of the values so far, output name) for one node."""
        torch = self.torch
        F = torch.nn.functional
        op, names, out = node.op_type, list(node.input), node.output[0]

        def arg(i, layout=None):
            name = names[i]
            if name in consts:
                const = self._const(name, dtype, layout)
                return lambda env: const
            if layout is not None:
                return lambda env: env[name].to(dtype).contiguous(memory_format=layout)
            return lambda env: env[name].to(dtype) if env[name].is_floating_point() else env[name]

        args = [arg(i) for i in range(len(names)) if names[i]]
        if op == "Cast":
            from onnx import TensorProto

            to = {TensorProto.FLOAT: dtype, TensorProto.UINT8: torch.uint8}.get(attrs["to"])
            if to is None:
                raise EngineError(f"the torch engine cannot cast to type {attrs['to']} ({node.name})")
            fn = lambda env: env[names[0]].to(to)  # noqa: E731
        elif op in ("Mul", "Add", "Sub", "Div", "MatMul"):
            binary = {"Mul": torch.mul, "Add": torch.add, "Sub": torch.sub, "Div": torch.div, "MatMul": torch.matmul}[op]
            a, b = args
            fn = lambda env: binary(a(env), b(env))  # noqa: E731
        elif op == "Transpose":
            perm = [int(p) for p in attrs["perm"]]
            fn = lambda env: env[names[0]].permute(*perm)  # noqa: E731
        elif op == "Reshape":
            shape = [int(s) for s in consts[names[1]]]
            fn = lambda env: args[0](env).reshape(shape)  # noqa: E731
        elif op == "Pad":
            if attrs.get("mode", b"constant") not in (b"reflect", "reflect"):
                raise EngineError(f"the torch engine pads by reflection only ({node.name})")
            pads = _pads_2d(consts[names[1]], node)
            fn = lambda env: F.pad(args[0](env), pads, mode="reflect")  # noqa: E731
        elif op == "Conv":
            stride = [int(s) for s in attrs.get("strides", [1, 1])]
            groups = int(attrs.get("group", 1))
            pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
            x, w = arg(0, self._layout), arg(1, self._layout)
            b = args[2] if len(args) > 2 else (lambda env: None)
            if pads[:2] == pads[2:]:
                fn = lambda env: F.conv2d(x(env), w(env), b(env), stride, pads[:2], 1, groups)  # noqa: E731
            else:  # TensorFlow's "same" puts the odd pixel after: pad first
                edge = (pads[1], pads[3], pads[0], pads[2])
                fn = lambda env: F.conv2d(F.pad(x(env), edge), w(env), b(env), stride, 0, 1, groups)  # noqa: E731
        elif op == "InstanceNormalization":
            eps = float(attrs.get("epsilon", 1e-5))
            x, scale, bias = args  # all float32 (node_types): statistics over a whole map need it
            fn = lambda env: F.instance_norm(x(env), weight=scale(env), bias=bias(env), eps=eps)  # noqa: E731
        elif op in ("Relu", "Sigmoid", "Floor"):
            unary = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Floor": torch.floor}[op]
            fn = lambda env: unary(args[0](env))  # noqa: E731
        elif op == "Clip":
            lo, hi = (float(consts[n]) if n else None for n in (names + ["", ""])[1:3])
            fn = lambda env: torch.clamp(args[0](env), lo, hi)  # noqa: E731
        elif op == "Resize":
            scales = [float(s) for s in consts[names[2]]]
            nearest = attrs.get("mode") in (b"nearest", "nearest") and attrs.get("nearest_mode") in (b"floor", "floor") \
                and attrs.get("coordinate_transformation_mode") in (b"asymmetric", "asymmetric")
            if not nearest or scales[:2] != [1.0, 1.0] or any(s != int(s) for s in scales[2:]):
                raise EngineError(f"the torch engine resizes by whole nearest-neighbour factors only ({node.name})")
            factor = (int(scales[2]), int(scales[3]))
            fn = lambda env: F.interpolate(args[0](env), scale_factor=factor, mode="nearest")  # noqa: E731
        return fn, out

    def __call__(self, image, style):
        """Stylize ``image`` (uint8 N,H,W,3 on the device) with ``style`` (float32 (D,))."""
        F = self.torch.nn.functional
        h, w = int(image.shape[1]), int(image.shape[2])
        ph, pw = -h % 4, -w % 4
        if (ph or pw) and min(h, w) <= max(ph, pw):
            raise EngineError(f"frame size {w}x{h} is too small for the network")
        env = {"image": image, "style": style}
        for fn, out in self.steps:
            env[out] = fn(env)
            if ph or pw:
                if out == self._to_nchw:
                    env[out] = F.pad(env[out], (0, pw, 0, ph), mode="reflect")
                elif out == self._to_nhwc:  # back to the frame's own size
                    env[out] = env[out][:, :, :h, :w]
        return env["stylized"]
