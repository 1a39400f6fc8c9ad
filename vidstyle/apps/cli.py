"""Command line: transcode | batch | image | styles | info | completion | metrics | live | bench.

Thin: parse, validate, call the library; the library never sees the argparse namespace."""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import threading
from pathlib import Path

from vidstyle import __version__
from vidstyle.errors import Cancelled, VidstyleError


def _add_style_options(p: argparse.ArgumentParser, size_default: str = "the source size") -> None:
    g = p.add_argument_group("style")
    g.add_argument("--style", default="7", help="built-in index 0-25, a mix (3:0.5,12:0.5) or a picture file")
    g.add_argument("--strength", type=float, default=1.0,
                   help="0..1; pictures: style vector toward the content's own; built-ins: blend with the original")
    g.add_argument("--preserve-color", action="store_true", help="stylized luminance, original colour")
    g.add_argument("--size", help=f"processing size WxH or the longer side (default: {size_default})")


def _add_engine_options(p: argparse.ArgumentParser, internal_scale: bool = True) -> None:
    from vidstyle.engines import ENGINES, PRECISIONS
    from vidstyle.models import BUILTIN_NETWORKS

    g = p.add_argument_group("engine")
    g.add_argument("--engine", default="auto", choices=("auto", *ENGINES),
                   help="auto: the fastest installed here; vidstyle info lists them (docs/gpu.md)")
    g.add_argument("--threads", type=int, default=0, help="engine intra-op threads (0: one per core)")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic of the network (default auto: the engine's fastest within the quality bound)")
    g.add_argument("--model", default="auto", choices=("auto", *BUILTIN_NETWORKS),
                   help="the network for built-in styles; auto: the style's own (multistyle26)")
    if internal_scale:
        g.add_argument("--internal-scale", type=float, default=1.0, metavar="S",
                       help="0 < S <= 1: the network runs at S x the processing size and its output is brought "
                            "back by guided upsampling (default 1: off)")


def _add_temporal_options(p: argparse.ArgumentParser, live: bool = False) -> None:
    from vidstyle.processing.reuse import DEFAULT, LIVE_DEFAULT
    from vidstyle.processing.temporal import DEFAULT_MODE, DEFAULT_STRENGTH, MODES

    reuse_default = LIVE_DEFAULT if live else DEFAULT

    g = p.add_argument_group("temporal smoothing")
    g.add_argument("--temporal", choices=MODES, default=DEFAULT_MODE,
                   help=f"flow: motion-compensated, no trails; ema: plain blend (trails); off (default {DEFAULT_MODE})")
    g.add_argument("--temporal-strength", type=float, default=DEFAULT_STRENGTH,
                   help=f"0..1: how much history to keep where it is trusted (default {DEFAULT_STRENGTH})")
    how = ("auto stylizes keyframes at 480 px (--size) on their own thread and carries every frame from "
           "them along the motion; off runs the network on every frame at the adaptive size; N gives the "
           "keyframe thread every Nth frame") if live else (
           "auto runs the network on keyframes chosen from the content and carries them along the motion; "
           "off runs it on every frame; N makes every Nth frame a keyframe")
    g.add_argument("--reuse", type=_reuse, default=reuse_default, metavar="auto|off|N",
                   help=f"reuse work across frames (with --temporal flow): {how} (default {reuse_default})")


def _reuse(text: str):
    from vidstyle.processing.reuse import parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_cluster_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (needs the cluster extra: pip install 'vidstyle[cluster]')")
    g.add_argument("--cluster", metavar="auto|local|ray://HOST:PORT", default=None,
                   help="run on Ray: auto (RAY_ADDRESS, else local), local, or a cluster's ray:// address"
                        "; a long file is split into keyframe-aligned segments")
    g.add_argument("--resume", action="store_true", help="reuse the finished segments/files of a killed run")
    g.add_argument("--workers", type=int, default=None,
                   help="at most this many Ray actors (default: one per GPU, or per --cpus-per-worker CPUs, of each node)")
    g.add_argument("--cpus-per-worker", type=int, default=1,
                   help="CPUs each actor on a node without GPUs reserves and keeps its threads to (default 1)")
    g.add_argument("--segment-frames", type=int, default=None,
                   help="cut at the first keyframe at least this many frames on (default: 10x the "
                        "pre-roll smoothing needs, at least 250; 900 with the default smoothing)")


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, unless it says it already or has none."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if action.default is None or action.default is False or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


def _add_input(p: argparse.ArgumentParser, metavar: str, what: str, kind=Path) -> None:
    """The input as a positional or, as ffmpeg users type it, ``-i``; main() takes one of them."""
    p.add_argument("input", nargs="?", type=kind, metavar=metavar, help=f"{what} (or -i {metavar})")
    p.add_argument("-i", "--input", dest="input_option", type=kind, metavar=metavar,
                   help=f"{what}, as ffmpeg takes it")


def _add_overwrite_options(p: argparse.ArgumentParser, skip: str = "stop") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-y", "--overwrite", dest="overwrite", action="store_const", const=True, default=None,
                   help="replace an existing output (without -y or -n an existing output is refused)")
    g.add_argument("-n", "--no-overwrite", dest="overwrite", action="store_const", const=False,
                   help=f"never replace an existing output: {skip}")


def _seconds(text: str) -> float:
    """ffmpeg's time: seconds (90, 1.5) or [HH:]MM:SS[.frac]."""
    try:
        parts = [float(part) for part in text.split(":")]
        if len(parts) > 3 or any(part < 0 for part in parts) or any(part >= 60 for part in parts[1:]):
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: give seconds (90, 1.5) or [HH:]MM:SS") from None
    return sum(part * 60 ** n for n, part in enumerate(reversed(parts)))


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidstyle", description="Neural style transfer for video.",
                                     epilog="vidstyle -i IN -o OUT [options] is vidstyle transcode.",
                                     formatter_class=_HelpWithDefaults)
    parser.add_argument("--version", action="version", version=f"vidstyle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcode", help="stylize a video file (keeps every frame, timing and audio)")
    _add_input(t, "IN", "the video to stylize")
    t.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="the video to write")
    _add_overwrite_options(t)
    part = t.add_argument_group("part (the output's clock starts at 0 there; audio is cut to match)")
    part.add_argument("--start", "-ss", type=_seconds, default=0.0, metavar="TIME",
                      help="begin this far into the video: seconds or [HH:]MM:SS[.frac]")
    part.add_argument("--duration", "-t", type=_positive_seconds, metavar="TIME",
                      help="stylize this long (default: to the end)")
    _add_style_options(t)
    _add_engine_options(t)
    _add_temporal_options(t)
    t.add_argument("--batch", type=int, default=4, help="frames per inference batch (default 4)")
    t.add_argument("--on-decode-error", choices=("stop", "skip"), default="stop",
                   help="a frame that cannot be decoded, or a file that ends before its stated length: stop "
                        "with an error (default), or skip such frames, keep the rest in time and say how many")
    _add_encoder_options(t)
    _add_cluster_options(t)

    bt = sub.add_parser("batch", help="stylize every video of a folder or glob into OUT_DIR (optionally on Ray)")
    _add_input(bt, "IN_DIR_OR_GLOB", "a folder of videos (not recursive) or a quoted glob", kind=str)
    bt.add_argument("-o", "--output", type=Path, required=True, metavar="OUT_DIR",
                    help="the folder to write into, each video under its own name (made if missing)")
    _add_overwrite_options(bt, skip="skip the videos whose output exists")
    _add_style_options(bt)
    _add_engine_options(bt)
    _add_temporal_options(bt)
    bt.add_argument("--batch", type=int, default=4, help="frames per inference batch (default 4)")
    _add_encoder_options(bt)
    _add_cluster_options(bt)

    i = sub.add_parser("image", help="stylize a picture")
    _add_input(i, "IN", "the picture to stylize")
    i.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                   help="the picture to write (.png, .jpg, ...)")
    _add_overwrite_options(i)
    _add_style_options(i)
    _add_engine_options(i)

    s = sub.add_parser("styles", help="list the built-in styles or render them as a contact sheet")
    s.add_argument("--sheet", type=Path, help="write a labelled contact sheet of all 26 styles here")
    s.add_argument("--on", type=Path, help="picture to render the sheet on (default: a frame of the sample clip)")
    _add_engine_options(s, internal_scale=False)

    n = sub.add_parser("info", help="what runs here: engines (and why not the others), GPU, precisions, "
                                    "cache folder, versions")
    n.add_argument("--json", action="store_true", help="print it as JSON")

    c = sub.add_parser("completion", help="print a shell completion script (needs the completion extra)",
                       epilog="bash: eval \"$(vidstyle completion bash)\" in ~/.bashrc; "
                              "zsh: vidstyle completion zsh > ~/.zfunc/_vidstyle")
    c.add_argument("shell", choices=("bash", "zsh", "tcsh"), help="the shell to complete in")

    m = sub.add_parser("metrics", help="measure the flicker of a stylized video against its input")
    m.add_argument("input", type=Path, help="the video that was stylized")
    m.add_argument("output", type=Path, help="the stylized video")
    m.add_argument("--reference", type=Path, help="plain per-frame stylization (--temporal off), for deviation")
    m.add_argument("--json", type=Path, help="also write the figures, pair by pair, to this JSON file")

    lv = sub.add_parser("live", help="stylize a camera live: a window, a virtual camera, or stats")
    lv.add_argument("--camera", default=None, help="0, /dev/videoN, a URL, a video FILE, or 'synthetic' (default 0)")
    lv.add_argument("--loop", action="store_true", help="play a FILE camera in a loop")
    _add_style_options(lv, size_default="the largest that keeps up with the camera, measured as it runs")
    _add_engine_options(lv)
    _add_temporal_options(lv, live=True)
    lv.add_argument("--window", action="store_true", help="show it in a window (keys: q quit, o overlay, "
                                                          "n/p next/previous style, 0-9 a built-in style)")
    lv.add_argument("--virtual-cam", action="store_true", help="send it to a virtual camera (pyvirtualcam)")
    lv.add_argument("--stats-json", type=Path, help="write latency, fps and drops here at the end")
    lv.add_argument("--mirror", action="store_true", help="mirror the window's picture, as a selfie preview does "
                                                          "(a virtual camera and a recording are not mirrored)")
    lv.add_argument("--record", type=Path, metavar="OUT.mp4",
                    help="also write the delivered frames to this video (a FILE camera's frames keep its timestamps)")
    lv.add_argument("--seconds", type=float, help="stop after this long (default: until quit or the camera ends)")
    lv.add_argument("--max-age", type=float, default=0.25, help="drop frames older than this before inference (s)")
    lv.add_argument("--serve", nargs="?", const="127.0.0.1:8080", metavar="HOST:PORT",
                    help="instead of a camera here: a web page that stylizes the browser's camera over WebRTC "
                         "(default 127.0.0.1:8080; 0.0.0.0:PORT for every interface)")
    lv.add_argument("--max-viewers", type=int, metavar="N",
                    help="with --serve: browsers served at once; one more is told the server is busy "
                         "(default: one per core, at least 2)")
    lv.add_argument("--public-url", metavar="URL",
                    help="with --serve behind a TLS proxy: the address browsers open (e.g. "
                         "https://studio.example.com); only pages from it or the bound address may use the server")

    b = sub.add_parser("bench", help="measure frames/s, latency and where the time goes, per setting")
    b.add_argument("input", type=Path, nargs="?", help="a video file (default: a synthetic clip of each --size)")
    b.add_argument("--engine", default="all", help="comma list, or all available (default)")
    b.add_argument("--precision", default="auto", help="comma list of auto,fp32,fp16,bf16,int8 (default auto)")
    b.add_argument("--model", default="auto", help="comma list of auto,multistyle26,student26 (default auto)")
    b.add_argument("--batch", default="4", help="comma list, e.g. 1,2,4,8 (default 4)")
    b.add_argument("--size", default="640x360", help="comma list of WxH (default 640x360)")
    b.add_argument("--temporal", default="off", help="comma list of off,ema,flow (default off)")
    b.add_argument("--reuse", default="off", help="comma list of auto,off,N; applies with --temporal flow (default off)")
    b.add_argument("--mode", default="offline", choices=("offline", "live"),
                   help="offline: a transcode per point; live: a paced synthetic camera at --rate, frames dropped "
                        "rather than queued")
    b.add_argument("--style", default="7", help="the style of every point, as transcode takes it")
    b.add_argument("--frames", type=int, default=60, help="frames per point (default 60)")
    b.add_argument("--duration", type=float, help="seconds of video per point instead of --frames (synthetic source)")
    b.add_argument("--rate", type=int, default=30, help="frame rate of the synthetic source (default 30)")
    b.add_argument("--camera", help="live mode on a camera (0, /dev/video2, a URL) instead of the synthetic one")
    b.add_argument("--warmup", type=int, default=8, help="frames of the untimed warm-up per point (default 8)")
    b.add_argument("--json", type=Path, help="write every figure and the system block here")
    b.add_argument("--csv", type=Path, help="write the table here")
    b.add_argument("--plot", type=Path, metavar="DIR", help="write bench-fps.png and bench-latency.png here")
    b.add_argument("--no-peak", action="store_true", help="skip measuring the matmul peak (no efficiency column)")
    for command in sub.choices.values():
        command.formatter_class = _HelpWithDefaults
    return parser


def _size(text: str | None):
    from vidstyle.processing.geometry import parse_size

    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as exc:
        raise VidstyleError(str(exc)) from None


def _add_encoder_options(p: argparse.ArgumentParser) -> None:
    enc = p.add_argument_group("encoder")
    enc.add_argument("--codec", default="libx264",
                     help="FFmpeg video encoder: libx264, libx265, libvpx-vp9, mpeg4, ...")
    enc.add_argument("--crf", type=int, default=18, help="quality: lower is better and larger (x264 scale)")
    enc.add_argument("--preset", default="medium",
                     help="x264 speed/size trade-off, ultrafast .. veryslow (mapped for VP9)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_strength(value: float, option: str = "--strength") -> None:
    if not 0.0 <= value <= 1.0:
        raise VidstyleError(f"{option} must be between 0 and 1, got {value}")


def _check_internal_scale(args) -> None:
    from vidstyle.pipeline.stylizer import check_internal_scale

    check_internal_scale(args.internal_scale)


def _check_transcode_options(args) -> None:
    _check_strength(args.strength)
    _check_internal_scale(args)
    _check_strength(args.temporal_strength, "--temporal-strength")
    if args.batch < 1:
        raise VidstyleError(f"--batch must be at least 1, got {args.batch}")


def _settings(args, kind, **fields):
    """``kind`` (StylizeSettings, or a config that extends it) from the stylize options this
    command has, plus ``fields``; options a command lacks keep their defaults."""
    from vidstyle.pipeline.stylizer import StylizeSettings

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(StylizeSettings) if hasattr(args, f.name)}
    given["size"] = _size(getattr(args, "size", None))
    return kind(**given, **fields)


def _transcode_config(args, input_path, output_path, **extra):
    """The TranscodeConfig of `transcode` and `batch` options (checked by the caller first)."""
    from vidstyle.io import EncodeSettings
    from vidstyle.offline import TranscodeConfig

    return _settings(args, TranscodeConfig, input=input_path, output=output_path, batch=args.batch,
                     encode=EncodeSettings(codec=args.codec, crf=args.crf, preset=args.preset),
                     overwrite=bool(args.overwrite), **extra)


def cmd_transcode(args) -> int:
    from vidstyle.apps import interrupt
    from vidstyle.offline import transcode

    _check_transcode_options(args)
    if (args.cluster or args.resume) and (args.start or args.duration is not None):
        raise VidstyleError("--start and --duration run on this machine; drop --cluster and --resume")
    config = _transcode_config(args, args.input, args.output, on_decode_error=args.on_decode_error,
                               keep_partial=True, cancel_wait=0.5, start=args.start, duration=args.duration)
    if args.cluster or args.resume:
        return _cluster_transcode(args, config)
    bar = None
    done = [0]
    pipelines, stop = [], threading.Event()

    def progress(count: int, total: int | None) -> None:
        nonlocal bar
        done[0] = count
        if args.no_progress or stop.is_set():
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", desc="stylizing", dynamic_ncols=True)
        bar.update(count - bar.n)

    def on_pipeline(pipeline) -> None:
        pipelines.append(pipeline)
        if stop.is_set():  # the stop came while the engine was loading
            pipeline.cancel()

    def request_stop() -> None:
        stop.set()
        for pipeline in pipelines:
            pipeline.cancel()
        if bar is not None:
            bar.close()  # what comes next (the partial file, a second Ctrl-C) starts on a line of its own

    # Ctrl-C or SIGTERM: the pipeline stops, the finished frames are kept in
    # OUT.partial.EXT (transcode raises Cancelled saying so); a second one ends at once.
    try:
        result = interrupt.run(lambda: transcode(config, progress=progress, on_pipeline=on_pipeline),
                               request_stop, keeps_something=lambda: done[0] > 0)
    finally:
        if bar is not None:
            bar.close()
    for note in result.notes:
        print(f"vidstyle: warning: {note}", file=sys.stderr)
    _warn_skipped(result.skipped)
    print(f"wrote {result.output} ({result.frames} frames, {result.fps:.1f} fps)")
    return 0


def _warn_skipped(skipped: list[int]) -> None:
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        print(f"vidstyle: warning: skipped {len(skipped)} undecodable frame(s): {shown}", file=sys.stderr)


def cmd_image(args) -> int:
    from vidstyle.io.images import check_output, read_image, write_image
    from vidstyle.pipeline.stylizer import StylizeSettings
    from vidstyle.processing.styles import parse

    _check_strength(args.strength)
    _check_internal_scale(args)
    rgb = read_image(args.input)
    style = parse(args.style)
    check_output(args.output, [args.input], overwrite=bool(args.overwrite))
    settings = _settings(args, StylizeSettings)
    write_image(args.output, settings.stylizer(style).image(rgb, settings.size))
    print(f"wrote {args.output}")
    return 0


def cmd_styles(args) -> int:
    from vidstyle.models import NUM_STYLES
    from vidstyle.models.catalog import NAMES, thumbnail

    if args.sheet is None:
        print(f"{NUM_STYLES} built-in styles (--style INDEX; mix them as 3:0.5,12:0.5, or give any picture):")
        width = max(map(len, NAMES))
        for index, name in enumerate(NAMES):
            print(f"{index:4d}  {name:<{width}}  {thumbnail(index)}")
        print("All of them on a picture of yours: vidstyle styles --sheet styles.png --on PICTURE")
        return 0
    from vidstyle.io.images import DEFAULT_CONTENT, check_output, read_image, style_sheet, write_image
    from vidstyle.pipeline.stylizer import StylizeSettings

    content = read_image(args.on or DEFAULT_CONTENT)
    check_output(args.sheet, [args.on] if args.on else [])
    sheet = style_sheet(_settings(args, StylizeSettings).stylizer, content)
    write_image(args.sheet, sheet)
    print(f"wrote {args.sheet}")
    return 0


def cmd_info(args) -> int:
    import json

    from vidstyle.apps.info import collect, render

    report = collect()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def cmd_completion(args) -> int:
    try:
        import shtab
    except ImportError:
        raise VidstyleError("shell completion needs shtab: pip install 'vidstyle[completion]'") from None
    parser = create_parser()
    _complete_paths(parser, shtab)
    print(shtab.complete(parser, args.shell))
    return 0


def _complete_paths(parser: argparse.ArgumentParser, shtab) -> None:
    """Files and folders complete as such (shtab reads ``complete`` off each action)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _complete_paths(command, shtab)
        elif action.metavar in ("OUT_DIR", "DIR"):
            action.complete = shtab.DIRECTORY
        elif action.type is Path or action.dest in ("input", "input_option"):
            action.complete = shtab.FILE


def cmd_metrics(args) -> int:
    from vidstyle.measure.metrics import measure

    report = measure(args.input, args.output, args.reference, json_path=args.json)
    width = max(len(name) for name, _ in report.rows())
    for name, value in report.rows():
        print(f"{name:<{width}}  {value}")
    return 0


def cmd_bench(args) -> int:
    from vidstyle.measure import bench
    from vidstyle.engines import PRECISIONS, available
    from vidstyle.measure.system import system_block
    from vidstyle.processing.temporal import MODES

    engines = available() if args.engine == "all" else bench.parse_list(args.engine, str, "--engine")
    batches = bench.parse_list(args.batch, bench.positive, "--batch")
    sizes = bench.parse_list(args.size, bench.wxh, "--size")
    temporals = bench.parse_list(args.temporal, str, "--temporal")
    from vidstyle.processing.reuse import parse as parse_reuse

    reuses = bench.parse_list(args.reuse, parse_reuse, "--reuse")
    precisions = bench.parse_list(args.precision, str, "--precision")
    models = bench.parse_list(args.model, str, "--model")
    for precision in precisions:
        if precision not in PRECISIONS:
            raise VidstyleError(f"--precision: unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    for mode in temporals:
        if mode not in MODES:
            raise VidstyleError(f"--temporal: unknown mode {mode!r}; choose from {', '.join(MODES)}")
    if args.duration is not None:
        args.frames = round(args.duration * args.rate)
    if args.frames < 2 or args.warmup < 0 or args.rate < 1:
        raise VidstyleError("--frames (or --duration x --rate) must be at least 2, --warmup at least 0, --rate at least 1")
    if args.camera is not None and args.mode != "live":
        raise VidstyleError("--camera needs --mode live")
    if args.mode == "live" and args.input is not None:
        raise VidstyleError("bench --mode live runs on a paced synthetic camera at --rate; drop the input file")
    if args.input is not None:
        from vidstyle.io import probe

        probe(args.input)  # a bad file fails here, in one line, before any point runs
    points = [bench.Point(e, b, s, t, args.mode, precision=p, model=m, reuse=r) for e in engines
              for p in precisions for m in models for s in sizes for t in temporals
              for r in (reuses if t == "flow" else reuses[:1]) for b in batches]
    peak = None
    if not args.no_peak:
        from vidstyle.measure.flops import matmul_peak

        peak = matmul_peak()
        print(f"float32 matmul peak here: {peak / 1e9:.0f} GFLOP/s")
    system = system_block()
    print(f"{system['cpu']}, {system['cores_usable']} cores; {len(points)} point(s), {args.frames} frames each")
    results = bench.sweep(points, args.input, args.style, args.frames, args.warmup, peak, rate=args.rate,
                          camera=args.camera,
                          on_result=lambda r: print(f"  {r.point.label}: {r.fps:.2f} fps", flush=True))
    print(bench.table(results))
    extra = {"command": sys.argv, "matmul_peak_flops": peak, "frames": args.frames, "warmup": args.warmup,
             "rate": args.rate,
             "style": args.style,
             "input": str(args.input or (f"camera {args.camera}" if args.camera else "synthetic"))}
    for path in filter(None, [args.json and bench.write_json(args.json, results, system, extra),
                              args.csv and bench.write_csv(args.csv, results),
                              *(bench.plot(args.plot, results) if args.plot else [])]):
        print(f"wrote {path}")
    return 0


def cmd_live(args) -> int:
    from vidstyle.apps.live import LiveConfig, run_live_command

    _check_strength(args.strength)
    _check_strength(args.temporal_strength, "--temporal-strength")
    _check_internal_scale(args)
    if args.serve is not None:
        return cmd_serve(args)
    from vidstyle.apps import interrupt
    from vidstyle.apps.live import Stop

    config = _settings(args, LiveConfig, camera=args.camera, loop=args.loop, window=args.window,
                       virtual_cam=args.virtual_cam, seconds=args.seconds, max_age=args.max_age,
                       stats_json=args.stats_json, record=args.record, mirror=args.mirror)
    # Ctrl-C and SIGTERM are how a live run is normally ended: the first ends it as --seconds
    # does (figures, stats file, recording kept, exit 0); a second exits at once.
    stop = Stop()
    return interrupt.run(lambda: run_live_command(config, stop), stop.set, keeps_something=lambda: True)


def cmd_serve(args) -> int:
    if args.window or args.virtual_cam:
        raise VidstyleError("--serve shows the video in the browser; drop --window and --virtual-cam")
    # The browser is the camera, and each viewer has its own figures on the page.
    for flag, given in (("--camera", args.camera is not None), ("--loop", args.loop),
                        ("--stats-json", args.stats_json is not None), ("--record", args.record is not None)):
        if given:
            raise VidstyleError(f"--serve takes the camera of each browser that connects; drop {flag}")
    try:
        from vidstyle.apps.serve.server import parse_address, serve_forever
    except ImportError as exc:
        raise VidstyleError(f"--serve needs aiortc and aiohttp ({exc.name} is missing): "
                            "pip install 'vidstyle[serve]'") from None
    from vidstyle.apps.serve.viewer import ViewerSettings

    host, port = parse_address(args.serve)
    settings = _settings(args, ViewerSettings, max_age=args.max_age)
    from vidstyle.apps.serve.limits import Limits

    given = {"max_viewers": args.max_viewers, "public_url": args.public_url}
    limits = Limits(**{name: value for name, value in given.items() if value is not None})
    serve_forever(settings, host, port, seconds=args.seconds, limits=limits)
    return 0


def _bar(args, unit: str, desc: str):
    state = {}

    def progress(count: int, total: int | None) -> None:
        if args.no_progress:
            return
        if "bar" not in state:
            from tqdm import tqdm

            state["bar"] = tqdm(total=total, unit=unit, desc=desc, dynamic_ncols=True)
        state["bar"].update(count - state["bar"].n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return progress, close


def _check_cluster_options(args) -> None:
    for flag, value in (("--workers", args.workers), ("--cpus-per-worker", args.cpus_per_worker),
                        ("--segment-frames", args.segment_frames)):
        if value is not None and value < 1:
            raise VidstyleError(f"{flag} must be at least 1, got {value}")


def _cluster_transcode(args, config) -> int:
    from vidstyle.apps import interrupt
    from vidstyle.cluster.commands import Session, run_transcode

    _check_cluster_options(args)
    progress, close = _bar(args, "frame", "stylizing")
    session = Session(args.cluster, args.workers, args.cpus_per_worker)
    try:
        # Ctrl-C/SIGTERM: finished segments stay for --resume, the actors stop, a Ray runtime
        # this command started is shut down; the work answers within a poll, so no grace cut-off.
        result = interrupt.run(lambda: run_transcode(config, session, args.resume, args.segment_frames, progress),
                               session.cancel, keeps_something=lambda: True)
    finally:
        close()
    reused = f", {result.reused} reused" if result.reused else ""
    retried = f", {result.retries} retried" if result.retries else ""
    nodes = f" on {result.nodes} nodes" if result.nodes > 1 else ""
    _warn_skipped(result.skipped)
    print(f"wrote {result.output} ({result.frames} frames in {result.segments} segments{nodes}{reused}{retried}, "
          f"{result.fps:.1f} fps)")
    return 0


def cmd_batch(args) -> int:
    from vidstyle.apps import interrupt
    from vidstyle.cluster.commands import Session, find_inputs, output_dir, run_batch

    _check_transcode_options(args)
    _check_cluster_options(args)
    inputs = find_inputs(args.input)
    out_dir = output_dir(args.output)
    config = _transcode_config(args, inputs[0], out_dir / inputs[0].name)
    progress, close = _bar(args, "frame", "batch")
    session = Session(args.cluster, args.workers, args.cpus_per_worker)
    try:
        outputs = interrupt.run(lambda: run_batch(config, inputs, out_dir, session, args.resume, progress,
                                                  args.segment_frames, skip_existing=args.overwrite is False),
                                session.cancel, keeps_something=lambda: True)  # as _cluster_transcode
    finally:
        close()
    there = len(inputs) - len(outputs)
    print(f"wrote {len(outputs)} file(s) to {out_dir}" + (f" ({there} already there)" if there else ""))
    return 0


def _ffmpeg_order(argv: list[str]) -> list[str]:
    """``vidstyle -i IN -o OUT ...`` (or ``-y -i ...``), as one would call ffmpeg, is a transcode."""
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        return ["transcode", *argv]
    return argv


def _one_input(args) -> None:
    """IN or -i IN: exactly one."""
    if not hasattr(args, "input_option"):
        return
    given = [value for value in (args.input, args.input_option) if value is not None]
    if len(given) != 1:
        raise VidstyleError(f"{args.command}: give the input once, as IN or -i IN"
                            + (f" (got {given[0]} and {given[1]})" if given else ""))
    args.input = given[0]


def main(argv: list[str] | None = None) -> int:
    args = create_parser().parse_args(_ffmpeg_order(sys.argv[1:] if argv is None else list(argv)))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up chatter is not for users
    handler = {"transcode": cmd_transcode, "batch": cmd_batch, "image": cmd_image, "styles": cmd_styles, "metrics": cmd_metrics, "bench": cmd_bench,
               "live": cmd_live, "info": cmd_info, "completion": cmd_completion}[args.command]
    try:
        _one_input(args)
        return handler(args)
    except Cancelled as exc:
        print(f"vidstyle: interrupted: {_one_line(exc)}", file=sys.stderr)
        signum = getattr(exc, "signum", None)
        if signum is not None:  # a real Ctrl-C or SIGTERM: everything is written and closed by now
            from vidstyle.apps.interrupt import exit_now

            exit_now(128 + signum)
        return 130
    except KeyboardInterrupt:
        print("vidstyle: interrupted; no output was written", file=sys.stderr)
        return 130
    except VidstyleError as exc:
        print(f"vidstyle: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader left (vidstyle styles | head): stop quietly, and keep Python's exit-time
        # flush of stdout from failing again (the recipe of Python's signal documentation).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _one_line(error: BaseException, limit: int = 400) -> str:
    """The message on one line: a library's multi-line text (TensorFlow's node traces) folded and cut."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
