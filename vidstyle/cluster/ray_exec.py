"""Segments on Ray: an actor per worker loads the stylizer once; a failed segment runs again elsewhere.

This is the only module that imports ray, and only inside functions, so that
``import vidstyle`` and every command without ``--cluster`` never load it.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from vidstyle.errors import Cancelled, VidstyleError
from vidstyle.offline import TranscodeConfig
from vidstyle.cluster.run import MAX_ATTEMPTS

INSTALL_HINT = "--cluster needs Ray, which is not installed: pip install 'vidstyle[cluster]'"
# A cluster just started (or busy) answers its first client with "Initialization failure
# from server" or a refused connection for a few seconds; it is not there yet, not wrong.
CONNECT_ATTEMPTS = 4
CONNECT_BACKOFF = 1.0  # seconds before the second attempt, doubling after each


def import_ray():
    try:
        import ray
    except ImportError:
        raise VidstyleError(INSTALL_HINT) from None
    return ray


def connect(cluster: str = "auto", num_cpus: int | None = None,
            cancelled: threading.Event | None = None) -> bool:
    """Start or join a Ray runtime; True if this call started it (the caller shuts it down).

    ``local``: a Ray runtime on this machine; ``ray://HOST:PORT``: a cluster's Ray
    client server; ``auto``: ``RAY_ADDRESS`` if set, else local. An already
    initialised Ray (a test, a notebook) is used as it is. Joining a cluster is tried
    CONNECT_ATTEMPTS times with backoff; ``cancelled`` set ends the wait with Cancelled.
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
            _join(ray, cluster, cancelled or threading.Event())
        else:
            raise VidstyleError(f"--cluster must be auto, local or ray://HOST:PORT, not {cluster!r}")
    except VidstyleError:
        raise
    except Exception as error:  # ConnectionError, TimeoutError, RuntimeError...
        raise VidstyleError(f"cannot connect to Ray at {cluster}: {' '.join(str(error).split())[:200]}") from None
    return True


def _join(ray, address: str, cancelled: threading.Event) -> None:
    """``ray.init(address)``, again after CONNECT_BACKOFF, 2x, 4x... while the server is not ready."""
    for attempt in range(CONNECT_ATTEMPTS):
        if cancelled.is_set():
            raise Cancelled("cancelled while connecting to Ray")
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            return
        # "Initialization failure from server" (ConnectionAbortedError), a refused or a
        # timed-out channel; anything else (an address Ray cannot parse, a version or token
        # mismatch) will not get better by waiting.
        except (ConnectionError, TimeoutError):
            if attempt == CONNECT_ATTEMPTS - 1:
                raise
        if cancelled.wait(CONNECT_BACKOFF * 2 ** attempt):
            raise Cancelled("cancelled while connecting to Ray")


@dataclass(frozen=True)
class Slot:
    """One actor's place: a node and what it may use there."""

    node: str
    cpus: int
    gpus: int


def placement(nodes: list[dict], workers: int | None = None, cpus_per_worker: int = 1) -> list[Slot]:
    """Actors for ``nodes`` (``ray.nodes()`` entries): one per GPU on a node with GPUs (with
    that node's CPUs shared among them, for decode, flow and encode), else one per
    ``cpus_per_worker`` CPUs. ``workers`` caps the total, taking from every node in turn."""
    per_node = []
    for node in nodes:
        if not node.get("Alive", True):
            continue
        res = node.get("Resources", {})
        cpus, gpus = int(res.get("CPU", 0)), int(res.get("GPU", 0))
        if gpus:
            per_node.append([Slot(node["NodeID"], max(1, cpus // gpus), 1)] * gpus)
        elif cpus:
            step = max(1, min(cpus_per_worker, cpus))
            per_node.append([Slot(node["NodeID"], step, 0)] * (cpus // step))
    slots = [s for group in itertools.zip_longest(*per_node) for s in group if s is not None]
    return slots[:workers] if workers else slots


def _worker_class(ray):
    # max_concurrency 2: the driver asks how far the running segment is while it runs;
    # the driver never hands an actor a second segment before the first returns.
    @ray.remote(max_restarts=1, max_concurrency=2)
    class SegmentWorker:
        """Loads the stylizer once; runs segments and whole files for one job's settings."""

        def __init__(self, config: TranscodeConfig, cpus: int):
            import cv2

            # Ray reserves cores but does not pin: every pool of this actor (engine, OpenCV,
            # FFmpeg) keeps to its share, or N actors each run threads for the whole node.
            cv2.setNumThreads(cpus)
            self.config = dataclasses.replace(
                config, threads=config.threads or cpus,
                encode=dataclasses.replace(config.encode, threads=config.encode.threads or cpus))
            self.stylizer = self.config.stylizer()
            self.node = ray.get_runtime_context().get_node_id()
            self.current = 0  # frames written by the call in progress

        def segment(self, segment, path, input) -> tuple[int, str]:
            from vidstyle.cluster.segment import transcode_segment

            self.current = 0
            config = dataclasses.replace(self.config, input=input)  # a batch: one actor, many files
            frames = transcode_segment(config, segment, path, self.stylizer, progress=self._frame)
            return frames, self.node

        def whole(self, input, output, resume: bool) -> tuple[int, str]:
            from vidstyle.cluster.run import InlineExecutor, transcode_segmented

            self.current = 0
            config = dataclasses.replace(self.config, input=input, output=output)
            inline = InlineExecutor()
            inline.stylizer = self.stylizer
            result = transcode_segmented(config, inline, resume=resume, segment_frames=10**9,
                                         progress=self._count)
            return result.frames, self.node

        def written(self) -> int:
            return self.current

        def _frame(self, n: int) -> None:
            self.current += n

        def _count(self, count: int, _total) -> None:
            self.current = count

    return SegmentWorker


class RayExecutor:
    """Runs jobs on actors placed by :func:`placement`, retrying a failed job on another actor."""

    POLL = 0.5  # seconds between looks at the running jobs' frame counts (and at a cancel)
    RECHECK = 0.5  # seconds between pings of an actor that Ray is restarting
    RESTART_WAIT = 600.0  # seconds a restarting actor may take to answer before it counts as gone

    def __init__(self, workers: int | None = None, max_attempts: int = MAX_ATTEMPTS, cpus_per_worker: int = 1):
        self.ray = import_ray()
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.max_attempts = max_attempts
        self.actors = []
        self.nodes: set[str] = set()  # where jobs finished
        self.failures: list[str] = []  # "KEY: ERROR" of every failed attempt, retried or not
        self.completed: list[str] = []  # keys of the jobs done: "segment N", or a batch's input path
        self._cancelled = False

    def _start(self, config):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        slots = placement(ray.nodes(), self.workers, self.cpus_per_worker)
        if not slots:
            raise VidstyleError("the Ray cluster offers no CPU or GPU to run a worker on")
        cls = _worker_class(ray)
        self.actors = [cls.options(num_cpus=s.cpus, num_gpus=s.gpus,
                                   scheduling_strategy=NodeAffinitySchedulingStrategy(s.node, soft=False))
                       .remote(config, s.cpus) for s in slots]

    def cancel(self) -> None:
        """From any thread: ``run`` raises Cancelled within POLL; close() then stops the actors."""
        self._cancelled = True

    def _written(self, slots) -> int:
        """Frames the jobs on ``slots`` have written so far; an actor that does not answer counts 0."""
        ray = self.ray
        refs = [self.actors[s].written.remote() for s in slots]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=self.POLL)
        total = 0
        for ref in ready:
            try:
                total += ray.get(ref)
            except Exception:  # the actor died mid-segment; the retry will say so
                pass
        return total

    def _map(self, config, calls: list, done: Callable, partial: Callable | None) -> int:
        """``calls``: (key, method name, args). Returns the number of retries.

        An actor whose job failed is down from the moment the failure is seen: it takes
        work again only once a ping (``__ray_ready__``) has come back with an answer. A
        ping that fails because the actor is restarting (or briefly unreachable) is not a
        failure of anything: the actor is asked again RECHECK seconds later, for up to
        RESTART_WAIT; a ping that fails because the actor is dead for good drops it.
        """
        ray = self.ray
        if self._cancelled:
            raise Cancelled("cancelled")
        if not self.actors:
            self._start(config)
        unavailable = getattr(ray.exceptions, "ActorUnavailableError", ())  # Ray >= 2.26
        attempts = {}
        pending = {}  # ref -> (call, slot); call None: a ping of a down actor
        queue = [(call, None) for call in calls]  # (call, the slot it failed on)
        free = list(range(len(self.actors)))
        alive = set(free)
        down = {}  # slot -> when its failure was seen; it is in neither free nor a job's pending
        due = {}  # slot -> when a down actor whose ping found it restarting is pinged again
        retries = 0

        def ping(slot: int) -> None:
            pending[self.actors[slot].__ray_ready__.remote()] = (None, slot)

        def assign() -> None:
            for item in list(queue):
                call, avoid = item
                # A retry goes to another actor, unless this one is the only one left.
                slot = next((s for s in free if s != avoid or alive == {s}), None)
                if slot is None:
                    continue
                queue.remove(item)
                free.remove(slot)
                key, method, args = call
                attempts[key] = attempts.get(key, 0) + 1
                pending[getattr(self.actors[slot], method).remote(*args)] = (call, slot)

        def gone(slot: int, error) -> None:
            down.pop(slot, None)
            alive.discard(slot)
            if not alive:
                raise VidstyleError(f"every Ray worker died; last: {' '.join(str(error).split())[:300]}") from None

        while queue or any(call for call, _ in pending.values()):
            if self._cancelled:
                raise Cancelled("cancelled")
            now = time.monotonic()
            for slot, at in list(due.items()):
                if at <= now:
                    del due[slot]
                    ping(slot)
            assign()
            if not pending:  # work waits for an actor that is restarting: ask it again soon
                time.sleep(self.RECHECK)
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=self.POLL)
            if not ready:
                if partial:
                    partial(self._written([slot for call, slot in pending.values() if call]))
                continue
            ref = ready[0]
            call, slot = pending.pop(ref)
            if call is None:  # a ping: is the actor back?
                try:
                    ray.get(ref)
                except unavailable as error:  # restarting: not back yet, and no new failure
                    if time.monotonic() - down[slot] > self.RESTART_WAIT:
                        gone(slot, error)
                    else:
                        due[slot] = time.monotonic() + self.RECHECK
                    continue
                except Exception as error:  # ActorDiedError: its restarts are used up
                    gone(slot, error)
                    continue
                down.pop(slot)
                free.append(slot)
                continue
            try:
                frames, node = ray.get(ref)
            except Exception as error:
                # Down before anything else is handed out: it takes work again only once it answers.
                down[slot] = time.monotonic()
                self.failures.append(f"{call[0]}: {type(error).__name__}: {' '.join(str(error).split())[:300]}")
                if attempts[call[0]] >= self.max_attempts:
                    raise VidstyleError(f"{call[0]} failed {attempts[call[0]]} times; last: "
                                        f"{' '.join(str(error).split())[:300]}") from None
                retries += 1
                queue.insert(0, (call, slot))
                ping(slot)
                continue
            free.append(slot)
            self.nodes.add(node)
            self.completed.append(call[0])
            done(call[0], frames)
        return retries

    def run(self, config: TranscodeConfig, jobs: list, done: Callable, partial: Callable | None = None) -> int:
        by_key = {}
        calls = []
        for segment, path in jobs:
            key = f"segment {segment.number}"
            by_key[key] = segment
            calls.append((key, "segment", (segment, str(path), str(config.input))))
        return self._map(config, calls, lambda key, _frames: done(by_key[key]), partial)

    def run_files(self, config: TranscodeConfig, pairs: list, resume: bool, done: Callable,
                  partial: Callable | None = None) -> int:
        """Whole files, one per actor at a time; ``done(input, frames)``."""
        calls = [(str(i), "whole", (str(i), str(o), resume)) for i, o in pairs]
        return self._map(config, calls, done, partial)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:
                pass
        self.actors = []
