"""``vidstyle live``: pick the source, start the outputs, run the live scheduler, report."""
from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vidstyle.errors import VidstyleError
from vidstyle.pipeline.stylizer import StylizeSettings


@dataclass(frozen=True, kw_only=True)
class LiveConfig(StylizeSettings):
    """A live run: where frames come from, where they go, and how to stylize them."""

    camera: str | None = None  # a device index, /dev/videoN, a URL, a file, or "synthetic" (default: 0)
    loop: bool = False  # a file camera starts again at its end
    window: bool = False
    virtual_cam: bool = False
    seconds: float | None = None  # stop after this long
    max_age: float = 0.25  # a frame older than this when inference could start is dropped
    stats_json: Path | None = None


def _source(config: LiveConfig):
    """The camera as a live Source, and its (width, height, rate)."""
    from vidstyle.io.camera import CameraSource, camera_format
    from vidstyle.io.paced import PacedSource, moving_pictures

    spec = "0" if config.camera is None else config.camera
    if spec == "synthetic":
        return PacedSource(moving_pictures(640, 480), rate=30, loop=True), (640, 480, 30.0)
    if Path(spec).is_file():  # a file plays at its own rate, like a camera would deliver it
        from vidstyle.io import FileSource, probe

        info = probe(spec)
        rate = float(info.average_rate or 30)

        def pictures():
            with FileSource(spec) as source:  # closed when the loop ends or the run stops
                for frame in source.frames():
                    yield frame.image

        return PacedSource(pictures, rate=rate, loop=config.loop), (info.width, info.height, rate)
    size = camera_format(spec)
    return CameraSource(spec), size


def run_live_command(config: LiveConfig) -> int:
    """Run ``config`` until the camera ends, a quit key, ``seconds`` or SIGTERM; print the figures."""
    from vidstyle.io.display import VirtualCamera, Window
    from vidstyle.measure.stats import latency_summary
    from vidstyle.models import NUM_STYLES
    from vidstyle.pipeline.scheduler import run_live
    from vidstyle.pipeline.sizing import for_camera
    from vidstyle.processing.styles import parse

    style = parse(config.style)
    source, (width, height, rate) = _source(config)
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

    outputs = []
    try:
        if config.window:
            outputs.append(Window(on_key=on_key, label=lambda: f"style {names['current']} at {processing()}"))
        if config.virtual_cam:
            outputs.append(VirtualCamera(width, height, rate))
        pipeline_ref: list = []
        deadline = time.monotonic() + config.seconds if config.seconds else None

        def present(frame) -> None:
            for out in outputs:
                out(frame)
            if any(getattr(o, "quit", False) for o in outputs) or (deadline and time.monotonic() > deadline):
                pipeline_ref[0].cancel()

        sizing = for_camera(stylizer.run, width, height, rate, config.size)
        print(f"camera {width}x{height} at {rate:g} fps; processing at {processing()}"
              + ("" if config.size else " (adapts to keep up; --size fixes it)"), flush=True)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: pipeline_ref and pipeline_ref[0].cancel())
        keyframes = config.keyframes()
        stats = run_live(source, stylizer, sizing, config.smoother(), present, max_age=config.max_age,
                         on_pipeline=pipeline_ref.append, keyframes=keyframes)
    finally:
        source.close()
        for out in outputs:
            out.close()
    lat = latency_summary(stats.latencies)
    # With reuse, keyframes run in line at the processing size.
    reused = keyframes.stats if keyframes else None
    reuse_figures = {} if reused is None else {
        "keyframe_size": processing(), "keyframe_fps": reused.keyframes / stats.wall if stats.wall else 0.0,
        "recomputed": reused.recomputed}
    print(f"{stats.delivered} frames, {stats.fps:.1f} fps, {stats.drop_rate:.0%} dropped, latency "
          f"p50 {lat['p50']:.0f} / p95 {lat['p95']:.0f} / p99 {lat['p99']:.0f} ms; processing at {processing()}"
          + (f"; keyframes at {reuse_figures['keyframe_fps']:.1f} fps, {reuse_figures['recomputed']:.0%} of "
             "the pixels recomputed per frame" if reused else ""))
    if config.stats_json:
        config.stats_json.write_text(json.dumps(
            {"delivered": stats.delivered, "fps": stats.fps, "drop_rate": stats.drop_rate,
             "dropped_source": stats.dropped_source, "dropped_stale": stats.dropped_stale,
             "latency_ms": lat, "stopped": stats.stopped, "processing": processing(),
             "size_changes": getattr(sizing, "changes", []), **reuse_figures}, indent=1))
    if source.gone:
        raise VidstyleError(source.gone)
    return 0
