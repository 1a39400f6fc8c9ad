"""Helpers shared by the benchmarks: the system block, timing, tables and results files.

Nothing here imports TensorFlow, so a benchmark can set its environment first.
"""
from __future__ import annotations

import datetime as _dt
import json
import statistics
import time
from pathlib import Path

from vidstyle.measure.system import REPO, cpu_model, git_revision, system_block, versions  # noqa: F401  (re-exported)


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
