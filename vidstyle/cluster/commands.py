"""What `vidstyle transcode --cluster` and `vidstyle batch` do; cli.py only parses."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Callable

from ..errors import InputError, OutputError
from ..transcode import TranscodeConfig

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


def _session(cluster: str | None, workers: int | None):
    """(executor, started): RayExecutor on a connected runtime, or None (inline) without --cluster."""
    if not cluster:
        return None, False
    from .ray_exec import RayExecutor, connect

    started = connect(cluster, num_cpus=workers)
    return RayExecutor(workers), started


def _end(executor, started: bool) -> None:
    if executor is not None:
        executor.close()
    if started:
        import ray

        ray.shutdown()


def run_transcode(config: TranscodeConfig, cluster: str | None, resume: bool, segment_frames: int,
                  workers: int | None = None, progress: Callable | None = None):
    from .run import transcode_segmented

    executor, started = _session(cluster, workers)
    try:
        return transcode_segmented(config, executor, resume=resume, segment_frames=segment_frames,
                                   progress=progress)
    finally:
        _end(executor, started)


def run_batch(config: TranscodeConfig, inputs: list[Path], out_dir: Path, cluster: str | None,
              resume: bool, workers: int | None = None, progress: Callable | None = None) -> list[Path]:
    """Each input to OUT_DIR/NAME (same name; same container), one file per worker at a time."""
    import dataclasses

    from .run import transcode_segmented

    pairs = [(i, out_dir / i.name) for i in inputs]
    for i, o in pairs:
        if o.exists() and o.resolve() == i.resolve():
            raise OutputError(f"{o}: output would overwrite the input")
    if resume:  # a finished output is a finished job
        pairs = [(i, o) for i, o in pairs if not o.exists()]
    done = [0]

    def one_done(_key):
        done[0] += 1
        if progress:
            progress(done[0], len(pairs))

    executor, started = _session(cluster, workers)
    try:
        if not pairs:
            pass
        elif executor is None:
            from .run import InlineExecutor

            inline = InlineExecutor()
            try:
                for i, o in pairs:
                    transcode_segmented(dataclasses.replace(config, input=i, output=o), inline,
                                        resume=resume, segment_frames=10**9)
                    one_done(i)
            finally:
                inline.close()
        else:
            executor.run_files(config, pairs, resume, one_done)
    finally:
        _end(executor, started)
    return [o for _, o in pairs]
