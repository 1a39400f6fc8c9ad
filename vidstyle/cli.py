"""Command line: transcode | image | styles | metrics. Thin: parse, validate, call the library."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .errors import Cancelled, VidstyleError


def _add_style_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("style")
    g.add_argument("--style", default="7", help="built-in index 0-25 (7), a mix (3:0.5,12:0.5) or a picture file")
    g.add_argument("--strength", type=float, default=1.0,
                   help="0..1; pictures: style vector toward the content's own; built-ins: blend with the original")
    g.add_argument("--preserve-color", action="store_true", help="stylized luminance, original colour")
    g.add_argument("--size", help="processing size WxH or the longer side (default: the source size)")


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--engine", default="auto", help="auto or tf")
    g.add_argument("--threads", type=int, default=0, help="engine intra-op threads (0: one per core)")


def _add_temporal_options(p: argparse.ArgumentParser) -> None:
    from .temporal import DEFAULT_MODE, DEFAULT_STRENGTH, MODES

    g = p.add_argument_group("temporal smoothing")
    g.add_argument("--temporal", choices=MODES, default=DEFAULT_MODE,
                   help=f"flow: motion-compensated, no trails; ema: plain blend (trails); off (default {DEFAULT_MODE})")
    g.add_argument("--temporal-strength", type=float, default=DEFAULT_STRENGTH,
                   help=f"0..1: how much history to keep where it is trusted (default {DEFAULT_STRENGTH})")


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidstyle", description="Neural style transfer for video.")
    parser.add_argument("--version", action="version", version=f"vidstyle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcode", help="stylize a video file (keeps every frame, timing and audio)")
    t.add_argument("input", type=Path)
    t.add_argument("-o", "--output", type=Path, required=True)
    _add_style_options(t)
    _add_engine_options(t)
    _add_temporal_options(t)
    t.add_argument("--batch", type=int, default=4, help="frames per inference batch (default 4)")
    enc = t.add_argument_group("encoder")
    enc.add_argument("--codec", default="libx264")
    enc.add_argument("--crf", type=int, default=18)
    enc.add_argument("--preset", default="medium")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    i = sub.add_parser("image", help="stylize a picture")
    i.add_argument("input", type=Path)
    i.add_argument("-o", "--output", type=Path, required=True)
    _add_style_options(i)
    _add_engine_options(i)

    s = sub.add_parser("styles", help="list the built-in styles or render them as a contact sheet")
    s.add_argument("--sheet", type=Path, help="write a labelled contact sheet of all 26 styles here")
    s.add_argument("--on", type=Path, help="picture to render the sheet on (default: a frame of the sample clip)")
    _add_engine_options(s)

    m = sub.add_parser("metrics", help="measure the flicker of a stylized video against its input")
    m.add_argument("input", type=Path, help="the video that was stylized")
    m.add_argument("output", type=Path, help="the stylized video")
    m.add_argument("--reference", type=Path, help="plain per-frame stylization (--temporal off), for deviation")
    m.add_argument("--json", type=Path, help="also write the figures, pair by pair, to this JSON file")
    return parser


def _size(text: str | None):
    from .imageops import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise VidstyleError(str(exc)) from None


def _check_strength(value: float, option: str = "--strength") -> None:
    if not 0.0 <= value <= 1.0:
        raise VidstyleError(f"{option} must be between 0 and 1, got {value}")


def cmd_transcode(args) -> int:
    from .io import EncodeSettings
    from .transcode import TranscodeConfig, transcode

    _check_strength(args.strength)
    _check_strength(args.temporal_strength, "--temporal-strength")
    if args.batch < 1:
        raise VidstyleError(f"--batch must be at least 1, got {args.batch}")
    config = TranscodeConfig(
        input=args.input, output=args.output, style=args.style, strength=args.strength,
        preserve_color=args.preserve_color, size=_size(args.size), batch=args.batch, engine=args.engine,
        threads=args.threads, temporal=args.temporal, temporal_strength=args.temporal_strength,
        encode=EncodeSettings(codec=args.codec, crf=args.crf, preset=args.preset),
    )
    bar = None
    pipeline_ref = []

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc="stylizing", dynamic_ncols=True)
        bar.update(done - bar.n)

    # SIGTERM stops the run like Ctrl-C: the pipeline cancels and nothing is left behind.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: pipeline_ref and pipeline_ref[0].cancel())
    try:
        result = transcode(config, progress=None if args.no_progress else progress, on_pipeline=pipeline_ref.append)
    finally:
        if bar is not None:
            bar.close()
    print(f"wrote {result.output} ({result.frames} frames, {result.fps:.1f} fps)")
    return 0


def cmd_image(args) -> int:
    from .images import check_output, read_image, write_image
    from .styles import parse
    from .stylize import Stylizer

    _check_strength(args.strength)
    rgb = read_image(args.input)
    style = parse(args.style)
    check_output(args.output, [args.input])
    stylizer = Stylizer(style, strength=args.strength, preserve_color=args.preserve_color,
                        engine_name=args.engine, threads=args.threads)
    write_image(args.output, stylizer.image(rgb, _size(args.size)))
    print(f"wrote {args.output}")
    return 0


def cmd_styles(args) -> int:
    from .models import NUM_STYLES

    if args.sheet is None:
        print(f"{NUM_STYLES} built-in styles: 0-{NUM_STYLES - 1}. Mix them as 3:0.5,12:0.5, or pass any picture.")
        print("See them all: vidstyle styles --sheet styles.png")
        return 0
    from .images import DEFAULT_CONTENT, check_output, read_image, style_sheet, write_image
    from .stylize import Stylizer

    content = read_image(args.on or DEFAULT_CONTENT)
    check_output(args.sheet, [args.on] if args.on else [])
    sheet = style_sheet(lambda style: Stylizer(style, engine_name=args.engine, threads=args.threads), content)
    write_image(args.sheet, sheet)
    print(f"wrote {args.sheet}")
    return 0


def cmd_metrics(args) -> int:
    from .metrics import measure

    report = measure(args.input, args.output, args.reference, json_path=args.json)
    width = max(len(name) for name, _ in report.rows())
    for name, value in report.rows():
        print(f"{name:<{width}}  {value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = create_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users
    handler = {"transcode": cmd_transcode, "image": cmd_image, "styles": cmd_styles, "metrics": cmd_metrics}[args.command]
    try:
        return handler(args)
    except Cancelled:
        print("vidstyle: stopped; no output was written", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("vidstyle: interrupted; no output was written", file=sys.stderr)
        return 130
    except VidstyleError as exc:
        print(f"vidstyle: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
