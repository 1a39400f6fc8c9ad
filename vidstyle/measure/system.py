"""Where a number was measured: CPU, GPU, package versions, vidstyle's revision.

Nothing here imports TensorFlow: a benchmark can set its environment first.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from vidstyle.engines.cpu import usable_cores

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("vidstyle", "tensorflow-cpu", "tensorflow", "keras", "av", "numpy", "onnxruntime", "onnxruntime-gpu",
            "tensorrt", "opencv-python")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_revision(repo: Path = REPO) -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True,
                             text=True, timeout=10)
        return rev.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions(names=PACKAGES) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def system_block() -> dict:
    """Where a number was measured: put this in every results file."""
    usable = usable_cores()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "gpus": gpus(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions(),
        "vidstyle_revision": git_revision(),
        "env": {k: os.environ[k] for k in ("TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
                if k in os.environ},
        "when": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def gpus() -> list[str]:
    """NVIDIA GPU names from nvidia-smi, or [] where there is none."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return [line.strip() for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return []
