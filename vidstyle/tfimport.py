"""Import TensorFlow without its start-up notices on the user's terminal."""
from __future__ import annotations

import os
import sys


def import_tensorflow():
    """``import tensorflow`` with fd 2 silenced for the duration.

    TensorFlow 2.21 prints absl/oneDNN notices from C++ at import, before
    TF_CPP_MIN_LOG_LEVEL is read, which breaks vidstyle's one-line errors.
    Only the import is silenced: an ImportError still propagates as usual.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow
