"""A transcode split into segments, executed inline or on Ray, resumable, joined at the end."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from vidstyle.errors import Cancelled
from vidstyle.io import probe
from vidstyle.io.sink import check_target
from vidstyle.offline import TranscodeConfig
from vidstyle.cluster.join import join_segments
from vidstyle.cluster.plan import SegmentPlan, default_segment_frames, plan_segments, preroll_frames
from vidstyle.cluster.segment import read_skipped, transcode_segment

MAX_ATTEMPTS = 3  # a segment that fails is tried again (on another worker) up to this many times in all
Progress = Callable[[int, "int | None"], None]


@dataclass
class ClusterResult:
    output: Path
    frames: int
    segments: int
    reused: int  # segment files found finished (--resume)
    retries: int  # segment runs that failed and were run again
    wall: float
    nodes: int = 1  # machines the segments ran on
    skipped: list[int] = field(default_factory=list)  # indexes of undecodable frames dropped (--on-decode-error skip)

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


def settings_key(config: TranscodeConfig, segment_frames: int, preroll: int) -> str:
    """A hash of the input (path, size, mtime) and every setting that changes the pictures."""
    src = Path(config.input).resolve()
    stat = src.stat()
    fields = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in ("input", "output", "queue_size", "keep_partial", "cancel_wait", "overwrite")}
    blob = json.dumps([str(src), stat.st_size, stat.st_mtime_ns, fields, segment_frames, preroll],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def work_dir(config: TranscodeConfig, segment_frames: int, preroll: int) -> Path:
    """Next to the output: .OUTPUT.vidstyle-HASH/, one file per finished segment."""
    out = Path(config.output)
    return out.with_name(f".{out.name}.vidstyle-{settings_key(config, segment_frames, preroll)}")


def segment_path(work: Path, number: int, suffix: str) -> Path:
    return work / f"segment-{number:05d}{suffix}"


class Tally:
    """One progress count: frames of finished jobs plus those the running ones have written.

    It never goes backwards: a retried job starts its count again, and executors learn of
    a finished job and of the others' counts at different moments.
    """

    def __init__(self, total: int | None, progress: Progress | None, finished: int = 0):
        self.total, self.progress = total, progress
        self.finished = finished
        self.in_flight = self.shown = 0
        self._report()

    def _report(self) -> None:
        count = self.finished + self.in_flight
        self.shown = max(self.shown, count if self.total is None else min(count, self.total))
        if self.progress:
            self.progress(self.shown, self.total)

    def done(self, frames: int) -> None:
        self.finished += frames
        self.in_flight = max(0, self.in_flight - frames)
        self._report()

    def partial(self, frames: int) -> None:
        """``frames``: written so far by all running jobs together."""
        self.in_flight = frames
        self._report()


class InlineExecutor:
    """Segments one after another in this process, one stylizer; the reference and the test double."""

    def __init__(self):
        self.stylizer = None
        self.nodes: set[str] = set()
        self._cancelled = False
        self._pipeline = None

    def run(self, config: TranscodeConfig, jobs: list, done: Callable, partial: Callable | None = None) -> int:
        """``jobs``: (segment, path). Calls ``done(segment)`` for each and ``partial(n)`` with the
        frames written so far of the unfinished one; returns the retries."""
        # One stylizer for every job: a batch differs only in input and output.
        stylizer = self.stylizer = self.stylizer or config.stylizer()
        retries = 0
        for segment, path in jobs:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                written = 0

                def frame(n: int) -> None:
                    nonlocal written
                    written += n
                    if partial:
                        partial(written)

                self._check()
                try:
                    transcode_segment(config, segment, path, stylizer, progress=frame,
                                      on_pipeline=self._running)
                    break
                except Cancelled:
                    raise
                except Exception:
                    if attempt == MAX_ATTEMPTS:
                        raise
                    retries += 1
                finally:
                    self._pipeline = None
                    if partial:
                        partial(0)
            done(segment)
        return retries

    def _running(self, pipeline) -> None:
        self._pipeline = pipeline
        if self._cancelled:
            pipeline.cancel()

    def _check(self) -> None:
        if self._cancelled:
            raise Cancelled("cancelled")

    def cancel(self) -> None:
        """From any thread: the segment being written stops, no other starts (run raises Cancelled)."""
        self._cancelled = True
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.cancel()

    def close(self) -> None:
        self.stylizer = None


def transcode_segmented(config: TranscodeConfig, executor=None, resume: bool = False,
                        segment_frames: int | None = None, preroll: int | None = None,
                        progress: Progress | None = None, plan: SegmentPlan | None = None) -> ClusterResult:
    """Stylize ``config.input`` into ``config.output`` segment by segment, then join.

    Finished segments live in :func:`work_dir`; with ``resume`` the ones already
    there are reused, without it the folder starts empty. It is removed after the join.
    ``preroll`` defaults to what the smoothing settings need (:func:`preroll_frames`),
    ``segment_frames`` to ten times that, at least 250.
    """
    if config.start or config.duration is not None:
        raise ValueError("a part of a video (start, duration) is stylized by vidstyle.offline.transcode")
    start = time.perf_counter()
    info = probe(config.input)
    check_target(config.output, [config.input], overwrite=config.overwrite)
    if preroll is None:
        preroll = preroll_frames(config.temporal, config.temporal_strength)
    segment_frames = segment_frames or default_segment_frames(preroll)
    plan = plan or plan_segments(config.input, segment_frames, preroll)
    work = work_dir(config, segment_frames, preroll)
    if work.exists() and not resume:
        shutil.rmtree(work)
    work.mkdir(exist_ok=True)
    suffix = Path(config.output).suffix or ".mp4"
    paths = [segment_path(work, s.number, suffix) for s in plan.segments]
    jobs = [(s, p) for s, p in zip(plan.segments, paths) if not p.exists()]
    reused = len(plan.segments) - len(jobs)
    tally = Tally(plan.frame_count, progress, plan.frame_count - sum(s.frames for s, _ in jobs))
    done = lambda segment: tally.done(segment.frames)  # noqa: E731

    own = executor is None
    executor = executor or InlineExecutor()
    try:
        retries = executor.run(config, jobs, done, tally.partial) if jobs else 0
    except Cancelled as stop:
        kept = sum(1 for p in paths if p.exists())
        if not kept:
            shutil.rmtree(work, ignore_errors=True)
            raise Cancelled("no segment was finished; nothing was kept", 0, plan.frame_count) from stop
        raise Cancelled(f"{kept} of {len(paths)} segments are finished and kept in {work}; run the same "
                        f"command with --resume to do the rest", tally.finished, plan.frame_count) from stop
    finally:
        if own:
            executor.close()
    join_segments(paths, config.output, audio_from=config.input if info.has_audio else None)
    skipped = [i for p in paths for i in read_skipped(p)]
    shutil.rmtree(work, ignore_errors=True)
    return ClusterResult(Path(config.output), plan.frame_count - len(skipped), len(plan.segments), reused,
                         retries, time.perf_counter() - start, nodes=max(1, len(executor.nodes)),
                         skipped=skipped)
