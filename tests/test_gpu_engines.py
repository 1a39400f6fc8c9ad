"""The GPU engines up to the GPU call, on a CPU-only machine: plan cache keys, the float16
ONNX pass (structure and numbers), the one-line errors where TensorRT, a GPU, TF-TRT or
onnxruntime's CUDA provider is missing (each really missing here), --engine auto's order
when the GPU probe says a GPU is present, and the TensorRT engine's buffer and stream
handling against a host-memory stand-in for CUDA and TensorRT (nothing here has run on
a GPU: docs/gpu.md)."""
from __future__ import annotations

import ctypes
import importlib.util
import itertools
import sys
import types
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.clips import real_frames  # noqa: E402
from vidstyle import engines  # noqa: E402
from vidstyle.apps.cli import create_parser  # noqa: E402
from vidstyle.engines import cuda_mem, gpu, ort_engine, tftrt_engine, trt_engine  # noqa: E402
from vidstyle.engines.export import fp16
from vidstyle.errors import EngineError  # noqa: E402

STYLE = np.eye(26, dtype=np.float32)[7]
FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


@pytest.fixture(autouse=True)
def fresh_probes():
    gpu.nvidia_gpus.cache_clear()
    gpu.ort_cuda_available.cache_clear()
    gpu.torch_cuda_available.cache_clear()
    yield
    gpu.nvidia_gpus.cache_clear()
    gpu.ort_cuda_available.cache_clear()
    gpu.torch_cuda_available.cache_clear()


@pytest.fixture(scope="module")
def fp32_model():
    return onnx.load(str(ort_engine.model_file("multistyle26", "fp32")))


@pytest.fixture(scope="module")
def fp16_model(fp32_model):
    return fp16.convert(fp32_model)


# --- plan cache key --------------------------------------------------------------------------


def test_plan_key_changes_with_each_part_and_nothing_else():
    base = dict(model="multistyle26", precision="fp16", trt_version="10.16.1", gpu_name="NVIDIA H100 80GB HBM3",
                max_batch=8, height=1080, width=1920)
    key = trt_engine.plan_key(**base)
    assert key == trt_engine.plan_key(**base)  # a pure function of its inputs
    assert key.startswith("multistyle26-fp16-")
    changes = dict(model="arbitrary_transformer", precision="fp32", trt_version="11.0.0", gpu_name="NVIDIA H200",
                   max_batch=4, height=720, width=1280)
    keys = {key}
    for part, value in changes.items():
        other = trt_engine.plan_key(**{**base, part: value})
        assert other != key, part
        keys.add(other)
    assert len(keys) == len(changes) + 1
    # height and width are not interchangeable
    assert trt_engine.plan_key(**{**base, "height": 1920, "width": 1080}) != key


def test_plan_key_changes_with_the_weights(monkeypatch):
    from vidstyle.engines.export import model_cache

    args = ("multistyle26", "fp16", "10.16.1", "NVIDIA H100", 8, 720, 1280)
    before = trt_engine.plan_key(*args)
    monkeypatch.setattr(model_cache, "weights_digest", lambda model: "0123456789abcdef")
    assert trt_engine.plan_key(*args) != before


# --- float16 ONNX ----------------------------------------------------------------------------


def test_fp16_model_keeps_the_interface(fp32_model, fp16_model):
    io = lambda m: [(v.name, v.type.tensor_type.elem_type) for v in (*m.graph.input, *m.graph.output)]  # noqa: E731
    assert io(fp16_model) == io(fp32_model) == [("image", onnx.TensorProto.UINT8), ("style", FLOAT),
                                                ("stylized", onnx.TensorProto.UINT8)]
    onnx.checker.check_model(fp16_model)
    assert fp16_model.ByteSize() < 0.7 * fp32_model.ByteSize()  # the conv weights are half the bytes


def test_fp16_model_types(fp16_model):
    g = onnx.shape_inference.infer_shapes(fp16_model, strict_mode=True).graph
    kind = {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)}
    kind.update({i.name: i.data_type for i in g.initializer})
    nodes = list(g.node)
    convs = [n for n in nodes if n.op_type == "Conv"]
    norms = [n for n in nodes if n.op_type == "InstanceNormalization"]
    assert convs and norms
    for n in convs:  # the frame path in float16, weights stored as float16
        assert all(kind[name] == HALF for name in n.input), n.name
        assert kind[n.output[0]] == HALF
    for n in norms:  # norm statistics in float32, casts on both sides
        assert all(kind[name] == FLOAT for name in n.input), n.name
        producer = next(p for p in nodes if n.input[0] in p.output)
        assert producer.op_type == "Cast"
        consumers = [c for c in nodes if n.output[0] in c.input]
        assert consumers and all(c.op_type == "Cast" for c in consumers)
    first = next(n for n in nodes if "image" in n.input)  # uint8 -> float16 directly
    assert first.op_type == "Cast" and first.attribute[0].i == HALF
    # the output tail (x255, +0.5, floor, clip) in float32, then uint8
    last = next(n for n in nodes if "stylized" in n.output)
    assert last.op_type == "Cast" and last.attribute[0].i == onnx.TensorProto.UINT8
    for op in ("Floor", "Clip"):
        (n,) = [n for n in nodes if n.op_type == op]
        assert kind[n.output[0]] == FLOAT
    for n in nodes:  # Resize's scales stay float32
        if n.op_type == "Resize":
            assert kind[n.input[2]] == FLOAT


def test_fp16_model_numbers_on_real_frames(fp32_model, fp16_model):
    """onnxruntime's CPU provider runs the float16 graph (where it lacks a float16 kernel it
    computes that node in float32 between float16 tensors, so activations are still
    stored at float16 precision)."""
    frames = real_frames("cup", every=60, limit=3, size=(320, 240))[1:]
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(  # noqa: E731
        None, {"image": frames, "style": STYLE})[0]
    y32, y16 = run(fp32_model).astype(np.int16), run(fp16_model).astype(np.int16)
    diff = np.abs(y32 - y16)
    print(f"\nfp16 vs fp32 (onnxruntime CPU, 2 frames 320x240): max {diff.max()} levels, "
          f"mean {diff.mean():.4f}, {np.mean(diff > 1):.2%} of values off by more than 1")
    assert diff.mean() < 0.25 and np.mean(diff > 2) < 0.01 and diff.max() <= 16


def test_fp16_model_in_true_float16_arithmetic(fp32_model, fp16_model):
    """onnx's reference evaluator computes each float16 node in float16 numpy (no float32
    accumulation anywhere in the frame path): a tiny frame stays within a few levels."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    feeds = {"image": image, "style": STYLE}
    y32 = ReferenceEvaluator(fp32_model).run(None, feeds)[0].astype(np.int16)
    y16 = ReferenceEvaluator(fp16_model).run(None, feeds)[0].astype(np.int16)
    diff = np.abs(y32 - y16)
    print(f"\nreference evaluator fp16 vs fp32 (16x16): max {diff.max()}, mean {diff.mean():.3f}")
    assert diff.mean() < 1.0 and diff.max() <= 16


# --- errors where something is really missing here --------------------------------------------


def test_no_tensorrt_is_one_line():
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    with pytest.raises(EngineError, match=r"needs TensorRT.*vidstyle\[gpu\]") as err:
        engines.create("tensorrt", "multistyle26")
    assert "\n" not in str(err.value)


def test_no_gpu_is_one_line():
    if gpu.nvidia_gpus():
        pytest.skip("this machine has an NVIDIA GPU")
    with pytest.raises(EngineError, match="no NVIDIA GPU") as err:
        trt_engine.check_gpu()
    assert "\n" not in str(err.value)


def test_no_cuda_binding_is_one_line():
    if any(importlib.util.find_spec(m) for m in ("cuda", "cupy")):
        pytest.skip("a CUDA binding is installed here")
    if importlib.util.find_spec("torch"):  # PyTorch's CPU build is no CUDA binding
        import torch

        if torch.cuda.is_available():
            pytest.skip("torch with CUDA is installed here")
    with pytest.raises(EngineError, match="cuda-python") as err:
        cuda_mem.cuda_backend()
    assert "\n" not in str(err.value)


def test_tftrt_says_it_was_removed_and_points_to_tensorrt():
    version = tftrt_engine.tensorflow_version()
    if version is None or tftrt_engine._release(version) < (2, 18):
        pytest.skip("this TensorFlow may still have TF-TRT")
    with pytest.raises(EngineError) as err:
        engines.create("tf-trt", "multistyle26")
    message = str(err.value)
    assert "removed in TensorFlow 2.18" in message and "--engine tensorrt" in message and version in message
    assert "\n" not in message
    assert tftrt_engine.unavailable_reason("2.17.1") is None
    assert "no TensorFlow" in tftrt_engine.unavailable_reason(None)
    assert "removed" in tftrt_engine.unavailable_reason("2.18.0rc1")


def test_missing_cuda_provider_is_one_line():
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(EngineError, match="no CUDAExecutionProvider.*vidstyle\\[gpu\\]") as err:
        engines.create("onnxruntime-cuda", "multistyle26")
    assert "\n" not in str(err.value)
    with pytest.raises(EngineError, match="no CUDAExecutionProvider"):
        ort_engine.ORTEngine("multistyle26", device="cuda")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_onnxruntime_cuda_session_options(monkeypatch):
    """The CUDA provider is asked for heuristic cuDNN algorithm choice; this CPU-only
    onnxruntime then starts without it, which the engine reports instead of running on the CPU."""
    monkeypatch.setattr(ort_engine, "cuda_provider_available", lambda: True)
    assert ort_engine.providers("cuda") == [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}),
                                            "CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    seen = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: seen.append(k["providers"]) or real(*a, **k))
    with pytest.raises(EngineError, match="could not start its CUDA provider"):
        ort_engine.ORTEngine("multistyle26", device="cuda")
    assert seen == [ort_engine.providers("cuda")]


def test_onnxruntime_cuda_runs_through_io_binding(fp32_model):
    class Binding:
        def __init__(self, log, out):
            self.log, self.out = log, out

        def bind_cpu_input(self, name, value):
            self.log.append(("input", name, value.dtype.name, value.shape))

        def bind_output(self, name, device):
            self.log.append(("output", name, device))

        def copy_outputs_to_cpu(self):
            self.log.append(("copy",))
            return [self.out]

    class Session:
        def __init__(self):
            self.log = []

        def io_binding(self):
            return Binding(self.log, np.zeros((2, 8, 12, 3), np.uint8))

        def run_with_iobinding(self, binding):
            self.log.append(("run",))

        def run(self, *a):
            pytest.fail("plain run on cuda")

    engine = object.__new__(ort_engine.ORTEngine)
    engine.device = "cuda"
    session = Session()
    out = engine._infer(session, frames(2), STYLE)
    assert out.shape == (2, 8, 12, 3)
    assert session.log == [("input", "image", "uint8", (2, 8, 12, 3)), ("input", "style", "float32", (26,)),
                           ("output", "stylized", "cuda"), ("run",), ("copy",)]
    # The same binding on the CPU provider computes what a plain run does.
    real = ort.InferenceSession(fp32_model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"image": frames(2, 16, 16), "style": STYLE}
    np.testing.assert_array_equal(ort_engine.bound_run(real, feeds, "stylized", "cpu"), real.run(None, feeds)[0])


def test_precisions_per_engine():
    for name, precision in (("tensorrt", "int8"), ("tensorrt", "bf16"), ("onnxruntime", "fp16"), ("tf", "fp16")):
        with pytest.raises(EngineError, match="does not compute"):
            engines.resolve(name, precision)
    assert "fp16" in engines.PRECISIONS
    args = create_parser().parse_args(["image", "x.png", "-o", "y.png", "--precision", "fp16", "--engine", "tensorrt"])
    assert (args.precision, args.engine) == ("fp16", "tensorrt")


# --- --engine auto and the probes --------------------------------------------------------------


def test_cpu_machine_order_unchanged():
    if gpu.gpu_present():
        pytest.skip("this machine has an NVIDIA GPU")
    assert engines.available() == [e for e in ("onnxruntime", "tf") if importlib.util.find_spec(
        "onnxruntime" if e == "onnxruntime" else "tensorflow")]
    assert engines.resolve("auto") == "onnxruntime"
    with pytest.raises(EngineError, match="no installed engine computes in fp16"):
        engines.resolve("auto", "fp16")


def test_auto_prefers_tensorrt_then_onnxruntime_cuda_on_nvidia(monkeypatch):
    monkeypatch.setattr(gpu, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu, "tensorrt_installed", lambda: True)
    monkeypatch.setattr(gpu, "torch_cuda_available", lambda: False)  # tests/test_torch_engine.py: with it
    monkeypatch.setattr(gpu, "ort_cuda_available", lambda: True)
    assert engines.available() == ["tensorrt", "onnxruntime-cuda", "onnxruntime", "tf"]
    assert engines.resolve("auto") == "tensorrt"
    assert engines.resolve("auto", "fp16") == "tensorrt"
    assert engines.resolve("auto", "fp32") == "tensorrt"
    assert engines.resolve("auto", "int8") == "onnxruntime"
    assert engines.resolve("auto", "bf16") == "tf"
    monkeypatch.setattr(gpu, "tensorrt_installed", lambda: False)
    assert engines.resolve("auto") == "onnxruntime-cuda"
    monkeypatch.setattr(gpu, "ort_cuda_available", lambda: False)
    assert engines.resolve("auto") == "onnxruntime"


def test_auto_on_nvidia_reaches_the_real_tensorrt_engine(monkeypatch):
    """With the GPU probe saying yes, auto picks tensorrt only where the module is really
    installed (not here), and creating it goes to the real engine, whose import fails."""
    monkeypatch.setattr(gpu, "gpu_present", lambda: True)
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    assert "tensorrt" not in engines.available()
    monkeypatch.setattr(gpu, "tensorrt_installed", lambda: True)
    with pytest.raises(EngineError, match="needs TensorRT"):
        engines.create("auto", "multistyle26")


def test_gpu_probe_reads_the_driver_proc_files(tmp_path, monkeypatch):
    for i, model in enumerate(("NVIDIA H100 80GB HBM3", "NVIDIA L4")):
        folder = tmp_path / f"0000:0{i}:00.0"
        folder.mkdir()
        (folder / "information").write_text(f"Model: \t\t {model}\nIRQ:   42\nBus Type:  PCIe\n")
    monkeypatch.setattr(gpu, "PROC_GPUS", tmp_path)
    assert gpu.nvidia_gpus() == ("NVIDIA H100 80GB HBM3", "NVIDIA L4")
    assert gpu.gpu_present()
    monkeypatch.setattr(gpu, "PROC_GPUS", tmp_path / "absent")
    assert gpu.nvidia_gpus() == ("NVIDIA H100 80GB HBM3", "NVIDIA L4")  # cached for the process
    gpu.nvidia_gpus.cache_clear()
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    assert gpu.nvidia_gpus() == () and not gpu.gpu_present()


def test_gpu_probe_parses_nvidia_smi(tmp_path, monkeypatch):
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-1234)'\necho 'GPU 1: NVIDIA H200 (UUID: GPU-5678)'\n")
    smi.chmod(0o755)
    monkeypatch.setattr(gpu, "PROC_GPUS", tmp_path / "absent")
    monkeypatch.setattr(gpu.shutil, "which", lambda name: str(smi))
    assert gpu.nvidia_gpus() == ("NVIDIA H200", "NVIDIA H200")


def test_available_does_not_import_gpu_runtimes():
    import subprocess

    code = ("import sys; from vidstyle import engines; engines.available(); "
            "print(sorted(m for m in ('tensorrt', 'onnxruntime', 'tensorflow', 'cuda', 'torch', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    if not gpu.gpu_present():
        assert out.stdout.strip() == "[]"


# --- the TensorRT engine's buffers and streams, on host memory ---------------------------------


def test_pad_and_crop_inside_the_plan_match_the_cpu_pipeline(fp32_model):
    """with_pad_crop: a 50x30 frame padded and cropped inside the graph gives exactly what
    the pipeline's CPU pad (geometry.pad) + network + crop give."""
    from vidstyle.processing import geometry

    raw = fp32_model.SerializeToString()
    assert trt_engine.with_pad_crop(raw, 48, 32) is raw  # multiples of 4: unchanged
    assert trt_engine.style_dim(raw) == 26
    h, w = 50, 30
    image = real_frames("cup", every=60, limit=2, size=(w, h))
    graph = trt_engine.with_pad_crop(raw, h, w)
    session = lambda b: ort.InferenceSession(b, providers=["CPUExecutionProvider"])  # noqa: E731
    inside = session(graph).run(None, {"image": image, "style": STYLE})[0]
    geom = geometry.plan(w, h)
    assert (geom.net_w, geom.net_h) == (32, 52)
    padded = np.stack([geometry.pad(f, geom) for f in image])
    outside = np.stack([geometry.crop(f, geom) for f in session(raw).run(None, {"image": padded, "style": STYLE})[0]])
    assert inside.shape == (2, h, w, 3)
    np.testing.assert_array_equal(inside, outside)
    ops = [n.op_type for n in onnx.ModelProto.FromString(graph).graph.node]
    assert ops.count("Slice") == 1 and ops.count("Pad") == 18 + 1
    with pytest.raises(EngineError, match="too small"):
        trt_engine.with_pad_crop(raw, 2, 30)


class FakeBuilderTRT:
    """In place of the tensorrt module for build_plan: records the network flags, the
    builder-config flags, the parsed ONNX bytes and the profile."""

    __version__ = "10.16.1"
    NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    BuilderFlag = types.SimpleNamespace(FP16=0, TF32=6)

    def __init__(self):
        self.log = []
        log = self.log

        class Config:
            def set_flag(self, flag):
                log.append(("set_flag", flag))

            def clear_flag(self, flag):
                log.append(("clear_flag", flag))

            def add_optimization_profile(self, profile):
                log.append(("profile", profile.shape))

        class Profile:
            def set_shape(self, name, low, opt, high):
                self.shape = (name, low, opt, high)

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                log.append(("network_flags", flags))
                return "network"

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                return b"plan"

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                log.append(("parsed", data))
                return True

        self.Builder, self.OnnxParser = Builder, OnnxParser


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_plans_are_strongly_typed_with_tf32_off(fp32_model, precision):
    trt = FakeBuilderTRT()
    raw = fp32_model.SerializeToString()
    plan = trt_engine.build_plan(trt, None, raw, precision, 8, 720, 1280, "multistyle26")
    assert plan == b"plan"
    log = {k: v for k, v, *_ in trt.log}
    assert log["network_flags"] == 1 << 1  # STRONGLY_TYPED, and nothing else
    assert ("clear_flag", trt.BuilderFlag.TF32) in trt.log
    assert not [c for c in trt.log if c[0] == "set_flag"]  # no FP16 flag: the file states the types
    assert log["profile"] == ("image", (1, 720, 1280, 3), (8, 720, 1280, 3), (8, 720, 1280, 3))
    parsed = onnx.ModelProto.FromString(log["parsed"])
    halves = [i for i in parsed.graph.initializer if i.data_type == HALF]
    if precision == "fp16":
        assert halves and any(n.op_type == "InstanceNormalization" for n in parsed.graph.node)
    else:
        assert log["parsed"] == raw and not halves


def test_a_tensorrt_without_strong_typing_is_one_line(fp32_model):
    trt = FakeBuilderTRT()
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace()
    with pytest.raises(EngineError, match="needs TensorRT 10 or later") as err:
        trt_engine.build_plan(trt, None, fp32_model.SerializeToString(), "fp16", 8, 48, 64, "multistyle26")
    assert "\n" not in str(err.value)


class HostCuda:
    """Host memory in place of the GPU: copies happen when queued (each stream in order,
    which is what the events order on a GPU). Counts what the engine asks for."""

    name = "host"

    def __init__(self):
        self.ids = itertools.count(1)
        self.calls: list[tuple] = []
        self.keep = []

    def _buf(self, n, host):
        a = np.zeros(n, np.uint8)
        self.keep.append(a)
        return cuda_mem._Buf(a.ctypes.data, a if host else None, a)

    def alloc(self, n):
        return self._buf(n, False)

    def host(self, n):
        return self._buf(n, True)

    def free(self, buf):
        self.calls.append(("free",))

    def stream(self):
        return cuda_mem._Handle(next(self.ids))

    def event(self):
        return f"event{next(self.ids)}"

    def destroy_stream(self, stream):
        self.calls.append(("destroy_stream", int(stream)))

    def destroy_event(self, event):
        self.calls.append(("destroy_event", event))

    def record(self, event, stream):
        self.calls.append(("record", event, int(stream)))

    def wait(self, stream, event):
        self.calls.append(("wait", int(stream), event))

    def sync(self, event):
        self.calls.append(("sync", event))

    def h2d(self, dst, src, n, stream):
        self.calls.append(("h2d", int(stream), n))
        ctypes.memmove(dst.ptr, src.ptr, n)

    def d2h(self, dst, src, n, stream):
        self.calls.append(("d2h", int(stream), n))
        ctypes.memmove(dst.ptr, src.ptr, n)


class FakeContext:
    """In place of a TensorRT execution context: output = input + argmax(style), mod 256."""

    def __init__(self, dim, log):
        self.dim, self.log, self.shape, self.ptr = dim, log, None, {}
        self.refuse = set()  # names whose set_* call answers False, as TensorRT does on a bad value

    def set_input_shape(self, name, shape):
        assert name == "image"
        self.shape = shape
        return "shape" not in self.refuse

    def set_tensor_address(self, name, ptr):
        self.ptr[name] = ptr
        return name not in self.refuse

    def execute_async_v3(self, stream):
        n = int(np.prod(self.shape))
        image = np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(self.ptr["image"]))
        style = np.ctypeslib.as_array((ctypes.c_float * self.dim).from_address(self.ptr["style"]))
        out = np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(self.ptr["stylized"]))
        out[:] = (image.astype(np.int32) + int(style.argmax())) % 256
        self.log.append(("execute", int(stream), self.shape[0]))
        return True


def fake_trt(dim, log):
    engine = types.SimpleNamespace(create_execution_context=lambda: FakeContext(dim, log))
    return types.SimpleNamespace(Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda plan: engine))


def host_engine(max_batch=4, h=8, w=12, dim=26):
    cuda = HostCuda()
    runner = trt_engine._Runner(fake_trt(dim, cuda.calls), None, cuda, b"plan", h, w, max_batch, dim)
    eng = object.__new__(trt_engine.TRTEngine)
    eng.max_batch, eng._runners, eng.cuda = max_batch, {(h, w): runner}, cuda
    import threading

    eng._lock = threading.Lock()
    return eng, runner, cuda


def frames(n, h=8, w=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def expect(batch, styles):
    shift = np.asarray(styles).reshape(-1, 26).argmax(1).reshape(-1, 1, 1, 1)
    return ((batch.astype(np.int32) + shift) % 256).astype(np.uint8)


def test_runner_orders_upload_inference_download_on_three_streams():
    eng, runner, cuda = host_engine()
    batch = frames(3)
    out = eng.run(batch, STYLE)
    np.testing.assert_array_equal(out, expect(batch, STYLE))
    up, compute, down = int(runner.up), int(runner.compute), int(runner.down)
    assert len({up, compute, down}) == 3 and 0 not in (up, compute, down)  # three non-default streams
    kinds = [c for c in cuda.calls if c[0] in ("h2d", "record", "wait", "execute", "d2h")]
    slot = runner.slots[0]
    assert kinds == [("h2d", up, 3 * 8 * 12 * 3), ("h2d", up, 26 * 4), ("record", slot.uploaded, up),
                     ("wait", compute, slot.uploaded), ("execute", compute, 3), ("record", slot.done, compute),
                     ("wait", down, slot.done), ("d2h", down, 3 * 8 * 12 * 3), ("record", slot.downloaded, down)]


def test_submit_returns_before_results_and_slots_alternate():
    eng, runner, cuda = host_engine()
    batches = [frames(2, seed=k) for k in range(5)]
    styles = [np.eye(26, dtype=np.float32)[k] for k in range(5)]
    pending = [eng.submit(b, s) for b, s in zip(batches, styles)]  # 5 in flight on 2 slots
    assert [p[0]._slot for p in pending[:2]] == runner.slots
    for b, s, p in zip(batches, styles, pending):  # a slot reused before collection kept its frames
        np.testing.assert_array_equal(p[0].result(), expect(b, s))
    streamed = list(eng.stream(batches, STYLE))
    assert all(np.array_equal(o, expect(b, STYLE)) for o, b in zip(streamed, batches))


def test_batches_above_the_profile_run_in_chunks_and_mixed_styles_apart():
    eng, runner, cuda = host_engine(max_batch=4)
    batch = frames(10)
    np.testing.assert_array_equal(eng.run(batch, STYLE), expect(batch, STYLE))
    assert [c[2] for c in cuda.calls if c[0] == "execute"] == [4, 4, 2]
    rows = np.eye(26, dtype=np.float32)[[1, 2, 3]]
    small = frames(3, seed=9)
    np.testing.assert_array_equal(eng.run(small, rows), expect(small, rows))
    eng.close()
    assert runner.slots == [] and ("free",) in cuda.calls


def test_close_destroys_every_stream_and_event():
    eng, runner, cuda = host_engine()
    streams = {int(runner.up), int(runner.compute), int(runner.down)}
    events = {e for slot in runner.slots for e in slot.events()}
    eng.run(frames(2), STYLE)
    eng.close()
    assert {c[1] for c in cuda.calls if c[0] == "destroy_stream"} == streams
    assert sorted(c[1] for c in cuda.calls if c[0] == "destroy_event") == sorted(events) and len(events) == 6
    assert [c for c in cuda.calls if c[0] == "free"] == [("free",)] * 12  # 6 buffers a slot


@pytest.mark.parametrize("refused, message", [("shape", "input shape 2x8x12x3"), ("image", "address of 'image'"),
                                              ("style", "address of 'style'"), ("stylized", "address of 'stylized'")])
def test_a_refused_shape_or_address_is_an_error_before_the_enqueue(refused, message):
    eng, runner, cuda = host_engine()
    runner.context.refuse.add(refused)
    with pytest.raises(EngineError, match=message):
        eng.run(frames(2), STYLE)
    assert not [c for c in cuda.calls if c[0] == "execute"]


def test_result_reads_the_slot_under_the_runners_lock():
    eng, runner, cuda = host_engine()

    class Watched:
        """The runner's lock, recording whether sync and the copy happen while it is held."""

        def __init__(self, lock):
            self.lock, self.held = lock, 0

        def __enter__(self):
            self.lock.acquire()
            self.held += 1

        def __exit__(self, *exc):
            self.held -= 1
            self.lock.release()

    watched = Watched(runner.lock)
    runner.lock = watched
    (pending,) = eng.submit(frames(2), STYLE)
    seen = []
    sync = cuda.sync
    cuda.sync = lambda event: (seen.append(watched.held), sync(event))
    pending.result()
    assert seen and all(held > 0 for held in seen)
    assert runner.slots[0].pending is None
