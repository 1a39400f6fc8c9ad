"""One root exception for the library; the CLI turns any of them into one line and exit 1."""
from __future__ import annotations


class VidstyleError(Exception):
    """Root of every error vidstyle raises on purpose."""


class InputError(VidstyleError):
    """The input video or image is missing, unreadable or has no usable stream."""


class OutputError(VidstyleError):
    """The output cannot be written where the user asked."""


class StyleError(VidstyleError, ValueError):
    """A style spec, index, weight or picture is not usable."""


class EngineError(VidstyleError):
    """An inference engine is unavailable or failed."""


class ResourceError(VidstyleError):
    """The job needs more memory than this machine has available."""


class PipelineError(VidstyleError):
    """A pipeline stage failed; carries the stage name and the frame index."""

    def __init__(self, stage: str, frame_index: int | None, cause: BaseException, at_end: bool = False):
        where = f"frame {frame_index}" if frame_index is not None else ("end of stream" if at_end else "start of stream")
        # Our own errors already say what and where, in the user's terms ("in.mp4: cannot
        # decode frame 5 (...)"); "decode failed at frame 5: " in front would only repeat it.
        super().__init__(str(cause) if isinstance(cause, VidstyleError) else f"{stage} failed at {where}: {cause}")
        self.stage = stage
        self.frame_index = frame_index
        self.cause = cause


class Cancelled(VidstyleError):
    """The run was stopped on request (Ctrl-C, SIGTERM or a cancel call).

    ``kept`` frames were finished before the stop; with ``partial`` set they were
    published there as a playable file (``TranscodeConfig.keep_partial``).
    """

    def __init__(self, message: str = "cancelled", kept: int = 0, total: int | None = None, partial=None):
        super().__init__(message)
        self.kept, self.total, self.partial = kept, total, partial
