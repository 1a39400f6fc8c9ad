"""How long `vidstyle transcode` takes to stop after Ctrl-C (or SIGTERM), and what it keeps.

For each size: a synthetic clip, `python -m vidstyle transcode` with its
progress bar, the signal once --after frames were written, then the seconds
until the interrupted line and until the process had exited, and the frames
kept in OUT.partial.mp4 (decoded again to check they play).

    .venv/bin/python benchmarks/stop_time.py --size 64x48,640x360,1280x720 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from media import make_video, read_video  # noqa: E402


def one_stop(clip: Path, frames: int, after: int, signum: int, extra: list[str]) -> dict:
    folder = clip.parent
    for leftover in folder.glob("out*.mp4"):
        leftover.unlink()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "vidstyle", "transcode", clip.name, "-o", "out.mp4", *extra],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = b""
    while not any(int(n) >= after for n in re.findall(rb"(\d+)/%d\b" % frames, err)):
        chunk = proc.stderr.read1(4096)
        if not chunk:
            raise RuntimeError(f"ended before {after} frames: {err[-300:]!r}")
        err += chunk
    sent = time.monotonic()
    proc.send_signal(signum)
    said = None
    while chunk := proc.stderr.read1(4096):
        err += chunk
        if said is None and b"vidstyle: interrupted" in err:
            said = time.monotonic() - sent
    proc.wait()
    exited = time.monotonic() - sent
    line = err.decode(errors="replace").strip().splitlines()[-1]
    kept = int(re.search(r"kept (\d+) of", line)[1]) if "kept" in line else 0
    played = len(read_video(folder / "out.partial.mp4").frames) if kept else 0
    return {"message_s": said, "exit_s": exited, "code": proc.returncode, "kept": kept, "played": played,
            "line": line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="64x48,640x360,1280x720")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--after", type=int, default=12, help="signal once this many frames were written")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--signal", default="INT", choices=("INT", "TERM"))
    args, extra = parser.parse_known_args()
    signum = getattr(signal, f"SIG{args.signal}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.size.split(","):
            width, height = map(int, size.split("x"))
            clip = make_video(Path(tmp) / f"in{size}.mp4", frames=args.frames, size=(width, height))
            for _ in range(args.rounds):
                r = one_stop(clip, args.frames, args.after, signum, extra)
                print(f"{size} SIG{args.signal}: line after {r['message_s']:.2f} s, exit after {r['exit_s']:.2f} s, "
                      f"code {r['code']}, kept {r['kept']} (decoded {r['played']})  [{r['line']}]", flush=True)


if __name__ == "__main__":
    main()
