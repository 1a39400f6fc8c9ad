"""``vidstyle live``: pick the source, start the outputs, run the live scheduler, report."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vidstyle.errors import VidstyleError
from vidstyle.pipeline.stylizer import StylizeSettings
from vidstyle.processing.reuse import LIVE_DEFAULT


@dataclass(frozen=True, kw_only=True)
class LiveConfig(StylizeSettings):
    """A live run: where frames come from, where they go, and how to stylize them."""

    reuse: str | int = LIVE_DEFAULT  # live: keyframes on their own thread unless "off"
    camera: str | None = None  # a device index, /dev/videoN, a URL, a file, or "synthetic" (default: 0)
    loop: bool = False  # a file camera starts again at its end
    window: bool = False
    virtual_cam: bool = False
    seconds: float | None = None  # stop after this long
    max_age: float = 0.25  # a frame older than this when inference could start is dropped
    stats_json: Path | None = None
    record: Path | None = None  # write the delivered frames here
    mirror: bool = False  # the window shows the picture mirrored, as a selfie preview does


def _source(config: LiveConfig):
    """The camera as a live Source, its (width, height, rate), and the time base of its
    timestamps when they are a file's (None: a camera's own clock)."""
    from vidstyle.io.camera import CameraSource, camera_format
    from vidstyle.io.paced import PacedSource, moving_pictures

    spec = "0" if config.camera is None else config.camera
    if spec == "synthetic":
        return PacedSource(moving_pictures(640, 480), rate=30, loop=True), (640, 480, 30.0), None
    if Path(spec).is_file():  # a file plays at its own rate, like a camera would deliver it
        from vidstyle.io import FileSource, probe

        info = probe(spec)
        rate = float(info.average_rate or 30)

        def pictures():
            with FileSource(spec) as source:  # closed when the loop ends or the run stops
                yield from source.frames()

        return PacedSource(pictures, rate=rate, loop=config.loop), (info.width, info.height, rate), info.time_base
    size = camera_format(spec)
    return CameraSource(spec), size, None


class Stop:
    """How a live run is ended from outside it (a quit key, a time limit, Ctrl-C, SIGTERM):
    ``set`` from any thread cancels the pipeline, now or as soon as it exists."""

    def __init__(self):
        self._lock = threading.Lock()
        self._set = False
        self._pipeline = None

    def set(self) -> None:
        with self._lock:
            self._set, pipeline = True, self._pipeline
        if pipeline is not None:
            pipeline.cancel()

    def watch(self, pipeline) -> None:
        with self._lock:
            self._pipeline, stopped = pipeline, self._set
        if stopped:
            pipeline.cancel()

    def is_set(self) -> bool:
        return self._set


def run_live_command(config: LiveConfig, stop: Stop | None = None) -> int:
    """Run ``config`` until the camera ends, a quit key, ``seconds`` or ``stop`` (the command
    line sets it on Ctrl-C and SIGTERM); print the figures, write the stats and the recording."""
    stop = stop or Stop()
    from vidstyle.io.display import VirtualCamera, Window
    from vidstyle.io.record import Recorder
    from vidstyle.measure.stats import latency_summary
    from vidstyle.models import NUM_STYLES
    from vidstyle.pipeline.keyframes import fill_sizing, key_geometry, live_flow
    from vidstyle.pipeline.scheduler import run_live
    from vidstyle.pipeline.sizing import for_camera
    from vidstyle.processing.styles import parse

    style = parse(config.style)
    source, (width, height, rate), time_base = _source(config)
    stylizer = config.stylizer(style)
    names = {"current": config.style}
    sizing = None

    def processing() -> str:
        return f"{sizing.current.proc_w}x{sizing.current.proc_h}" if sizing else "?"

    def on_key(key: str) -> None:
        if style.picture:
            return
        index = int(names["current"]) if names["current"].isdigit() else 0
        index = {"n": index + 1, "p": index - 1}.get(key, int(key) if key.isdigit() else None)
        if index is not None:
            names["current"] = str(index % NUM_STYLES)
            stylizer.switch(parse(names["current"]))

    keyframes = config.keyframes(asynchronous=True)

    def label() -> str:
        if not keyframes:
            return f"style {names['current']} at {processing()}"
        rate = keyframes.stats.keyframes / max(1e-3, time.monotonic() - started)
        return f"style {names['current']}, keyframes {key.proc_w}x{key.proc_h} {rate:.1f}/s, fill {processing()}"

    outputs, key, ok = [], None, False
    try:
        if config.window:
            outputs.append(Window(on_key=on_key, label=label, mirror=config.mirror))
        if config.virtual_cam:
            outputs.append(VirtualCamera(width, height, rate))
        if config.record:
            outputs.append(Recorder(config.record, width, height, rate, time_base,
                                    inputs=[config.camera] if time_base else []))
        deadline = time.monotonic() + config.seconds if config.seconds else None

        def present(frame) -> None:
            for out in outputs:
                out(frame)
            if any(getattr(o, "quit", False) for o in outputs) or (deadline and time.monotonic() > deadline):
                stop.set()

        if keyframes:
            key = key_geometry(width, height, config.size)
            sizing = fill_sizing(stylizer, key, rate)
            smoother = live_flow()
            print(f"camera {width}x{height} at {rate:g} fps; keyframes at {key.proc_w}x{key.proc_h}, "
                  f"fill at {processing()} (adapts to keep up)", flush=True)
        else:
            key, smoother = None, config.smoother()
            sizing = for_camera(stylizer.run, width, height, rate, config.size)
            print(f"camera {width}x{height} at {rate:g} fps; processing at {processing()}"
                  + ("" if config.size else " (adapts to keep up; --size fixes it)"), flush=True)
        started = time.monotonic()
        stats = run_live(source, stylizer, sizing, smoother, present, max_age=config.max_age,
                         on_pipeline=stop.watch, keyframes=keyframes, key=key)
        ok = True
    finally:
        source.close()
        for out in outputs:
            # A recording is kept only from a run that ended well (a quit, a time limit, the camera's end).
            out.close(ok) if isinstance(out, Recorder) else out.close()
    lat = latency_summary(stats.latencies)
    figures = stats.reuse
    where = (f"keyframes at {figures['keyframe_size']}, {figures['keyframe_fps']:.1f} a second, fill at "
             f"{processing()}, {figures['recomputed']:.0%} of the pixels recomputed per frame" if figures
             else f"processing at {processing()}")
    print(f"{stats.delivered} frames, {stats.fps:.1f} fps, {stats.drop_rate:.0%} dropped, latency "
          f"p50 {lat['p50']:.0f} / p95 {lat['p95']:.0f} / p99 {lat['p99']:.0f} ms; {where}")
    if config.stats_json:
        config.stats_json.write_text(json.dumps(
            {"delivered": stats.delivered, "fps": stats.fps, "drop_rate": stats.drop_rate,
             "dropped_source": stats.dropped_source, "dropped_stale": stats.dropped_stale,
             "latency_ms": lat, "stopped": stats.stopped, "processing": processing(),
             "size_changes": getattr(sizing, "changes", []), **figures}, indent=1))
    if source.gone:
        raise VidstyleError(source.gone)
    return 0
