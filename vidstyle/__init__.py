"""vidstyle: neural style transfer for video, fast and without flicker.

    from vidstyle import TranscodeConfig, transcode
    transcode(TranscodeConfig(Path("in.mp4"), Path("out.mp4"), style="7"))

Heavy dependencies (TensorFlow, PyAV, OpenCV) load on first use, not on import.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it. The offline job lives in ``vidstyle.offline``,
# not in a module called ``transcode``: a submodule of the function's name would replace
# the function on this package as soon as anything imported it.
_API = {
    "TranscodeConfig": "vidstyle.offline",
    "TranscodeResult": "vidstyle.offline",
    "transcode": "vidstyle.offline",
    "StylizeSettings": "vidstyle.pipeline.stylizer",
    "Stylizer": "vidstyle.pipeline.stylizer",
    "VidstyleError": "vidstyle.errors",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vidstyle' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
