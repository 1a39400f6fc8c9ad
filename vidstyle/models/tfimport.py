"""Import TensorFlow without its start-up notices on the user's terminal."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager


@contextmanager
def quiet_stderr():
    """Silence C-level stderr (fd 2: FFmpeg, TensorFlow's absl) for a block."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def preload_srtp() -> None:
    """Load pylibsrtp (aiortc's SRTP, with its own OpenSSL) if it is installed, before TensorFlow.

    Loaded after TensorFlow 2.21 it crashes the process (a segmentation fault
    in its module init, seen on Linux x86_64 with pylibsrtp 1.0); loaded first,
    both work. ``vidstyle live --serve`` imports aiortc first anyway; this
    keeps any other order (a test run, a notebook) safe.
    """
    from importlib.util import find_spec

    if "pylibsrtp" not in sys.modules and find_spec("pylibsrtp") is not None:
        import pylibsrtp  # noqa: F401


def import_tensorflow():
    """``import tensorflow`` with fd 2 silenced for the duration.

    TensorFlow 2.21 prints absl/oneDNN notices from C++ at import, before
    TF_CPP_MIN_LOG_LEVEL is read, which breaks vidstyle's one-line errors.
    Only the import is silenced: an ImportError still propagates as usual.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    preload_srtp()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow
    return tensorflow
