"""Helpers shared by the benchmarks: the system block, timing, tables and results files.

Nothing here imports TensorFlow, so a benchmark can set its environment first.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("tensorflow-cpu", "tensorflow", "keras", "av", "numpy", "onnxruntime", "opencv-python")


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
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions(),
        "vidstyle_revision": git_revision(),
        "env": {k: os.environ[k] for k in ("TF_CPP_MIN_LOG_LEVEL", "OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")
                if k in os.environ},
        "when": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall) and ``sw.cpu``: CPU seconds of
    this process (all threads) plus of child processes that ended inside the block."""

    def __enter__(self) -> "Stopwatch":
        self.seconds = self.cpu = 0.0
        self._cpu0 = time.process_time() + _children_cpu()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu = time.process_time() + _children_cpu() - self._cpu0


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(rows: list[list], headers: list[str]) -> str:
    """A plain monospaced table; floats get 2 decimals."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else ("-" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def save_results(out_dir: Path, name: str, payload: dict) -> Path:
    """Write ``<out_dir>/<name>-<date>.json`` (a time suffix keeps same-day runs apart)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{_dt.datetime.now():%Y-%m-%d-%H%M%S}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
