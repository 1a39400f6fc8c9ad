"""A side-by-side picture of the CPU speed levers on one real frame, for a person to judge.

    .venv/bin/python benchmarks/lever_sheet.py [--clip cup|bikes|carphone] [--frame 120]
        [--style 7] [--out docs/images/cpu-levers.jpg]

The frame, the float32 reference, then each lever of benchmarks/cpu_speed.py, each tile
labelled with its mean abs difference and SSIM against the reference.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import clips  # noqa: E402
from benchmarks.common import REPO  # noqa: E402
from benchmarks.cpu_speed import LEVERS, available_levers  # noqa: E402
from vidstyle import engines  # noqa: E402
from vidstyle.measure.metrics import ssim  # noqa: E402


def label(tile: np.ndarray, lines: list[str]) -> np.ndarray:
    bar = np.full((22 * len(lines) + 8, tile.shape[1], 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(bar, text, (6, 20 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([tile, bar])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="cup", choices=list(clips.REAL_CLIPS))
    ap.add_argument("--frame", type=int, default=120)
    ap.add_argument("--style", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "cpu-levers.jpg")
    args = ap.parse_args(argv)
    frame = clips.real_frames(args.clip, every=1, limit=args.frame + 1)[args.frame]
    h, w = frame.shape[:2]
    frame = frame[: h // 4 * 4, : w // 4 * 4]
    style = np.eye(26, dtype=np.float32)[args.style]
    ref = engines.create("tf", "multistyle26", precision="fp32").run(frame[None], style)[0]
    tiles = [label(frame, ["input", f"{args.clip} frame {args.frame}"]),
             label(ref, ["tf fp32 (reference)", f"style {args.style}"])]
    for lever in available_levers("all")[1:]:
        out = lever.stylize(lever.create(), frame[None], style)[0]
        a, b = out.astype(np.float32) / 255, ref.astype(np.float32) / 255
        tiles.append(label(out, [lever.name, f"mean abs {np.abs(a - b).mean():.3f}  SSIM {ssim(a, b):.3f}"]))
    while len(tiles) % 3:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + 3], axis=1) for i in range(0, len(tiles), 3)]
    sheet = np.concatenate(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}; levers: {', '.join(lv.name for lv in LEVERS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
