"""vidstyle: neural style transfer for video, fast and without flicker.

    from vidstyle import TranscodeConfig, transcode
    transcode(TranscodeConfig(Path("in.mp4"), Path("out.mp4"), style="7"))

Heavy dependencies (TensorFlow, PyAV) load on first use, not on import.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["TranscodeConfig", "TranscodeResult", "transcode", "Stylizer", "VidstyleError", "__version__"]


def __getattr__(name: str):
    if name in ("TranscodeConfig", "TranscodeResult", "transcode"):
        from . import transcode as module

        return getattr(module, name)
    if name == "Stylizer":
        from .stylize import Stylizer

        return Stylizer
    if name == "VidstyleError":
        from .errors import VidstyleError

        return VidstyleError
    raise AttributeError(name)
