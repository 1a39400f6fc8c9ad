"""Cheap probes for an NVIDIA GPU, used to choose engines without importing TensorRT or
starting CUDA.

``nvidia_gpus()`` reads the driver's /proc entries (no process, no CUDA context) and
falls back to ``nvidia-smi -L`` (one short process, 5 s at most); the answer is cached
for the process, so ``engines.available()`` can call it freely.
"""
from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
from pathlib import Path

from vidstyle.engines.export import onnxruntime
from vidstyle.errors import EngineError

PROC_GPUS = Path("/proc/driver/nvidia/gpus")


def _from_proc() -> list[str] | None:
    """GPU models from the driver's /proc files; None when the driver has no /proc entries."""
    if not PROC_GPUS.is_dir():
        return None
    names = []
    for info in sorted(PROC_GPUS.glob("*/information")):
        try:
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
        except OSError:
            continue
    return names


def _from_smi() -> list[str]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    # "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"
    return [line.split(":", 1)[1].split("(UUID")[0].strip() for line in out.splitlines() if line.startswith("GPU ")]


@functools.lru_cache(maxsize=1)
def nvidia_gpus() -> tuple[str, ...]:
    """The NVIDIA GPUs the driver sees, by model name; empty without a driver or a GPU."""
    names = _from_proc()
    return tuple(names) if names else tuple(_from_smi())


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible (the probe that tests monkeypatch)."""
    return bool(nvidia_gpus())


def tensorrt_installed() -> bool:
    """Whether the tensorrt module is installed, without importing it."""
    return importlib.util.find_spec("tensorrt") is not None


@functools.lru_cache(maxsize=1)
def torch_cuda_available() -> bool:
    """Whether PyTorch is installed with CUDA and sees a GPU (imports torch, a second or
    two; only asked where a GPU is present)."""
    if importlib.util.find_spec("torch") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken install is an engine that cannot run here
        return False


@functools.lru_cache(maxsize=1)
def ort_cuda_available() -> bool:
    """Whether onnxruntime has its CUDA execution provider (imports onnxruntime, ~0.1 s;
    only asked where a GPU is present)."""
    if importlib.util.find_spec("onnxruntime") is None:
        return False
    return cuda_provider_available()


def cuda_provider_available() -> bool:
    """Whether this onnxruntime has the CUDA execution provider (the onnxruntime-gpu wheel)."""
    try:
        return "CUDAExecutionProvider" in onnxruntime().get_available_providers()
    except EngineError:
        return False
