"""``vidstyle live``: pick the source, start the outputs, run the live scheduler, report."""
from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

from .errors import VidstyleError


def _source(args):
    from . import live

    spec = "0" if args.camera is None else args.camera
    if spec == "synthetic":
        return live.PacedSource(live.moving_pictures(640, 480), rate=30, loop=True), (640, 480, 30.0)
    if Path(spec).is_file():  # a file plays at its own rate, like a camera would deliver it
        from .io import FileSource, probe

        info = probe(spec)
        rate = float(info.average_rate or 30)

        def pictures():
            with FileSource(spec) as source:  # closed when the loop ends or the run stops
                for frame in source.frames():
                    yield frame.image

        return live.PacedSource(pictures, rate=rate, loop=args.loop), (info.width, info.height, rate)
    size = live.camera_format(spec)
    return live.CameraSource(spec), size


def run_live_command(args, size) -> int:
    """``vidstyle live``: ``args`` is the parsed command line, ``size`` the processing size."""
    from . import adapt, live, temporal
    from .bench import latency_summary
    from .models import NUM_STYLES
    from .present import VirtualCamera, Window
    from .styles import parse
    from .stylize import Stylizer
    from .transcode import stylize_stages

    style = parse(args.style)
    source, (width, height, rate) = _source(args)
    stylizer = Stylizer(style, strength=args.strength, preserve_color=args.preserve_color,
                        engine_name=args.engine, threads=args.threads, precision=args.precision, model=args.model,
                        internal_scale=args.internal_scale)
    names = {"current": args.style}
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
        if args.window:
            outputs.append(Window(on_key=on_key, label=lambda: f"style {names['current']} at {processing()}"))
        if args.virtual_cam:
            outputs.append(VirtualCamera(width, height, rate))
        pipeline_ref: list = []
        deadline = time.monotonic() + args.seconds if args.seconds else None

        def present(frame) -> None:
            for out in outputs:
                out(frame)
            if any(getattr(o, "quit", False) for o in outputs) or (deadline and time.monotonic() > deadline):
                pipeline_ref[0].cancel()

        sizing = adapt.for_camera(stylizer.run, width, height, rate, size)
        print(f"camera {width}x{height} at {rate:g} fps; processing at {processing()}"
              + ("" if size else " (adapts to keep up; --size fixes it)"), flush=True)
        stages = stylize_stages(stylizer, sizing, 1, temporal.create(args.temporal, args.temporal_strength),
                                smooth_at="processing")
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: pipeline_ref and pipeline_ref[0].cancel())
        stats = live.run_live(source, stages, present, max_age=args.max_age, on_pipeline=pipeline_ref.append,
                              sizing=sizing)
    finally:
        for out in outputs:
            out.close()
    gone = getattr(source, "gone", None)
    lat = latency_summary(stats.latencies)
    print(f"{stats.delivered} frames, {stats.fps:.1f} fps, {stats.drop_rate:.0%} dropped, latency "
          f"p50 {lat['p50']:.0f} / p95 {lat['p95']:.0f} / p99 {lat['p99']:.0f} ms; processing at {processing()}")
    if args.stats_json:
        args.stats_json.write_text(json.dumps(
            {"delivered": stats.delivered, "fps": stats.fps, "drop_rate": stats.drop_rate,
             "dropped_source": stats.dropped_source, "dropped_stale": stats.dropped_stale,
             "latency_ms": lat, "stopped": stats.stopped, "processing": processing(),
             "size_changes": getattr(sizing, "changes", [])}, indent=1))
    if gone:
        raise VidstyleError(gone)
    return 0
