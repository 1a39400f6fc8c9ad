"""The torch engine on PyTorch's CPU build: the network rebuilt from the shipped ONNX file
against onnxruntime on real frames of the sample (fp32 to the level; bf16 and fp16 inside
the quality bound), pad and crop inside the network, its place in --engine auto, its
one-line errors, and the CUDA engine's queue and batch views run on host tensors (the
GPU calls themselves are not reached here: docs/gpu.md)."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.clips import real_frames  # noqa: E402
from vidstyle import engines  # noqa: E402
from vidstyle.engines import cuda_mem, gpu, torch_engine, trt_engine  # noqa: E402
from vidstyle.engines.export import model_file  # noqa: E402
from vidstyle.engines.torch_net import Network  # noqa: E402
from vidstyle.errors import EngineError  # noqa: E402
from vidstyle.measure.metrics import ssim  # noqa: E402

STYLE = np.eye(26, dtype=np.float32)[7]


def style_for(model: str) -> np.ndarray:
    if model in ("multistyle26", "student26"):
        return STYLE
    return (0.5 * np.random.default_rng(1).standard_normal(100)).astype(np.float32)


@pytest.fixture(scope="module")
def frames():
    """Two real frames of the sample clip at 320x240 (the hand and the cup)."""
    return real_frames("cup", every=60, limit=3, size=(320, 240))[1:]


def levels(a, b) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.mark.parametrize("model", ["multistyle26", "student26", "arbitrary_transformer"])
def test_fp32_matches_onnxruntime_to_one_level(frames, model):
    style = style_for(model)
    ref = engines.create("onnxruntime", model).run(frames, style)
    out = engines.create("torch", model, precision="fp32").run(frames, style)
    diff = levels(out, ref)
    print(f"\n{model} torch fp32 vs onnxruntime: max {diff.max()}, mean {diff.mean():.5f} levels")
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert diff.max() <= 1 and diff.mean() < 0.01  # summation order only


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precisions_keep_the_quality_bound(frames, precision):
    """Half-precision frame path, float32 norm statistics, style path and output tail:
    inside the bound the CPU engines keep (mean 0.02 on the [0, 1] scale, SSIM 0.92)."""
    small = frames[:, ::2, ::2]  # 160x120: PyTorch's CPU half kernels are slow
    ref = engines.create("onnxruntime", "multistyle26").run(np.ascontiguousarray(small), STYLE)
    out = engines.create("torch", "multistyle26", precision=precision).run(small, STYLE)
    diff = levels(out, ref)
    unit = lambda x: x.astype(np.float32) / 255  # noqa: E731
    worst = min(ssim(unit(o), unit(r)) for o, r in zip(out, ref))
    print(f"\ntorch {precision} vs onnxruntime fp32 (CPU): max {diff.max()}, mean {diff.mean():.3f} levels, "
          f"SSIM min {worst:.4f}")
    assert diff.mean() / 255 <= 0.02 and worst >= 0.92


def test_norm_statistics_stay_float32_in_half_precision():
    net = Network(model_file("multistyle26", "fp32").read_bytes(), "cpu", torch.bfloat16)
    seen = []
    real = torch.nn.functional.instance_norm

    def watch(x, *args, **kwargs):
        seen.append(x.dtype)
        return real(x, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.functional, "instance_norm", watch)
        out = net(torch.zeros((1, 16, 16, 3), dtype=torch.uint8), torch.from_numpy(STYLE))
    assert out.dtype == torch.uint8
    assert len(seen) == 18 and set(seen) == {torch.float32}
    convs = [w for (name, dtype, _), w in net._weights.items() if w.dim() == 4]
    assert convs and all(w.dtype == torch.bfloat16 for w in convs)


def test_frames_of_any_size_are_padded_and_cropped_inside_the_network():
    """50x30 (not multiples of 4): the network's own reflect pad and crop give what the
    tensorrt engine's in-graph pad and crop give on onnxruntime."""
    raw = model_file("multistyle26", "fp32").read_bytes()
    image = real_frames("cup", every=60, limit=2, size=(30, 50))
    ref = ort.InferenceSession(trt_engine.with_pad_crop(raw, 50, 30), providers=["CPUExecutionProvider"]).run(
        None, {"image": image, "style": STYLE})[0]
    for layout in (False, True):  # channels_last: the memory layout the CUDA engine uses
        out = Network(raw, "cpu", channels_last=layout)(torch.from_numpy(image), torch.from_numpy(STYLE)).numpy()
        assert out.shape == (2, 50, 30, 3) and levels(out, ref).max() <= 1
    with pytest.raises(EngineError, match="too small"):
        Network(raw, "cpu")(torch.zeros((1, 2, 30, 3), dtype=torch.uint8), torch.from_numpy(STYLE))


def test_per_frame_styles_run_apart():
    engine = engines.create("torch", "multistyle26", precision="fp32")
    batch = np.random.default_rng(2).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    rows = np.eye(26, dtype=np.float32)[[3, 19]]
    both = engine.run(batch, rows)
    assert np.array_equal(both[0], engine.run(batch[:1], rows[0])[0])
    assert np.array_equal(both[1], engine.run(batch[1:], rows[1])[0])


# --- choosing it, and its errors ----------------------------------------------------------------


@pytest.fixture
def fresh_probes():
    gpu.nvidia_gpus.cache_clear()
    gpu.torch_cuda_available.cache_clear()
    gpu.ort_cuda_available.cache_clear()
    yield
    gpu.nvidia_gpus.cache_clear()
    gpu.torch_cuda_available.cache_clear()
    gpu.ort_cuda_available.cache_clear()


def test_auto_on_nvidia_takes_tensorrt_then_torch_then_onnxruntime_cuda(fresh_probes, monkeypatch):
    monkeypatch.setattr(gpu, "gpu_present", lambda: True)
    monkeypatch.setattr(gpu, "tensorrt_installed", lambda: True)
    monkeypatch.setattr(gpu, "torch_cuda_available", lambda: True)
    monkeypatch.setattr(gpu, "ort_cuda_available", lambda: True)
    assert engines.available()[:3] == ["tensorrt", "torch", "onnxruntime-cuda"]
    assert engines.resolve("auto") == "tensorrt"
    monkeypatch.setattr(gpu, "tensorrt_installed", lambda: False)
    assert engines.resolve("auto") == "torch"
    assert engines.resolve("auto", "fp16") == "torch"
    assert engines.resolve("auto", "bf16") == "torch"
    assert engines.resolve("auto", "int8") == "onnxruntime"
    monkeypatch.setattr(gpu, "torch_cuda_available", lambda: False)
    assert engines.resolve("auto") == "onnxruntime-cuda"


def test_a_cpu_machine_never_picks_torch_by_itself(fresh_probes):
    if gpu.gpu_present():
        pytest.skip("this machine has an NVIDIA GPU")
    assert "torch" not in engines.available()
    assert engines.resolve("auto") == "onnxruntime"
    assert engines.resolve("torch", "bf16") == "torch"
    with pytest.raises(EngineError, match="torch engine does not compute in int8"):
        engines.resolve("torch", "int8")


def test_cuda_without_a_gpu_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this PyTorch has CUDA")
    with pytest.raises(EngineError, match="sees no CUDA GPU") as err:
        torch_engine.TorchCUDAEngine("multistyle26")
    assert "\n" not in str(err.value)
    assert torch_engine.pick_precision("auto", "cuda") == "fp16"
    assert torch_engine.pick_precision("auto", "cpu") == "fp32"


def test_no_pytorch_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(EngineError, match="needs PyTorch.*pip install torch") as err:
        torch_engine.shared_engine("multistyle26")
    assert "\n" not in str(err.value)


# --- the CUDA engine's queue on host tensors ----------------------------------------------------


class HostTorch:
    """cuda_mem._Torch with host tensors: buffers are CPU tensors, streams and events
    are tokens, copies happen when queued."""

    name = "host-torch"

    def alloc(self, n):
        t = torch.zeros(n, dtype=torch.uint8)
        return cuda_mem._Buf(t.data_ptr(), keep=t)

    def host(self, n):
        t = torch.zeros(n, dtype=torch.uint8)
        return cuda_mem._Buf(t.data_ptr(), t.numpy(), keep=t)

    def free(self, buf):
        buf.keep = None

    def stream(self):
        return object()

    event = stream

    def record(self, event, stream):
        pass

    wait = record

    def sync(self, event):
        pass

    def destroy_stream(self, stream):
        pass

    destroy_event = sync

    def h2d(self, dst, src, n, stream):
        dst.keep[:n].copy_(src.keep[:n])

    d2h = h2d


def test_the_cuda_engines_batches_through_the_device_queue(monkeypatch):
    """TorchCUDAEngine's runner on host tensors (no CUDA graph): the uint8 and float32 views
    of the slot buffers, chunks of max_batch, a size that is not a multiple of 4."""
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    engine = object.__new__(torch_engine.TorchCUDAEngine)
    engine.torch, engine.cuda, engine.graphs, engine.max_batch = torch, HostTorch(), False, 4
    engine.net = Network(model_file("multistyle26", "fp32").read_bytes(), "cpu")
    engine.dim = 26
    engine._init_runners()
    cpu = engines.create("torch", "multistyle26", precision="fp32")
    for shape in ((6, 32, 48, 3), (3, 30, 50, 3)):
        batch = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
        np.testing.assert_array_equal(engine.run(batch, STYLE), cpu.run(batch, STYLE))
    streamed = list(engine.stream([batch, batch[:1], batch], STYLE))
    assert [len(b) for b in streamed] == [3, 1, 3]
    engine.close()
    assert engine._runners == {}
