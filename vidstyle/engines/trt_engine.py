"""TensorRT engine: the ONNX export built into a TensorRT plan for the stream's frame size.

- Source: the same ONNX file the onnxruntime engine runs (export/onnx_export.py), uint8 NHWC in
  and out, so the uint8 -> float conversion, the NHWC <-> NCHW transposes and the final
  rounding run on the GPU inside the plan: the host copies a quarter of the bytes a
  float32 interface would, and touches no pixel. Frames whose sides are not multiples
  of 4 are reflect-padded and cropped back inside the plan too (``with_pad_crop``).
- One plan per frame size, with an optimisation profile for batch 1..B (B: ``max_batch``,
  by default ``VIDSTYLE_TRT_MAX_BATCH`` or 8). A batch larger than B runs as several
  chunks, pipelined.
- Every plan is a strongly typed network (TensorRT 10 and 11 alike): it computes in the
  types its ONNX file states. FP16 builds from the float16 ONNX of export/fp16.py
  (float16 convolutions, float32 instance-norm statistics, style path and output tail);
  FP32 from the float32 export. TF32 is off in both, so what the file says is float32
  is float32.
- Serialized plans are cached on disk (export/model_cache.py) under ``plan_key``: the weights
  hash, the TensorRT version, the GPU name, the precision and the shape profile.
- Transfers (engines/device_queue.py): pinned host buffers, one non-default stream each for
  upload, inference and download, and two slots of buffers, so batch k+1 uploads while
  batch k runs and batch k downloads while k+1 runs. ``submit`` returns at once; ``run``
  is submit + result.
- Device memory through cuda-python (``cuda.bindings.runtime`` or ``cuda.cudart``),
  else cupy, else torch: whichever imports.

Everything is imported lazily: ``import vidstyle.engines.trt_engine`` works anywhere;
creating the engine without TensorRT, a GPU or a CUDA binding is a one-line EngineError.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from vidstyle.errors import EngineError
from vidstyle.engines import gpu
from vidstyle.engines.export import model_cache, style_dim
from vidstyle.engines.cuda_mem import cuda_backend
from vidstyle.engines.device_queue import QueuedEngine, SlotRunner

PRECISIONS = ("fp16", "fp32")
DEFAULT_MAX_BATCH = 8


def _tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise EngineError("the tensorrt engine needs TensorRT, which is not installed: "
                          "pip install 'vidstyle[gpu]' (tensorrt-cu12), see docs/gpu.md") from None
    except Exception as exc:  # a wheel whose CUDA libraries fail to load
        raise EngineError(f"TensorRT is installed but does not load: {str(exc).splitlines()[0]}") from None
    return tensorrt


def check_gpu() -> str:
    """The first GPU's name, or a one-line error when the machine shows no NVIDIA GPU."""
    names = gpu.nvidia_gpus()
    if not names:
        raise EngineError("no NVIDIA GPU or driver visible here (no /proc/driver/nvidia, nvidia-smi lists "
                          "none): the tensorrt engine needs one; use --engine onnxruntime on the CPU")
    return names[0]


def max_batch_default() -> int:
    try:
        return max(1, int(os.environ.get("VIDSTYLE_TRT_MAX_BATCH", DEFAULT_MAX_BATCH)))
    except ValueError:
        raise EngineError("VIDSTYLE_TRT_MAX_BATCH must be a whole number") from None


def plan_key(model: str, precision: str, trt_version: str, gpu_name: str, max_batch: int,
             height: int, width: int) -> str:
    """The cache name of a serialized plan: it changes with the weights, the TensorRT
    version, the GPU, the precision and the shape profile (batch 1..max_batch at
    height x width), and with nothing else."""
    gpu_tag = "".join(c if c.isalnum() else "_" for c in gpu_name)
    return model_cache.key(model, precision, trt=trt_version, gpu=gpu_tag,
                           profile=f"b1-{max_batch}_{height}x{width}")


# --- building ------------------------------------------------------------------------------


def with_pad_crop(onnx_bytes: bytes, height: int, width: int) -> bytes:
    """The export for frames of ``height`` x ``width`` that are not multiples of 4: the
    graph itself reflect-pads them at the bottom and right up to a multiple of 4 (as
    geometry.pad does on the CPU: reflection without repeating the edge) and crops the
    result back, so pad and crop run on the GPU inside the plan. Both happen on the float
    NCHW tensor, between the export's own transposes."""
    import onnx
    from onnx import helper, numpy_helper

    ph, pw = -height % 4, -width % 4
    if not (ph or pw):
        return onnx_bytes
    if min(height, width) <= max(ph, pw):
        raise EngineError(f"frame size {width}x{height} is too small to pad on the GPU")
    model = onnx.ModelProto.FromString(onnx_bytes)
    graph = model.graph
    perm = lambda n: next((list(a.ints) for a in n.attribute if a.name == "perm"), None)  # noqa: E731
    first = next(n for n in graph.node if n.op_type == "Transpose" and perm(n) == [0, 3, 1, 2])
    last = [n for n in graph.node if n.op_type == "Transpose" and perm(n) == [0, 2, 3, 1]][-1]
    nchw, padded = first.output[0], first.output[0] + "__padded"
    for node in graph.node:
        node.input[:] = [padded if name == nchw else name for name in node.input]
    graph.initializer.extend([
        numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, ph, pw], np.int64), "device_pads"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "crop_starts"),
        numpy_helper.from_array(np.array([height, width], np.int64), "crop_ends"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "crop_axes")])
    pad = helper.make_node("Pad", [nchw, "device_pads"], [padded], name="device_pad", mode="reflect")
    cropped = last.input[0] + "__cropped"
    crop = helper.make_node("Slice", [last.input[0], "crop_starts", "crop_ends", "crop_axes"], [cropped],
                            name="device_crop")
    last.input[0] = cropped
    nodes = list(graph.node)
    nodes.insert(nodes.index(first) + 1, pad)
    nodes.insert(nodes.index(last), crop)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model.SerializeToString()



def _logger(trt):
    class Logger(trt.ILogger):
        """Keeps TensorRT's last error line for the EngineError; prints nothing."""

        def __init__(self):
            trt.ILogger.__init__(self)
            self.last_error = ""

        def log(self, severity, msg):
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.last_error = str(msg).strip().splitlines()[-1] if str(msg).strip() else ""

    return Logger()


def build_plan(trt, logger, onnx_bytes: bytes, precision: str, max_batch: int, height: int, width: int,
               label: str) -> bytes:
    """A serialized plan of ``onnx_bytes`` (the float32 export) for batch 1..max_batch at
    height x width, strongly typed, from the float16 ONNX for fp16, with TF32 off."""
    from vidstyle.engines.export.fp16 import fp16_bytes

    what = f"the {label} engine ({precision}, {width}x{height}, batch 1..{max_batch})"
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is None:
        raise EngineError(f"TensorRT {getattr(trt, '__version__', '')} cannot build strongly typed networks: "
                          "the tensorrt engine needs TensorRT 10 or later")
    if precision == "fp16":
        onnx_bytes = fp16_bytes(onnx_bytes)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        first = parser.get_error(0).desc() if parser.num_errors else logger.last_error
        raise EngineError(f"TensorRT cannot parse {what}: {first}")
    config = builder.create_builder_config()
    # TF32 is on by default and would round the float32 layers' inputs (the norm statistics
    # of fp16 plans, everything in fp32 plans) to 10-bit mantissas.
    config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, height, width, 3), (max_batch, height, width, 3), (max_batch, height, width, 3))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT could not build {what}: {logger.last_error or 'no error logged'}")
    return bytes(plan)


# --- running -------------------------------------------------------------------------------


class _Runner(SlotRunner):
    """One plan (one frame size): its execution context, on the shared streams and slots."""

    def __init__(self, trt, logger, cuda, plan: bytes, height: int, width: int, max_batch: int, dim: int):
        self._runtime = trt.Runtime(logger)
        self.engine = self._runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise EngineError(f"TensorRT cannot load the cached plan: {logger.last_error or 'no error logged'}")
        self.context = self.engine.create_execution_context()
        super().__init__(cuda, height, width, max_batch, dim)

    def execute(self, n: int, slot, stream) -> None:
        ctx = self.context
        if not ctx.set_input_shape("image", (n, self.height, self.width, 3)):
            raise EngineError(f"TensorRT refused the input shape {n}x{self.height}x{self.width}x3 "
                              f"(the plan takes batch 1..{self.max_batch})")
        for tensor, buf in (("image", slot.dev_in), ("style", slot.dev_style), ("stylized", slot.dev_out)):
            if not ctx.set_tensor_address(tensor, buf.ptr):
                raise EngineError(f"TensorRT refused the device address of {tensor!r}")
        if not ctx.execute_async_v3(stream.handle):
            raise EngineError("TensorRT could not enqueue the batch")

    def close(self) -> None:
        super().close()
        self.context = self.engine = None  # the context goes before the engine it came from


class TRTEngine(QueuedEngine):
    name = "tensorrt"

    def __init__(self, model: str, precision: str = "fp16", max_batch: int | None = None):
        if precision not in PRECISIONS:
            raise EngineError(f"the tensorrt engine computes in {' or '.join(PRECISIONS)}, not {precision}")
        self.trt = _tensorrt()
        check_gpu()
        self.cuda = cuda_backend()
        try:
            count = self.cuda.device_count()
        except Exception as exc:  # noqa: BLE001 - a driver/runtime mismatch surfaces here
            raise EngineError(f"the CUDA driver is not usable: {str(exc).splitlines()[0]}") from None
        if count < 1:
            raise EngineError("CUDA sees no GPU (CUDA_VISIBLE_DEVICES empty?): the tensorrt engine needs one")
        self.gpu_name = self.cuda.device_name()
        self.model, self.precision = model, precision
        self.max_batch = max_batch or max_batch_default()
        self._logger = _logger(self.trt)
        from vidstyle.engines.export import model_file

        self._onnx = model_file(model, "fp32")  # the shipped float32 export
        self.dim = style_dim(self._onnx.read_bytes())
        self._init_runners()

    def plan_file(self, height: int, width: int):
        name = plan_key(self.model, self.precision, self.trt.__version__, self.gpu_name, self.max_batch, height, width)
        return model_cache.cached(name, ".plan", lambda: build_plan(
            self.trt, self._logger, with_pad_crop(self._onnx.read_bytes(), height, width), self.precision,
            self.max_batch, height, width, self.model))

    def make_runner(self, height: int, width: int) -> _Runner:
        plan = self.plan_file(height, width).read_bytes()
        return _Runner(self.trt, self._logger, self.cuda, plan, height, width, self.max_batch, self.dim)


_SHARED: dict[tuple[str, str], TRTEngine] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(model: str, precision: str = "fp16") -> TRTEngine:
    """One engine per (model, precision) per process: plans and buffers are reused."""
    with _SHARED_LOCK:
        if (model, precision) not in _SHARED:
            _SHARED[(model, precision)] = TRTEngine(model, precision)
        return _SHARED[(model, precision)]
