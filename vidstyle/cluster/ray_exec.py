"""Segments on Ray: an actor per worker loads the stylizer once; a failed segment runs again elsewhere.

This is the only module that imports ray, and only inside functions, so that
``import vidstyle`` and every command without ``--cluster`` never load it.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

from ..errors import VidstyleError
from ..transcode import TranscodeConfig

INSTALL_HINT = "--cluster needs Ray, which is not installed: pip install 'vidstyle[cluster]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise VidstyleError(INSTALL_HINT) from None
    return ray


def connect(cluster: str = "auto", num_cpus: int | None = None) -> bool:
    """Start or join a Ray runtime; True if this call started it (the caller shuts it down).

    ``local``: a Ray runtime on this machine; ``ray://HOST:PORT``: a cluster's Ray
    client server; ``auto``: ``RAY_ADDRESS`` if set, else local. An already
    initialised Ray (a test, a notebook) is used as it is.
    """
    if cluster not in ("auto", "local") and not cluster.startswith("ray://") and ":" not in cluster:
        raise VidstyleError(f"--cluster must be auto, local or ray://HOST:PORT, not {cluster!r}")
    ray = import_ray()
    if ray.is_initialized():
        return False
    if cluster == "auto":
        cluster = os.environ.get("RAY_ADDRESS") or "local"
    try:
        if cluster == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        elif cluster.startswith("ray://") or ":" in cluster:
            ray.init(address=cluster, log_to_driver=False, logging_level=logging.ERROR)
        else:
            raise VidstyleError(f"--cluster must be auto, local or ray://HOST:PORT, not {cluster!r}")
    except VidstyleError:
        raise
    except Exception as error:  # ConnectionError, TimeoutError, RuntimeError...
        raise VidstyleError(f"cannot connect to Ray at {cluster}: {' '.join(str(error).split())[:200]}") from None
    return True


def _worker_class(ray):
    @ray.remote(num_cpus=1, max_restarts=1)
    class SegmentWorker:
        """Loads the stylizer once; runs segments and whole files for one job's settings."""

        def __init__(self, config: TranscodeConfig):
            from .segment import make_stylizer

            self.config = config
            self.stylizer = make_stylizer(config)

        def segment(self, segment, path) -> int:
            from .segment import transcode_segment

            return transcode_segment(self.config, segment, path, self.stylizer)

        def whole(self, input, output, resume: bool) -> int:
            import dataclasses

            from .run import transcode_segmented

            config = dataclasses.replace(self.config, input=input, output=output)
            executor = _LocalStylizer(self.stylizer)
            return transcode_segmented(config, executor, resume=resume, segment_frames=10**9).frames

    return SegmentWorker


class _LocalStylizer:
    """Inline execution inside an actor, with the actor's already loaded stylizer."""

    def __init__(self, stylizer):
        self.stylizer = stylizer

    def run(self, config, jobs, done) -> int:
        from .segment import transcode_segment

        for segment, path in jobs:
            transcode_segment(config, segment, path, self.stylizer)
            done(segment)
        return 0

    def close(self):
        pass


class RayExecutor:
    """Runs jobs on ``workers`` actors (default: one per CPU Ray offers), retrying failures on another."""

    def __init__(self, workers: int | None = None, max_attempts: int = 3):
        self.ray = import_ray()
        self.workers = workers
        self.max_attempts = max_attempts
        self.actors = []

    def _start(self, config):
        ray = self.ray
        count = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        cls = _worker_class(ray)
        self.actors = [cls.remote(config) for _ in range(count)]

    def _map(self, config, calls: list, done: Callable) -> int:
        """``calls``: (key, method name, args). Returns the number of retries."""
        ray = self.ray
        if not self.actors:
            self._start(config)
        attempts = {}
        pending = {}
        queue = list(calls)
        free = list(range(len(self.actors)))
        retries = 0

        def submit(call, avoid=None):
            slot = next((s for s in free if s != avoid), free[0])
            free.remove(slot)
            key, method, args = call
            attempts[key] = attempts.get(key, 0) + 1
            pending[getattr(self.actors[slot], method).remote(*args)] = (call, slot)

        while queue or pending:
            while queue and free:
                submit(queue.pop(0))
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            call, slot = pending.pop(ref)
            free.append(slot)
            try:
                ray.get(ref)
            except Exception as error:
                if attempts[call[0]] >= self.max_attempts:
                    raise VidstyleError(f"{call[0]} failed {attempts[call[0]]} times; last: "
                                        f"{' '.join(str(error).split())[:300]}") from None
                retries += 1
                if free and len(self.actors) > 1:
                    submit(call, avoid=slot)  # another worker
                else:
                    queue.insert(0, call)
                continue
            done(call[0])
        return retries

    def run(self, config: TranscodeConfig, jobs: list, done: Callable) -> int:
        by_key = {}
        calls = []
        for segment, path in jobs:
            key = f"segment {segment.number}"
            by_key[key] = segment
            calls.append((key, "segment", (segment, str(path))))
        return self._map(config, calls, lambda key: done(by_key[key]))

    def run_files(self, config: TranscodeConfig, pairs: list, resume: bool, done: Callable) -> int:
        calls = [(str(i), "whole", (str(i), str(o), resume)) for i, o in pairs]
        return self._map(config, calls, done)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:
                pass
        self.actors = []
