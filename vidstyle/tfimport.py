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


def import_tensorflow():
    """``import tensorflow`` with fd 2 silenced for the duration.

    TensorFlow 2.21 prints absl/oneDNN notices from C++ at import, before
    TF_CPP_MIN_LOG_LEVEL is read, which breaks vidstyle's one-line errors.
    Only the import is silenced: an ImportError still propagates as usual.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow
    return tensorflow
