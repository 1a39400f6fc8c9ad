"""Offline transcoding speed: vidstyle against its own engine, a plain loop, the peer and the I/O ceiling.

    .venv/bin/python benchmarks/peers.py [--clip samples/cup.mp4] [--style 7] [--size 640x480]
        [--batch 4] [--frames N] [--rounds 2] [--no-peer] [--out benchmarks/results/]

One process, one run. Each round runs every measurement once, in an order that rotates from
round to round, so that noise on a shared machine hits them alike; ratios are taken inside a
round, then the median over rounds is reported. Trust the ratios, not the absolute numbers.

    (a)  engine only: prepared frames in memory, vidstyle's (warm) engine
    (b)  plain sequential loop: decode -> prepare -> engine -> finish -> encode, one thread
    (c)  vidstyle transcode, --temporal off (per-frame, like a, b and d)
    (c2) vidstyle transcode, --temporal flow (its default)
    (d)  the peer: styletransfer-lite video, as a subprocess
    (e)  I/O ceiling: vidstyle's FileSource -> FileSink (decode + x264 encode + audio copy), no inference

See benchmarks/README.md.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REPO, Stopwatch, median, save_results, system_block, table  # noqa: E402
from vidstyle.models.tfimport import quiet_stderr  # noqa: E402

with quiet_stderr():  # TF 2.21 prints its oneDNN notice through absl, which ignores TF_CPP_MIN_LOG_LEVEL
    import tensorflow  # noqa: E402, F401
    import keras  # noqa: E402, F401
from vidstyle import engines  # noqa: E402
from vidstyle.processing import geometry, styles
from vidstyle.processing import temporal as temporal_mod  # noqa: E402
from vidstyle.frame import Frame  # noqa: E402
from vidstyle.io import EncodeSettings, FileSink, FileSource  # noqa: E402
from vidstyle.pipeline.runner import Pipeline, RunStats, Stage  # noqa: E402
from vidstyle.offline import TranscodeConfig, transcode  # noqa: E402

PEER = "styletransfer-lite[video]==0.1.0"
KEYS = ("a", "b", "c", "c2", "d", "e")  # round 1 runs them in this order; each later round starts one further on
TARGETS = {"c/a": 0.9, "c/d": 1.0, "c/d (no startup)": 1.0}
RATIO_NOTES = {
    "c/a": "pipeline vs engine alone (target)",
    "c/b": "threads vs plain loop",
    "c/d": "vs peer, its startup included",
    "c/d (no startup)": "vs peer, startup excluded (quote this)",
    "c/e": "share of the I/O ceiling",
    "c2/c": "cost of --temporal flow",
    "e/(a+e)": "c/a if I/O and inference never overlap",
}


def ensure_peer(venv: Path) -> Path:
    """The peer's CLI in its own venv, created (or repaired) on first use."""
    exe = venv / "bin" / "styletransfer-lite"
    if not exe.exists():
        print(f"creating {venv} with {PEER} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PEER], check=True)
    return exe


def decode_all(clip: Path, limit: int | None = None) -> tuple[list[np.ndarray], object]:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate
        frames = []
        for f in container.decode(stream):
            frames.append(f.to_ndarray(format="rgb24"))
            if limit and len(frames) == limit:
                break
    return frames, rate


def write_clip(frames: list[np.ndarray], rate, path: Path) -> Path:
    """A video-only H.264 crf 18 clip of ``frames`` (for --frames and the peer's startup estimate)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt, s.codec_context.options = w, h, "yuv420p", {"crf": "18", "preset": "medium"}
        for img in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    return path


def stage_block(stats: RunStats, frames: int) -> dict:
    """Per-stage busy seconds (time inside the stage, not waiting on queues) and ms per frame."""
    return {k: {"items": s.items, "busy": s.busy, "ms_per_frame": 1000 * s.busy / max(1, frames)}
            for k, s in stats.stages.items()}


def run_engine(engine, batches: list[np.ndarray], weights: np.ndarray) -> dict:
    """(a) engine.run on prepared frames already in memory."""
    with Stopwatch() as sw:
        for b in batches:
            engine.run(b, weights)
    n = sum(len(b) for b in batches)
    return {"frames": n, "seconds": sw.seconds, "fps": n / sw.seconds, "cores_busy": sw.cpu / sw.seconds}


def run_sequential(clip: Path, out: Path, engine, weights, geom, batch: int, enc: EncodeSettings) -> dict:
    """(b) decode -> prepare -> engine -> finish -> encode, one thread, no overlap.

    ``parts`` is the wall time of each step; being sequential, they add up to (almost) the whole."""
    parts = dict.fromkeys(("decode", "prepare", "engine", "finish", "encode"), 0.0)
    n = 0
    with Stopwatch() as sw, av.open(str(clip)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        vout = dst.add_stream(enc.codec, rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = geom.src_w, geom.src_h, enc.pix_fmt
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.options = {"crf": str(enc.crf), "preset": enc.preset}
        pending: list[tuple[int, np.ndarray]] = []

        def flush():
            t0 = time.perf_counter()
            nets = np.stack([geometry.prepare(img, geom) for _, img in pending])
            k = len(nets)
            if k < batch:  # same fixed shape as every other batch: no second trace
                nets = np.concatenate([nets, np.repeat(nets[-1:], batch - k, axis=0)])
            t1 = time.perf_counter()
            outs = engine.run(nets, weights)[:k]
            t2 = time.perf_counter()
            parts["prepare"] += t1 - t0
            parts["engine"] += t2 - t1
            for (pts, _), o in zip(pending, outs):
                t0 = time.perf_counter()
                frame = av.VideoFrame.from_ndarray(geometry.finish(o, geom), format="rgb24")
                t1 = time.perf_counter()
                frame.pts, frame.time_base = pts, vin.time_base
                dst.mux(vout.encode(frame))
                parts["finish"] += t1 - t0
                parts["encode"] += time.perf_counter() - t1
            pending.clear()
            return k

        decoded = inp.decode(vin)
        while True:
            t0 = time.perf_counter()
            f = next(decoded, None)
            img = None if f is None else f.to_ndarray(format="rgb24")
            parts["decode"] += time.perf_counter() - t0
            if f is None:
                break
            pending.append((f.pts, img))
            if len(pending) == batch:
                n += flush()
        if pending:
            n += flush()
        t0 = time.perf_counter()
        dst.mux(vout.encode(None))
        parts["encode"] += time.perf_counter() - t0
    return {"frames": n, "seconds": sw.seconds, "fps": n / sw.seconds, "cores_busy": sw.cpu / sw.seconds,
            "parts": {k: {"seconds": v, "ms_per_frame": 1000 * v / max(1, n)} for k, v in parts.items()}}


def run_pipeline(clip: Path, out: Path, style: str, size, batch: int, temporal: str) -> dict:
    """(c), (c2) the real thing. fps = frames / pipeline wall (as TranscodeResult.fps); call_fps also
    counts what transcode() does before the pipeline starts (probe, engine lookup, sink)."""
    with Stopwatch() as sw:
        res = transcode(TranscodeConfig(input=clip, output=out, style=style, size=size, batch=batch,
                                        temporal=temporal))
    return {"temporal": temporal, "frames": res.frames, "seconds": res.stats.wall, "fps": res.fps,
            "call_seconds": sw.seconds, "call_fps": res.frames / sw.seconds, "cores_busy": sw.cpu / sw.seconds,
            "stages": stage_block(res.stats, res.frames)}


def run_io(clip: Path, out: Path, enc: EncodeSettings) -> dict:
    """(e) the I/O ceiling: transcode() with no stylize stages. vidstyle's own FileSource (threaded
    decode) on one thread, its FileSink (BT.709 conversion, x264 with ``enc``, audio copy) on another,
    a bounded queue between them: the same code and threads as (c), minus inference."""
    with Stopwatch() as sw:
        source = FileSource(clip)
        info = source.info
        sink = FileSink(out, info, info.width, info.height, enc, audio_from=str(clip))
        written = 0

        def encode(frame: Frame):
            nonlocal written
            sink.write(frame)
            written += 1
            return ()

        def finalize():
            sink.close()
            return ()

        try:
            stats = Pipeline(source.frames, [Stage("encode", encode, finalize)]).run()
        except BaseException:
            sink.abort()
            raise
        finally:
            source.close()
    return {"frames": written, "seconds": stats.wall, "fps": written / stats.wall, "call_seconds": sw.seconds,
            "call_fps": written / sw.seconds, "cores_busy": sw.cpu / sw.seconds, "stages": stage_block(stats, written)}


def run_peer(exe: Path, clip: Path, out: Path, style: str, max_size: int) -> dict:
    cmd = [str(exe), "video", str(clip), "-o", str(out), "--style", style, "--max-size", str(max_size),
           "--device", "cpu", "--json"]
    with Stopwatch() as sw:
        p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"peer failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    info = json.loads(p.stdout)
    return {"frames": info["frames"], "wall": sw.seconds, "self_seconds": info["seconds"],
            "cores_busy": sw.cpu / sw.seconds, "cmd": cmd}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=REPO / "samples" / "cup.mp4")
    ap.add_argument("--style", default="7", help="a built-in style index or mix")
    ap.add_argument("--size", default="640x480", help="processing size, WxH or the longer side")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, help="use only the first N frames (re-encoded to a temp clip)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--peer-venv", type=Path, default=REPO / "benchmarks" / ".venv-peer")
    ap.add_argument("--no-peer", action="store_true", help="skip (d)")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.batch < 1 or (args.frames is not None and args.frames < 1):
        ap.error("--rounds, --batch and --frames must be at least 1")
    style = styles.parse(args.style)
    if style.picture is not None:
        ap.error("--style must be a built-in index or mix (the peer's video command takes no picture)")
    return args, style


def main(argv=None) -> int:
    args, style = parse_args(argv)
    size = geometry.parse_size(args.size)
    peer = None if args.no_peer else ensure_peer(args.peer_venv)
    system = system_block()  # before the run: its load average says how busy the machine was
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="vidstyle-bench-"))
    try:
        return _run(args, style, size, peer, system, started, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, style, size, peer, system, started, tmp: Path) -> int:
    clip = args.clip
    frames, rate = decode_all(clip, args.frames)
    if args.frames:
        clip = write_clip(frames, rate, tmp / "clip.mp4")
    one_frame = write_clip(frames[:1], rate, tmp / "one.mp4")
    n = len(frames)
    if n < args.batch:
        raise SystemExit(f"the clip has {n} frames, fewer than one batch of {args.batch}")
    geom = geometry.plan(frames[0].shape[1], frames[0].shape[0], size)
    peer_side = max(geom.proc_w, geom.proc_h)
    peer_geom = geometry.plan(geom.src_w, geom.src_h, peer_side)
    if peer and (peer_geom.proc_w, peer_geom.proc_h) != (geom.proc_w, geom.proc_h):
        print(f"warning: the peer keeps the aspect ratio; --max-size {peer_side} is not {args.size}")
    prepared = [geometry.prepare(f, geom) for f in frames]
    batches = [np.stack(prepared[i:i + args.batch]) for i in range(0, n - args.batch + 1, args.batch)]
    del prepared, frames
    enc = EncodeSettings()
    flow = temporal_mod.DEFAULT_MODE
    print(f"clip {args.clip.name}: {n} frames {geom.src_w}x{geom.src_h}, processing {geom.proc_w}x{geom.proc_h} "
          f"(net {geom.net_w}x{geom.net_h}), style {style.label}, batch {args.batch}, {enc.codec} crf {enc.crf} "
          f"{enc.preset}, {args.rounds} round(s); load average {system['load_average'][0]:.2f} "
          f"on {system['cores_usable']} cores", flush=True)

    # One engine per process: engines.create returns the shared, traced engine that transcode() also uses.
    engine = engines.create("tf", style.model)
    with Stopwatch() as warm:
        engine.run(batches[0], style.weights)  # traces the tf.function
    with Stopwatch() as warm2:
        engine.run(batches[0], style.weights)
    print(f"engine warm-up: first call {warm.seconds:.2f}s (trace + run), second {warm2.seconds:.2f}s", flush=True)

    def measure(key: str) -> dict:
        if key == "a":
            return run_engine(engine, batches, style.weights)
        if key == "b":
            with quiet_stderr():
                return run_sequential(clip, tmp / "b.mp4", engine, style.weights, geom, args.batch, enc)
        if key == "c":
            return run_pipeline(clip, tmp / "c.mp4", args.style, size, args.batch, "off")
        if key == "c2":
            return run_pipeline(clip, tmp / "c2.mp4", args.style, size, args.batch, flow)
        if key == "d":
            d, d1 = (run_peer(peer, c, tmp / "d.mp4", args.style, peer_side) for c in (clip, one_frame))
            return {**d, "one_frame_wall": d1["wall"], "fps": d["frames"] / d["wall"],
                    "fps_no_startup": (d["frames"] - 1) / (d["wall"] - d1["wall"]),
                    "fps_self_reported": d["frames"] / d["self_seconds"]}
        if key == "e":
            return run_io(clip, tmp / "e.mp4", enc)
        raise KeyError(key)

    keys = [k for k in KEYS if peer or k != "d"]
    rounds = []
    for r in range(args.rounds):
        order = keys[r % len(keys):] + keys[:r % len(keys)]
        res = {"order": order, "load_average_before": list(os.getloadavg())}
        print(f"round {r + 1}:", end="", flush=True)
        for key in order:
            res[key] = measure(key)
            print(f" ({key}) {res[key]['fps']:.2f}", end="", flush=True)
        print(" fps", flush=True)
        a, c, e = res["a"]["fps"], res["c"]["fps"], res["e"]["fps"]
        res["ratios"] = {"c/a": c / a, "c/b": c / res["b"]["fps"]}
        if peer:
            res["ratios"]["c/d"] = c / res["d"]["fps"]
            res["ratios"]["c/d (no startup)"] = c / res["d"]["fps_no_startup"]
        res["ratios"].update({"c/e": c / e, "c2/c": res["c2"]["fps"] / c, "e/(a+e)": e / (a + e)})
        rounds.append(res)
    elapsed = time.perf_counter() - started

    def fps_row(label, key, field="fps"):
        vals = [r[key][field] for r in rounds if key in r]
        if not vals:
            return None
        busy = [r[key]["cores_busy"] for r in rounds] if field == "fps" else [None]
        return [label, *vals, median(vals), median(busy)]

    heads = ["measurement (frames/s)", *(f"round {i + 1}" for i in range(len(rounds))), "median", "cores busy"]
    rows = [fps_row("(a)  engine only, frames in memory", "a"),
            fps_row("(b)  plain sequential loop, one thread", "b"),
            fps_row("(c)  vidstyle transcode, --temporal off", "c"),
            fps_row("     same, whole transcode() call", "c", "call_fps"),
            fps_row(f"(c2) vidstyle transcode, --temporal {flow} (default)", "c2"),
            fps_row("     same, whole transcode() call", "c2", "call_fps"),
            fps_row("(d)  styletransfer-lite video, subprocess wall", "d"),
            fps_row("     same, startup excluded (1-frame run)", "d", "fps_no_startup"),
            fps_row("     same, its own --json seconds", "d", "fps_self_reported"),
            fps_row("(e)  I/O ceiling: decode + encode, no inference", "e")]
    print("\n" + table([r for r in rows if r], heads))

    ratios = {k: median([r["ratios"][k] for r in rounds]) for k in rounds[0]["ratios"]}
    print("\n" + table([[k, v, f">= {TARGETS[k]}" if k in TARGETS else "",
                         ("met" if v >= TARGETS[k] else "NOT MET") if k in TARGETS else "", RATIO_NOTES.get(k, "")]
                        for k, v in ratios.items()], ["ratio (median of per-round)", "value", "target", "", "what"]))

    def ms(key, stage, part="stages"):
        return median([r[key][part][stage]["ms_per_frame"] for r in rounds if stage in r[key][part]])

    names = list(rounds[0]["c2"]["stages"])  # c2 has every stage of c, plus motion
    stage_rows = [[name, ms("c", name), ms("c2", name), ms("e", name),
                   ms("b", name, "parts") if name in rounds[0]["b"]["parts"] else None] for name in names]
    walls = [1000 / median([r[k]["fps"] for r in rounds]) for k in ("c", "c2", "e", "b")]
    stage_rows.append(["(wall per frame)", *walls])
    print(f"\nwhere the time goes, ms/frame (busy time inside each stage, median over rounds; the threaded\n"
          f"stages of (c), (c2), (e) overlap, so their busy times can add up to more than the wall; (a) is\n"
          f"{1000 / median([r['a']['fps'] for r in rounds]):.1f} ms/frame of engine alone):")
    print(table(stage_rows, ["stage", "(c) off", f"(c2) {flow}", "(e) I/O", "(b) sequential"]))

    payload = {"benchmark": "peers", "command": [sys.executable, *sys.argv],
               "system": {**system, "load_average_end": list(os.getloadavg())},
               "config": {"clip": str(args.clip), "frames": n, "style": args.style, "size": args.size,
                          "geometry": vars(geom), "batch": args.batch, "rounds": args.rounds,
                          "encode": vars(enc), "temporal_c2": flow, "peer": PEER if peer else None,
                          "peer_max_size": peer_side if peer else None},
               "seconds": elapsed, "engine_warmup_s": [warm.seconds, warm2.seconds],
               "median_fps": {k: median([r[k]["fps"] for r in rounds]) for k in keys},
               "rounds": rounds, "ratios": ratios,
               "targets": {k: {"target": t, "value": ratios.get(k), "met": ratios.get(k, -1) >= t}
                           for k, t in TARGETS.items() if k in ratios}}
    print(f"\nsaved {save_results(args.out, 'peers', payload)} ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
