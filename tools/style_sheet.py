"""Picture the built-in styles: the contact sheet in docs/ and the thumbnails the package ships.

    python -m tools.style_sheet [--frame 60]

Each style is applied to one frame of samples/cup.mp4 at its full size (640x480: the
brushwork then has the scale it has on video), then shrunk: to 200 px wide tiles for
docs/images/styles.jpg, labelled with index and name, and to 160x120 JPEGs in
vidstyle/models/thumbnails/ (``vidstyle styles`` and the live page's picker show them).
Runs on onnxruntime, fp32: about 15 s on two cores.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

from vidstyle.io.images import contact_sheet
from vidstyle.models import NUM_STYLES
from vidstyle.models.catalog import NAMES, THUMBNAILS, thumbnail
from vidstyle.pipeline.stylizer import StylizeSettings
from vidstyle.processing.styles import builtin

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "cup.mp4"
SHEET = ROOT / "docs" / "images" / "styles.jpg"
SHEET_TILE = (200, 150)
THUMBNAIL = (160, 120)
SHEET_QUALITY, THUMBNAIL_QUALITY = 80, 75


def sample_frame(index: int) -> np.ndarray:
    with av.open(str(SAMPLE)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                return frame.to_ndarray(format="rgb24")
    raise SystemExit(f"{SAMPLE} has no frame {index}")


def shrink(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 1])
    assert ok, path
    path.write_bytes(data.tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frame", type=int, default=60, help="frame of the sample to stylize (default 60)")
    args = parser.parse_args()
    content = sample_frame(args.frame)
    settings = StylizeSettings(engine="onnxruntime", precision="fp32", temporal="off")
    stylized = [settings.stylizer(builtin({i: 1.0})).image(content) for i in range(NUM_STYLES)]
    THUMBNAILS.mkdir(exist_ok=True)
    for i, picture in enumerate(stylized):
        write_jpeg(thumbnail(i), shrink(picture, THUMBNAIL), THUMBNAIL_QUALITY)
    tiles = [("original", shrink(content, SHEET_TILE))]
    tiles += [(f"{i} {NAMES[i]}", shrink(picture, SHEET_TILE)) for i, picture in enumerate(stylized)]
    write_jpeg(SHEET, contact_sheet(tiles), SHEET_QUALITY)
    total = sum(thumbnail(i).stat().st_size for i in range(NUM_STYLES))
    print(f"wrote {SHEET} ({SHEET.stat().st_size // 1000} kB) and {NUM_STYLES} thumbnails in {THUMBNAILS} "
          f"({total // 1000} kB)")


if __name__ == "__main__":
    main()
