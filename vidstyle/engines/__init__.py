"""Inference engines: ``run(batch_uint8_nhwc, style) -> batch_uint8_nhwc``.

Each engine imports its runtime lazily, so a missing optional runtime is a
clear error at selection time, never an ImportError at ``import vidstyle``.
"""
from __future__ import annotations

import importlib.util

from ..errors import EngineError
from .base import Engine

ENGINES = ("tf",)


def available() -> list[str]:
    """Engines that can run here, fastest first."""
    # find_spec, not import: choosing an engine must not pay TensorFlow's start-up.
    return [name for name, module in (("tf", "tensorflow"),) if importlib.util.find_spec(module)]


def create(name: str, model: str, threads: int = 0) -> Engine:
    """An engine for ``model`` (a name from vidstyle.models.MODEL_NAMES)."""
    if name == "auto":
        present = available()
        if not present:
            raise EngineError("no inference engine is installed; pip install tensorflow")
        name = present[0]
    if name == "tf":
        from .tf_engine import shared_engine

        return shared_engine(model, threads)
    raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available()) or 'none'}")
