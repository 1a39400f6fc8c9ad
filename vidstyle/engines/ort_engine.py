"""onnxruntime engine: the Keras network exported to ONNX (float32, or int8 QDQ), run by
onnxruntime on the CPU, or in float32 on CUDA (``onnxruntime-cuda``).

The exported file is cached on disk (:mod:`vidstyle.engines.export.model_cache`), so only
the first run of a network at a precision pays for the export (about a second) or the
int8 calibration (about ten seconds). One session serves every frame size: the graph's
N, H and W are free, and onnxruntime plans each new shape on its first run. On the CPU
with ``threads`` 0 the frames of a batch run side by side, one per core. On CUDA the
session picks cuDNN's convolution algorithms by heuristics (the default benchmarks every
algorithm on each new shape) and runs through I/O binding: the uint8 frames are bound
from host memory and the output is bound on the device and copied back once.
"""
from __future__ import annotations

import threading

import numpy as np

from vidstyle.engines.base import RunsNow
from vidstyle.engines.cpu import usable_cores
from vidstyle.engines.export import model_file, onnxruntime
from vidstyle.engines.gpu import cuda_provider_available
from vidstyle.errors import EngineError

PRECISIONS = ("fp32", "int8")
DEVICES = ("cpu", "cuda")
# EXHAUSTIVE, onnxruntime's default, times every cuDNN algorithm for each new input shape:
# seconds on the first batch of every frame size (and again whenever live sizing moves).
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


def providers(device: str) -> list:
    """The execution providers for ``device``: on cuda, CUDA (with CUDA_OPTIONS) first and
    the CPU for any node CUDA lacks; a one-line error when this onnxruntime has no CUDA provider."""
    if device not in DEVICES:
        raise EngineError(f"the onnxruntime engine runs on {' or '.join(DEVICES)}, not {device}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if not cuda_provider_available():
        raise EngineError("onnxruntime has no CUDAExecutionProvider here (the CPU-only onnxruntime wheel "
                          "is installed): pip install 'vidstyle[gpu]' for onnxruntime-gpu, see docs/gpu.md")
    preload = getattr(onnxruntime(), "preload_dlls", None)  # onnxruntime-gpu >= 1.21: CUDA/cuDNN from the nvidia-* wheels
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001 - system libraries may still be found; the session says if not
            pass
    return [("CUDAExecutionProvider", dict(CUDA_OPTIONS)), "CPUExecutionProvider"]


def bound_run(session, feeds: dict[str, np.ndarray], output: str, device: str) -> np.ndarray:
    """``session.run`` through I/O binding: inputs bound from host arrays, ``output`` bound
    on ``device`` ("cpu" or "cuda") and copied to the host once at the end."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    binding.bind_output(output, device)
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


class ORTEngine(RunsNow):
    """``threads`` 0 (auto): a batch of several frames runs as parallel lanes, one frame
    per core at a time on single-threaded sessions, and a single frame uses every core.
    Measured on 2 cores (docs/cpu-speed.md): splitting the work of one frame across
    threads costs a synchronisation at every layer and idles cores in the small ones,
    so whole frames side by side deliver more frames per second. ``threads`` N: one
    session with N intra-op threads for everything. ``device`` "cuda": one session on
    the CUDA execution provider (no lanes: the GPU takes the whole batch at once)."""

    name = "onnxruntime"

    def __init__(self, model: str, threads: int = 0, precision: str = "fp32", device: str = "cpu"):
        if precision not in PRECISIONS:
            raise EngineError(f"the onnxruntime engine computes in {' or '.join(PRECISIONS)}, not {precision}")
        if device == "cuda" and precision != "fp32":
            raise EngineError(f"the onnxruntime engine computes in fp32 on cuda, not {precision} (int8 is a CPU path)")
        self._providers = providers(device)  # before the export: a missing provider fails fast
        self.model, self.precision, self.device = model, precision, device
        if device != "cpu":
            self.name = f"onnxruntime-{device}"
        path = model_file(model, precision)
        self.lanes = usable_cores() if threads == 0 and device == "cpu" else 1
        self._wide = self._session(path, threads, self._providers)
        self._narrow = self._session(path, 1) if self.lanes > 1 else self._wide
        self._variants: dict[str, object] = {}  # region recompute's graphs, loaded on first use
        if device == "cuda" and "CUDAExecutionProvider" not in self._wide.get_providers():
            # onnxruntime falls back to the CPU silently when the CUDA libraries fail to load.
            raise EngineError("onnxruntime could not start its CUDA provider (CUDA 12 / cuDNN 9 libraries "
                              "missing or no usable GPU); see docs/gpu.md")

    @staticmethod
    def _session(path, threads: int, providers: list | None = None):
        ort = onnxruntime()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            opts.intra_op_num_threads = threads
        try:
            return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # a damaged cache file: say which, so it can be deleted
            raise EngineError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None

    def run(self, batch: np.ndarray, style: np.ndarray) -> np.ndarray:
        n, h, w, _ = batch.shape
        if h % 4 or w % 4:
            raise EngineError(f"frame size {w}x{h} is not a multiple of 4")
        batch = np.ascontiguousarray(batch, np.uint8)
        rows = np.asarray(style, np.float32).reshape(-1, np.shape(style)[-1])
        # The graph mixes one style's normalisation tables for a whole run: frames with
        # different styles run apart.
        uniform = len(rows) == 1 or bool((rows == rows[:1]).all())
        if n == 1 or self.lanes == 1:
            if uniform:
                return self._infer(self._wide, batch, rows[0])
            return np.concatenate([self._infer(self._wide, batch[i:i + 1], rows[i]) for i in range(n)])
        return self._in_lanes(batch, rows if not uniform else np.broadcast_to(rows[:1], (n, rows.shape[1])))

    def _infer(self, session, images: np.ndarray, style: np.ndarray) -> np.ndarray:
        feeds = {"image": images, "style": np.ascontiguousarray(style)}
        if self.device == "cpu":
            return session.run(None, feeds)[0]
        return bound_run(session, feeds, "stylized", self.device)

    def _in_lanes(self, batch: np.ndarray, rows: np.ndarray) -> np.ndarray:
        out = np.empty_like(batch)

        def job(i: int) -> None:
            out[i] = self._infer(self._narrow, batch[i:i + 1], rows[i])[0]

        self._lanes(job, len(batch))
        return out

    def _lanes(self, job, count: int) -> None:
        """``job(i)`` for i < count, one core each, ``lanes`` at a time: threads started per
        call (a few microseconds against a frame's tens of milliseconds), so none outlives it."""
        errors: list[BaseException] = []

        def lane(k: int) -> None:
            try:
                for i in range(k, count, self.lanes):
                    job(i)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

        helpers = [threading.Thread(target=lane, args=(k,), name=f"ort-lane-{k}")
                   for k in range(1, min(self.lanes, count))]
        for t in helpers:
            t.start()
        lane(0)
        for t in helpers:
            t.join()
        if errors:
            raise errors[0]

    # -- region recompute: statistics measured on a keyframe, frozen for its crops ----------

    @property
    def regions(self) -> bool:
        return self.precision == "fp32" and self.device == "cpu"

    def _variant(self, norms: str):
        """The session of the "stats" or "frozen" graph, on every core (one frame at a time)."""
        if norms not in self._variants:
            self._variants[norms] = self._session(model_file(self.model, "fp32", norms), 0)
        return self._variants[norms]

    def run_stats(self, frame: np.ndarray, style: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Stylize one frame (1, H, W, 3) and return, with it, every norm layer's mean and
        variance per channel, in graph order: [mean0, var0, mean1, ...], each (C,)."""
        out, *stats = self._variant("stats").run(None, {"image": np.ascontiguousarray(frame, np.uint8),
                                      "style": np.ascontiguousarray(np.asarray(style, np.float32).reshape(-1))})
        return out, [s[0] for s in stats]

    def run_frozen(self, crops: list[np.ndarray], style: np.ndarray, stats: list[np.ndarray]) -> list[np.ndarray]:
        """Stylize crops (h, w, 3; sides multiples of 4) with a keyframe's statistics; a
        crop then matches the whole frame there, away from its margin."""
        wide = self._variant("frozen")
        feeds = {name: s for name, s in zip((i.name for i in wide.get_inputs()[2:]), stats)}
        feeds["style"] = np.ascontiguousarray(np.asarray(style, np.float32).reshape(-1))
        # One after another on every core: crops differ in size, and side by side the
        # largest would keep one core busy while the other idles.
        return [wide.run(["stylized"], {**feeds, "image": np.ascontiguousarray(c[None], np.uint8)})[0][0]
                for c in crops]

    def close(self) -> None:
        pass
