"""Shared fixtures: small clips made once per session, and a thread-leak check."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything can import TensorFlow

from vidstyle.models.tfimport import preload_srtp  # noqa: E402

preload_srtp()  # test modules import keras directly; aiortc's SRTP must load before TensorFlow

import shutil
import threading

import pytest

from media import make_video

CLIP_FRAMES = 10  # batches of 4: two full ones and a short last one, so padding is exercised
CLIP_SIZE = (64, 48)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs TensorFlow inference or a subprocess that loads it")


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """A 64x48, 10-frame, 25 fps H.264 clip with an AAC tone. Read-only: copy it to change it."""
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=CLIP_FRAMES, size=CLIP_SIZE)


@pytest.fixture
def clip_copy(clip, tmp_path):
    """The session clip copied into this test's own folder (tests that list or touch the folder)."""
    shutil.copy(clip, tmp_path / "in.mp4")
    return tmp_path / "in.mp4"


class ThreadCount:
    """``threading.active_count()`` when the test started, and the names of any extra threads."""

    def __init__(self):
        self.start = threading.active_count()
        self.names = {t.name for t in threading.enumerate()}

    def leaked(self) -> list[str]:
        return sorted(t.name for t in threading.enumerate() if t.name not in self.names)

    def assert_back_to_start(self) -> None:
        assert threading.active_count() == self.start, f"threads left running: {self.leaked()}"


@pytest.fixture
def threads():
    return ThreadCount()
