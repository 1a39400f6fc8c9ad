"""GPU memory, streams and events for the tensorrt engine, through whichever CUDA binding
imports: cuda-python (``cuda.bindings.runtime`` or ``cuda.cudart``), else cupy, else torch.
Each backend offers the same small set of calls (alloc, pinned host buffers, streams,
events, async copies), so the engine is written once.
"""
from __future__ import annotations

import ctypes

import numpy as np

from vidstyle.errors import EngineError


class _Buf:
    def __init__(self, ptr: int, array=None, keep=None):
        self.ptr, self.array, self.keep = int(ptr), array, keep


def _host_array(ptr: int, n: int) -> np.ndarray:
    return np.ctypeslib.as_array((ctypes.c_uint8 * n).from_address(int(ptr)))


class _Handle(int):
    @property
    def handle(self) -> int:
        return int(self)


class _CudaRuntime:
    """cuda-python's runtime bindings: every call returns (error, *values)."""

    def __init__(self, rt):
        self.rt = rt
        self.name = "cuda-python"

    def _ok(self, result):
        err, *values = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            name = self.rt.cudaGetErrorName(err)[1]
            raise EngineError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
        return values[0] if len(values) == 1 else values

    def device_count(self) -> int:
        return int(self._ok(self.rt.cudaGetDeviceCount()))

    def device_name(self) -> str:
        name = self._ok(self.rt.cudaGetDeviceProperties(0)).name
        return (name.decode(errors="replace") if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()

    def alloc(self, n: int) -> _Buf:
        return _Buf(int(self._ok(self.rt.cudaMalloc(n))))

    def host(self, n: int) -> _Buf:
        ptr = int(self._ok(self.rt.cudaMallocHost(n)))
        return _Buf(ptr, _host_array(ptr, n))

    def free(self, buf: _Buf) -> None:
        self._ok(self.rt.cudaFreeHost(buf.ptr) if buf.array is not None else self.rt.cudaFree(buf.ptr))

    def stream(self):
        # Kept as a plain int handle: cuda-python's calls take ints for streams, as TensorRT does.
        return _Handle(int(self._ok(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking))))

    def event(self):
        return self._ok(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDisableTiming))

    def destroy_stream(self, stream) -> None:
        self._ok(self.rt.cudaStreamDestroy(int(stream)))

    def destroy_event(self, event) -> None:
        self._ok(self.rt.cudaEventDestroy(event))

    def record(self, event, stream) -> None:
        self._ok(self.rt.cudaEventRecord(event, stream))

    def wait(self, stream, event) -> None:
        self._ok(self.rt.cudaStreamWaitEvent(stream, event, 0))

    def sync(self, event) -> None:
        self._ok(self.rt.cudaEventSynchronize(event))

    def h2d(self, dst: _Buf, src: _Buf, n: int, stream) -> None:
        self._ok(self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, n, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))

    def d2h(self, dst: _Buf, src: _Buf, n: int, stream) -> None:
        self._ok(self.rt.cudaMemcpyAsync(dst.ptr, src.ptr, n, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))


class _Cupy:
    """cupy.cuda.runtime: the same runtime calls on raw pointers; errors raise."""

    def __init__(self, cupy):
        self.rt = cupy.cuda.runtime
        self.name = "cupy"

    def device_count(self) -> int:
        return int(self.rt.getDeviceCount())

    def device_name(self) -> str:
        name = self.rt.getDeviceProperties(0)["name"]
        return (name.decode() if isinstance(name, bytes) else str(name)).strip()

    def alloc(self, n: int) -> _Buf:
        return _Buf(self.rt.malloc(n))

    def host(self, n: int) -> _Buf:
        ptr = self.rt.hostAlloc(n, 0)
        return _Buf(ptr, _host_array(ptr, n))

    def free(self, buf: _Buf) -> None:
        (self.rt.freeHost if buf.array is not None else self.rt.free)(buf.ptr)

    def stream(self):
        return _Handle(self.rt.streamCreateWithFlags(1))  # cudaStreamNonBlocking

    def event(self):
        return self.rt.eventCreateWithFlags(2)  # cudaEventDisableTiming

    def destroy_stream(self, stream) -> None:
        self.rt.streamDestroy(int(stream))

    def destroy_event(self, event) -> None:
        self.rt.eventDestroy(event)

    def record(self, event, stream) -> None:
        self.rt.eventRecord(event, int(stream))

    def wait(self, stream, event) -> None:
        self.rt.streamWaitEvent(int(stream), event, 0)

    def sync(self, event) -> None:
        self.rt.eventSynchronize(event)

    def h2d(self, dst: _Buf, src: _Buf, n: int, stream) -> None:
        self.rt.memcpyAsync(dst.ptr, src.ptr, n, 1, int(stream))  # cudaMemcpyHostToDevice

    def d2h(self, dst: _Buf, src: _Buf, n: int, stream) -> None:
        self.rt.memcpyAsync(dst.ptr, src.ptr, n, 2, int(stream))  # cudaMemcpyDeviceToHost


class _Torch:
    """torch: buffers are tensors (pinned on the host), copies are tensor copies queued
    on torch streams."""

    def __init__(self, torch):
        self.torch = torch
        self.name = "torch"

    def device_count(self) -> int:
        return int(self.torch.cuda.device_count())

    def device_name(self) -> str:
        return self.torch.cuda.get_device_name(0)

    def alloc(self, n: int) -> _Buf:
        t = self.torch.empty(n, dtype=self.torch.uint8, device="cuda")
        return _Buf(t.data_ptr(), keep=t)

    def host(self, n: int) -> _Buf:
        t = self.torch.empty(n, dtype=self.torch.uint8, pin_memory=True)
        return _Buf(t.data_ptr(), t.numpy(), keep=t)

    def free(self, buf: _Buf) -> None:
        buf.keep = None

    def stream(self):
        s = self.torch.cuda.Stream()
        s.handle = s.cuda_stream
        return s

    def event(self):
        return self.torch.cuda.Event()

    # torch frees its streams and events when the last reference goes.
    def destroy_stream(self, stream) -> None:
        pass

    def destroy_event(self, event) -> None:
        pass

    def record(self, event, stream) -> None:
        event.record(stream)

    def wait(self, stream, event) -> None:
        stream.wait_event(event)

    def sync(self, event) -> None:
        event.synchronize()

    def _copy(self, dst: _Buf, src: _Buf, n: int, stream) -> None:
        with self.torch.cuda.stream(stream):
            dst.keep[:n].copy_(src.keep[:n], non_blocking=True)

    h2d = d2h = _copy


def cuda_backend():
    """The first importable CUDA binding: cuda-python, cupy, torch (with CUDA)."""
    for module in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return _CudaRuntime(__import__(module, fromlist=["_"]))
        except ImportError:
            continue
    try:
        import cupy

        return _Cupy(cupy)
    except ImportError:
        pass
    try:
        import torch

        if torch.cuda.is_available():
            return _Torch(torch)
    except ImportError:
        pass
    raise EngineError("the tensorrt engine needs a CUDA binding for GPU memory: pip install cuda-python "
                      "(part of 'vidstyle[gpu]'), or have torch or cupy with CUDA installed")
