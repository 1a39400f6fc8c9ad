"""The README's picture: three seconds of the sample as source | per-frame | vidstyle, a GIF.

    .venv/bin/python -m tools.sample_picture [--out docs/images/sample.gif]

The middle panel is each frame stylized on its own (``--temporal off``), the right one
the same stylizations smoothed along the motion as ``vidstyle transcode`` does by default.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from vidstyle.io import FileSource
from vidstyle.processing import styles, temporal
from vidstyle.pipeline.stylizer import Stylizer

REPO = Path(__file__).resolve().parent.parent
PANEL = (200, 150)
COLOURS = 64  # one palette for every frame, no dithering: a GIF of a few hundred KB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "sample.gif")
    ap.add_argument("--first", type=int, default=40, help="first frame of the sample shown")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--style", default="7")
    args = ap.parse_args()
    stylizer = Stylizer(styles.parse(args.style))
    smoother = temporal.create()
    pictures = []
    with FileSource(REPO / "samples" / "cup.mp4") as source:
        for frame in source.frames():
            if frame.index >= args.first + args.frames:
                break
            per_frame = stylizer.image(frame.image)
            # The smoother needs the frames before the first shown to have history, as in a transcode.
            smoothed = smoother.blend(frame.index, per_frame, smoother.observe(frame.index, frame.image))
            if frame.index >= args.first:
                row = Image.fromarray(np.hstack([cv2.resize(p, PANEL, interpolation=cv2.INTER_AREA)
                                                 for p in (frame.image, per_frame, smoothed)]))
                palette = pictures[0] if pictures else row.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT)
                pictures.append(row.quantize(palette=palette, dither=Image.Dither.NONE))
    rate = float(source.rate or 25)
    pictures[0].save(args.out, save_all=True, append_images=pictures[1:], duration=round(1000 / rate), loop=0,
                     optimize=True)
    print(f"wrote {args.out} ({len(pictures)} frames, {args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
