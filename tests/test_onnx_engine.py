"""The ONNX export, the onnxruntime engine (fp32, int8), bf16 on the tf engine, the model
cache and how --engine auto resolves. Quality is checked on real frames of the sample
clip against the float32 tf engine, on the [0, 1] RGB scale."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.clips import real_frames  # noqa: E402
from vidstyle import engines  # noqa: E402
from vidstyle.engines.export import model_cache, onnx_export  # noqa: E402
from vidstyle.engines import ort_engine
from vidstyle.errors import EngineError  # noqa: E402
from vidstyle.measure.metrics import ssim  # noqa: E402
from vidstyle.models import pretrained  # noqa: E402

pytestmark = pytest.mark.slow
STYLE = np.eye(26, dtype=np.float32)[7]


@pytest.fixture(scope="module")
def frames():
    """Two real frames of the sample clip at 320x240 (the hand and the cup)."""
    return real_frames("cup", every=60, limit=3, size=(320, 240))[1:]


@pytest.fixture(scope="module")
def reference(frames):
    return engines.create("tf", "multistyle26").run(frames, STYLE)


def unit(x):
    return x.astype(np.float32) / 255.0


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSTYLE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_export_takes_uint8_frames_of_any_batch_and_size():
    model = onnx_export.export(pretrained("multistyle26"))
    (image, style), (out,) = model.graph.input, model.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert (image.name, dims(image)) == ("image", ["N", "H", "W", 3])
    assert (out.name, dims(out)) == ("stylized", ["N", "H", "W", 3])
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8 == out.type.tensor_type.elem_type
    assert dims(style) == [26]
    # One session, three shapes: nothing is fixed at export.
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for n, h, w in ((1, 64, 96), (3, 48, 32), (2, 120, 160)):
        y = session.run(None, {"image": np.zeros((n, h, w, 3), np.uint8), "style": STYLE})[0]
        assert y.shape == (n, h, w, 3) and y.dtype == np.uint8


@pytest.mark.parametrize("model", ["multistyle26", "arbitrary_transformer"])
def test_onnxruntime_fp32_matches_tensorflow_to_one_level(frames, model, cache):
    dim = int(pretrained(model).inputs[1].shape[-1])  # the shipped file against the Keras network
    style = STYLE if dim == 26 else (0.5 * np.random.default_rng(1).standard_normal(dim)).astype(np.float32)
    ref = engines.create("tf", model).run(frames, style)
    out = engines.create("onnxruntime", model, precision="fp32").run(frames, style)
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01  # summation order only


def test_per_image_styles_in_one_batch(frames, cache):
    engine = ort_engine.ORTEngine("multistyle26")
    styles = np.eye(26, dtype=np.float32)[[3, 19]]
    both = engine.run(frames, styles)
    assert np.array_equal(both[0], engine.run(frames[:1], styles[0])[0])
    assert np.array_equal(both[1], engine.run(frames[1:], styles[1])[0])
    assert not np.array_equal(both[0], engine.run(frames[:1], styles[1])[0])


def test_bf16_keeps_the_quality_bound(frames, reference):
    out = unit(engines.create("tf", "multistyle26", precision="bf16").run(frames, STYLE))
    ref = unit(reference)
    assert np.abs(out - ref).mean() <= 0.02
    assert min(ssim(o, r) for o, r in zip(out, ref)) >= 0.92


def test_int8_is_quantised_in_the_middle_and_close(frames, reference, cache):
    path = ort_engine.model_file("multistyle26", "int8")
    graph = onnx.load(str(path)).graph
    convs = [n for n in graph.node if n.op_type == "Conv"]
    produced_by_dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    quantised = [c.input[0] in produced_by_dq and c.input[1] in produced_by_dq for c in convs]
    # The 9x9 convolutions that see the picture and make the output stay float.
    assert quantised[:2] == [False, False] and quantised[-3:] == [False] * 3 and all(quantised[2:-3])
    out = unit(engines.create("onnxruntime", "multistyle26", precision="int8").run(frames, STYLE))
    ref = unit(reference)
    # What int8 costs this network in its middle layers (docs/cpu-speed.md): close, but
    # not always inside the 0.02 bound, so --engine auto never picks it.
    assert 0.002 < np.abs(out - ref).mean() <= 0.03
    assert min(ssim(o, r) for o, r in zip(out, ref)) >= 0.85


def test_float32_is_the_shipped_file_and_the_cache_builds_variants_once(cache, monkeypatch):
    from vidstyle.engines.export import norm_variants
    from vidstyle.models import onnx_file

    assert ort_engine.model_file("multistyle26", "fp32") == onnx_file("multistyle26")
    first = ort_engine.model_file("multistyle26", "fp32", "stats")
    assert first.parent == cache and first.stat().st_size > 100_000
    monkeypatch.setattr(norm_variants, "variant_bytes", lambda *a, **k: pytest.fail("built again"))
    assert ort_engine.model_file("multistyle26", "fp32", "stats") == first
    assert model_cache.key("multistyle26", "fp32") != model_cache.key("multistyle26", "int8")
    assert model_cache.key("multistyle26", "fp32", ort="1") != model_cache.key("multistyle26", "fp32", ort="2")
    assert model_cache.key("multistyle26", "fp32") != model_cache.key("arbitrary_transformer", "fp32")
    before = model_cache.key("multistyle26", "fp32")
    monkeypatch.setattr(model_cache, "weights_digest", lambda model: "retrained weights")
    assert model_cache.key("multistyle26", "fp32") != before


def test_a_failed_build_leaves_no_file(cache):
    def broken() -> bytes:
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        model_cache.cached("x", ".onnx", broken)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_damaged_cache_file_is_named(cache, monkeypatch):
    path = ort_engine.model_file("multistyle26", "fp32", "stats")
    path.write_bytes(b"not a model")
    with pytest.raises(EngineError, match="cannot load .*multistyle26-fp32"):
        ort_engine.ORTEngine("multistyle26", threads=1).run_stats(np.zeros((1, 8, 8, 3), np.uint8), STYLE)


def test_an_unknown_layer_is_an_error_naming_it():
    import keras

    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(3, 3, padding="same", name="odd_conv")(x)
    s = keras.Input((26,))
    with pytest.raises(EngineError, match="odd_conv"):
        onnx_export.export(keras.Model([x, s], y))


def test_auto_resolves_by_precision():
    assert engines.resolve("auto") == "onnxruntime"
    assert engines.resolve("auto", "int8") == "onnxruntime"
    assert engines.resolve("auto", "bf16") == "tf"
    with pytest.raises(EngineError, match="tf engine does not compute in int8"):
        engines.resolve("tf", "int8")
    with pytest.raises(EngineError, match="onnxruntime engine does not compute in bf16"):
        engines.create("onnxruntime", "multistyle26", precision="bf16")
    with pytest.raises(EngineError, match="unknown precision"):
        engines.create("auto", "multistyle26", precision="fp8")


def test_lanes_run_frames_side_by_side_and_leave_no_thread(frames, cache, threads):
    lanes = ort_engine.ORTEngine("multistyle26")
    single = ort_engine.ORTEngine("multistyle26", threads=1)
    if lanes.lanes < 2:
        pytest.skip("one core: no lanes")
    batch = np.concatenate([frames, frames[::-1], frames[:1]])  # 5 frames: lanes of unequal length
    mixed = np.eye(26, dtype=np.float32)[[0, 7, 19, 3, 7]]
    for style in (STYLE, mixed):
        got, want = lanes.run(batch, style), single.run(batch, style)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    threads.assert_back_to_start()
