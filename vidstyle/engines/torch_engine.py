"""PyTorch engine: the shipped ONNX network rebuilt in torch (engines/torch_net.py), for the
GPU stack most NVIDIA machines already have, and on the CPU with PyTorch's CPU build.

- CUDA: uint8 NHWC frames in and out, so the float conversion, the reflect pad to a
  multiple of 4 and the crop back, the network and the rounding all run on the GPU.
  fp16 (auto) or bf16 with float32 instance-norm statistics, style path and output tail,
  or fp32 with TF32 off. Batches queue on device streams with pinned host memory and
  two batches in flight (engines/device_queue.py); each batch shape is captured once as
  a CUDA graph and replayed, so a batch is one launch instead of a few hundred small ones.
- CPU: the same network computed inside the call, fp32 (auto) or bf16 (fp16 too, slowly).

PyTorch is imported when the engine is created, never at ``import vidstyle``; without it,
or asked for CUDA where PyTorch has none, the error is one line.
"""
from __future__ import annotations

import os
import threading

import numpy as np

from vidstyle.engines.base import RunsNow
from vidstyle.engines.device_queue import QueuedEngine, SlotRunner
from vidstyle.engines.export import model_file, style_dim
from vidstyle.errors import EngineError

PRECISIONS = ("fp32", "fp16", "bf16")
DEVICES = ("auto", "cuda", "cpu")
DEFAULT_MAX_BATCH = 8


def _torch():
    try:
        import torch
    except ImportError:
        raise EngineError("the torch engine needs PyTorch, which is not installed: pip install torch "
                          "(the CUDA build on an NVIDIA machine)") from None
    return torch


def pick_device(torch, device: str) -> str:
    """``device`` as asked; "auto" is cuda where this PyTorch sees a GPU, else cpu."""
    if device not in DEVICES:
        raise EngineError(f"the torch engine runs on {', '.join(DEVICES)}, not {device}")
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise EngineError(f"this PyTorch ({torch.__version__}, {build}) sees no CUDA GPU: the torch engine "
                          "runs on the CPU here (--engine torch without a GPU) or needs the CUDA build")
    return "cuda" if device == "cuda" or (device == "auto" and has_cuda) else "cpu"


def pick_precision(precision: str, device: str) -> str:
    """"auto": fp16 on CUDA (tensor cores; the norms stay float32), fp32 on the CPU."""
    if precision == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise EngineError(f"the torch engine computes in {' or '.join(PRECISIONS)}, not {precision}")
    return precision


def _network(torch, model: str, precision: str, device: str):
    from vidstyle.engines.torch_net import Network

    data = model_file(model, "fp32").read_bytes()
    half = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return Network(data, device, half, channels_last=device == "cuda"), style_dim(data)


class TorchCPUEngine(RunsNow):
    """The network on PyTorch's CPU threads, computed inside ``run``."""

    name = "torch"

    def __init__(self, model: str, precision: str = "fp32", threads: int = 0):
        self.torch = _torch()
        self.model, self.precision, self.device = model, pick_precision(precision, "cpu"), "cpu"
        if threads > 0:
            self.torch.set_num_threads(threads)
        self.net, self.dim = _network(self.torch, model, self.precision, "cpu")
        self._lock = threading.Lock()  # one batch at a time: PyTorch's intra-op pool is the parallelism

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        torch = self.torch
        batch = np.ascontiguousarray(batch, np.uint8)
        rows = np.asarray(style, np.float32).reshape(-1, np.shape(style)[-1])
        # The network mixes one style's norm tables per run: frames with different styles run apart.
        if len(rows) > 1 and not bool((rows == rows[:1]).all()):
            return np.concatenate([self.run(batch[i:i + 1], rows[i]) for i in range(len(batch))])
        with self._lock, torch.no_grad():
            return self.net(torch.from_numpy(batch), torch.from_numpy(np.ascontiguousarray(rows[0]))).numpy()

    def close(self) -> None:
        pass


class _Captured:
    """One batch shape as a CUDA graph: the static tensors it reads and writes."""

    def __init__(self, graph, images, style, out):
        self.graph, self.images, self.style, self.out = graph, images, style, out


class _Runner(SlotRunner):
    """One frame size on the GPU: the network (or its CUDA graph per batch size) on the
    compute stream between the shared upload and download streams."""

    def __init__(self, engine: TorchCUDAEngine, height: int, width: int):
        self.torch, self.net, self.use_graphs = engine.torch, engine.net, engine.graphs
        self._graphs: dict[int, _Captured] = {}
        self._pool = None
        super().__init__(engine.cuda, height, width, engine.max_batch, engine.dim)

    def _views(self, n: int, slot):
        torch, shape = self.torch, (n, self.height, self.width, 3)
        size = n * self.frame_bytes
        return (slot.dev_in.keep[:size].view(shape), slot.dev_style.keep.view(torch.float32),
                slot.dev_out.keep[:size].view(shape))

    def _capture(self, n: int) -> _Captured:
        torch = self.torch
        images = torch.zeros((n, self.height, self.width, 3), dtype=torch.uint8, device="cuda")
        style = torch.zeros(self.net.dim, dtype=torch.float32, device="cuda")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(2):  # outside the capture: cuDNN's algorithm search, lazy initialisation
                self.net(images, style)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()  # one memory pool: the graphs run one at a time
        with torch.no_grad(), torch.cuda.graph(graph, pool=self._pool):
            out = self.net(images, style)
        return _Captured(graph, images, style, out)

    def execute(self, n: int, slot, stream) -> None:
        torch = self.torch
        images, style, out = self._views(n, slot)
        captured = None
        if self.use_graphs:
            if n not in self._graphs:
                self._graphs[n] = self._capture(n)
                stream.wait_stream(torch.cuda.current_stream())  # the capture's static tensors
            captured = self._graphs[n]
        with torch.cuda.stream(stream), torch.no_grad():
            if captured is None:
                out.copy_(self.net(images, style))
            else:
                captured.images.copy_(images)
                captured.style.copy_(style)
                captured.graph.replay()
                out.copy_(captured.out)

    def close(self) -> None:
        super().close()
        self._graphs.clear()


class TorchCUDAEngine(QueuedEngine):
    name = "torch"

    def __init__(self, model: str, precision: str = "fp16", max_batch: int | None = None, graphs: bool = True):
        from vidstyle.engines.cuda_mem import _Torch

        self.torch = torch = _torch()
        pick_device(torch, "cuda")
        self.model, self.precision, self.device = model, pick_precision(precision, "cuda"), "cuda"
        # float32 means float32: TF32 would round convolution and matmul inputs to 10-bit
        # mantissas (PyTorch allows it for cuDNN convolutions by default). Process-wide.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True  # shapes are fixed per stream: time the algorithms once
        self.max_batch = max_batch or int(os.environ.get("VIDSTYLE_TORCH_MAX_BATCH", DEFAULT_MAX_BATCH))
        self.graphs = graphs and os.environ.get("VIDSTYLE_TORCH_GRAPHS", "1") != "0"
        self.cuda = _Torch(torch)
        self.net, self.dim = _network(torch, model, self.precision, "cuda")
        self._init_runners()

    def make_runner(self, height: int, width: int) -> _Runner:
        return _Runner(self, height, width)


_SHARED: dict[tuple, object] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(model: str, precision: str = "auto", device: str = "auto", threads: int = 0):
    """One torch engine per (model, precision, device) per process."""
    torch = _torch()
    device = pick_device(torch, device)
    precision = pick_precision(precision, device)
    key = (model, precision, device, threads if device == "cpu" else 0)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = (TorchCUDAEngine(model, precision) if device == "cuda"
                            else TorchCPUEngine(model, precision, threads))
        return _SHARED[key]
