"""Files built from the shipped ONNX exports (int8 ONNX, region-recompute variants,
TensorRT plans) cached on disk.

A file is named by everything that changes its content: the network, a hash of its
shipped ONNX file, the precision, the version of the passes that rewrite it and the
versions of the libraries that wrote it. Anything else (new weights, an upgraded onnxruntime) misses the cache
and builds afresh, so a stale file is never loaded. Files are written to a temporary name
and renamed, so two processes building at once, or a build killed half-way, never leave a
truncated file under a real name.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Callable

# Bump when a pass (int8, norm variants, float16, pad/crop) writes another file from the same export.
EXPORTER_VERSION = 2


def cache_dir() -> Path:
    """$VIDSTYLE_CACHE, else $XDG_CACHE_HOME/vidstyle, else ~/.cache/vidstyle."""
    if os.environ.get("VIDSTYLE_CACHE"):
        return Path(os.environ["VIDSTYLE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidstyle"


def weights_digest(model: str) -> str:
    """A digest of the network's shipped ONNX file: its weights and its graph."""
    from vidstyle.models import onnx_file

    return hashlib.sha256(onnx_file(model).read_bytes()).hexdigest()[:16]


def key(model: str, precision: str, **parts: str) -> str:
    """A file name for ``model`` at ``precision``; ``parts`` are further inputs (library
    versions, calibration digest, GPU name), in a stable order."""
    extra = "".join(f"-{k}{v}" for k, v in sorted(parts.items()))
    digest = hashlib.sha256(f"{weights_digest(model)}{extra}-x{EXPORTER_VERSION}".encode()).hexdigest()[:20]
    return f"{model}-{precision}-{digest}"


def cached(name: str, suffix: str, build: Callable[[], bytes]) -> Path:
    """The cached file ``name + suffix``, built with ``build()`` when missing."""
    folder = cache_dir()
    path = folder / f"{name}{suffix}"
    if path.is_file() and path.stat().st_size > 0:
        return path
    data = build()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache is shared like any other
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
