"""Summaries of timings: latency percentiles and per-stage shares."""
from __future__ import annotations

import numpy as np

STAGE_ORDER = ("decode", "motion", "prepare", "batch", "engine", "finish", "temporal", "encode")


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """p50, p95 and p99 in milliseconds (linear interpolation; NaN when there is none)."""
    if not len(seconds):
        return {f"p{q}": float("nan") for q in (50, 95, 99)}
    return {f"p{q}": 1000 * float(v) for q, v in zip((50, 95, 99), np.percentile(seconds, (50, 95, 99)))}


def stage_summary(stages: dict, frames: int) -> dict[str, dict[str, float]]:
    """Per stage: busy ms per frame and its share of all stages' busy time."""
    total = sum(s.busy for s in stages.values()) or 1.0
    names = sorted(stages, key=lambda n: STAGE_ORDER.index(n) if n in STAGE_ORDER else len(STAGE_ORDER))
    return {n: {"ms_per_frame": 1000 * stages[n].busy / max(frames, 1), "share": stages[n].busy / total}
            for n in names if n != "batch"}
