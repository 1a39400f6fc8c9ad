"""Inference engines: ``run(batch_uint8_nhwc, style) -> batch_uint8_nhwc``.

Each engine imports its runtime lazily, so a missing optional runtime is a
clear error at selection time, never an ImportError at ``import vidstyle``.
"""
from __future__ import annotations

import importlib.util

from ..errors import EngineError
from .base import Engine

ENGINES = ("tf",)
PRECISIONS = ("auto", "fp32", "bf16", "int8")


def available() -> list[str]:
    """Engines that can run here, fastest first."""
    # find_spec, not import: choosing an engine must not pay TensorFlow's start-up.
    return [name for name, module in (("tf", "tensorflow"),) if importlib.util.find_spec(module)]


def create(name: str, model: str, threads: int = 0, precision: str = "auto") -> Engine:
    """An engine for ``model`` (a name from vidstyle.models.MODEL_NAMES) computing in
    ``precision`` (auto: the engine's fastest that keeps the quality bound)."""
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if name == "auto":
        present = available()
        if not present:
            raise EngineError("no inference engine is installed; pip install tensorflow")
        name = present[0]
    if name == "tf":
        from .tf_engine import shared_engine

        if precision not in ("auto", "fp32"):
            raise EngineError(f"the tf engine computes in fp32 only, not {precision}")

        return shared_engine(model, threads)
    raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available()) or 'none'}")
