"""What `vidstyle transcode --cluster` and `vidstyle batch` do; vidstyle.apps.cli only parses."""
from __future__ import annotations

import dataclasses
import glob
import math
import threading
from pathlib import Path
from typing import Callable

from vidstyle.errors import Cancelled, InputError, OutputError
from vidstyle.io import probe
from vidstyle.io.sink import check_target
from vidstyle.offline import TranscodeConfig

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts", ".mpg", ".mpeg", ".flv", ".wmv"}


def find_inputs(pattern: str) -> list[Path]:
    """A folder (its video files, not recursive) or a glob; one-line error when nothing matches."""
    p = Path(pattern)
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
    else:
        found = sorted(Path(f) for f in glob.glob(pattern) if Path(f).is_file())
    if not found:
        raise InputError(f"{pattern}: no matching video files")
    return found


def output_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is not a folder")
    if not path.exists():
        if not path.absolute().parent.is_dir():
            raise OutputError(f"{path}: its parent folder {path.absolute().parent} does not exist")
        path.mkdir()
    return path


class Session:
    """The executor of one command: inline without ``cluster``, else Ray actors on a runtime
    the command joins or starts (and then shuts down). ``cancel()`` is safe from a signal
    handler: the running work raises Cancelled, the actors are stopped, Ray is shut down."""

    def __init__(self, cluster: str | None, workers: int | None = None, cpus_per_worker: int = 1):
        self.cluster, self.workers, self.cpus_per_worker = cluster, workers, cpus_per_worker
        self.executor = None
        self._started = False
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self):
        if self.cluster:
            from vidstyle.cluster.ray_exec import RayExecutor, connect

            local_cpus = self.workers * self.cpus_per_worker if self.workers else None
            self._started = connect(self.cluster, num_cpus=local_cpus, cancelled=self._cancelled)
            executor = RayExecutor(self.workers, cpus_per_worker=self.cpus_per_worker)
        else:
            from vidstyle.cluster.run import InlineExecutor

            executor = InlineExecutor()
        with self._lock:
            self.executor = executor
        if self._cancelled.is_set():  # the stop came while Ray was starting
            executor.cancel()
        return self

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self.executor is not None:
                self.executor.cancel()

    def __exit__(self, *exc) -> None:
        try:
            if self.executor is not None:
                self.executor.close()
        finally:
            if self._started:
                import ray

                ray.shutdown()


def run_transcode(config: TranscodeConfig, session: Session, resume: bool, segment_frames: int,
                  progress: Callable | None = None):
    from vidstyle.cluster.run import transcode_segmented

    with session:
        return transcode_segmented(config, session.executor, resume=resume, segment_frames=segment_frames,
                                   progress=progress)


def estimated_frames(path: Path) -> int | None:
    """The container's frame count, else duration x rate; None when it says neither."""
    info = probe(path)
    if info.frame_count:
        return info.frame_count
    if info.duration and info.average_rate:
        return math.ceil(info.duration * float(info.average_rate))
    return None


def run_batch(config: TranscodeConfig, inputs: list[Path], out_dir: Path, session: Session,
              resume: bool, progress: Callable | None = None, segment_frames: int | None = None,
              skip_existing: bool = False) -> list[Path]:
    """Each input to OUT_DIR/NAME (same name; same container); returns the outputs written.

    An existing output is a finished job with ``resume`` or ``skip_existing``, else it
    is replaced if ``config.overwrite`` says so and refused (before any work) if not.

    On Ray, files of under two segments (by the container's frame count) fan out one per
    actor; then each longer file is cut into segments spread over all actors, so that a
    film in a folder of clips does not leave one actor working while the rest wait.
    ``progress(frames, total)`` counts frames over all files (total from the containers;
    None if one does not say). A stop raises Cancelled naming the files finished.
    """
    from vidstyle.cluster.plan import default_segment_frames, preroll_frames
    from vidstyle.cluster.run import Tally, transcode_segmented

    pairs = [(i, out_dir / i.name) for i in inputs]
    for i, o in pairs:
        check_target(o, [i], overwrite=config.overwrite or resume or skip_existing)
    if resume or skip_existing:
        pairs = [(i, o) for i, o in pairs if not o.exists()]
    counts = [estimated_frames(i) for i, _ in pairs]
    total = None if None in counts else sum(counts)
    tally, files = Tally(total, progress), []
    segment_frames = segment_frames or default_segment_frames(preroll_frames(config.temporal,
                                                                             config.temporal_strength))
    long = [(i, o) for (i, o), n in zip(pairs, counts) if session.cluster and n and n >= 2 * segment_frames]

    def one_done(key, frames: int):
        files.append(key)
        tally.done(frames)

    def in_segments(files: list, split: int) -> None:
        """One file after another here, each cut at ``split`` frames (10**9: whole) over the executor."""
        for i, o in files:
            result = transcode_segmented(dataclasses.replace(config, input=i, output=o), session.executor,
                                         resume=resume, segment_frames=split,
                                         progress=lambda n, _t: tally.partial(n))
            one_done(i, result.frames)

    try:
        with session:
            if not session.cluster:
                in_segments(pairs, 10**9)  # one process: nothing to gain from cutting
            else:
                short = [p for p in pairs if p not in long]
                if short:
                    session.executor.run_files(config, short, resume, one_done, tally.partial)
                in_segments(long, segment_frames)
    except Cancelled as stop:
        raise Cancelled(f"{len(files)} of {len(pairs)} file(s) are finished in {out_dir}; run the same "
                        f"command with --resume to do the rest", tally.finished, total) from stop
    return [o for _, o in pairs]
