"""Still pictures: read, stylize, write atomically, and the built-in style sheet."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidstyle.processing import styles
from vidstyle.errors import InputError, OutputError
from vidstyle.processing.pixels import load_rgb
from vidstyle.models import NUM_STYLES
from vidstyle.models.catalog import NAMES

DEFAULT_CONTENT = Path(__file__).resolve().parents[1] / "data" / "content.jpg"


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 image, or InputError with one line."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    image = load_rgb(path)
    if image is None:
        raise InputError(f"{path}: not an image OpenCV can decode")
    return image


def check_output(path: Path, inputs: list[Path] = (), overwrite: bool = True) -> None:
    """Fail before any work if ``path`` cannot be written, would overwrite an input, or
    (``overwrite`` False) exists."""
    folder = path.parent if str(path.parent) else Path(".")
    for src in inputs:
        if path.exists() and src.exists() and os.path.samefile(path, src):
            raise OutputError(f"{path}: output would overwrite the input")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    try:  # os.access says yes to root everywhere (even /proc): try it for real
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None
    if cv2.haveImageWriter(f"x{path.suffix}") is False or not path.suffix:
        raise OutputError(f"{path}: unknown image type {path.suffix or '(none)'}; use .png or .jpg")
    if not overwrite and path.exists():
        raise OutputError(f"{path}: already exists; -y replaces it")


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Encode to a temporary file beside ``path`` and rename it into place."""
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: OpenCV cannot encode {path.suffix} images")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.partial-", suffix=path.suffix, dir=path.parent or ".")
    except OSError as exc:  # e.g. root in /proc, where os.access() in check_output says yes
        raise OutputError(f"{path}: cannot write in {path.parent} ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.tobytes())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def style_sheet(stylizer_factory, content: np.ndarray, tile: int = 200, columns: int = 7) -> np.ndarray:
    """The original and all built-in styles on ``content``, labelled, as one RGB image.

    All 26 styles run as one batch: the engine takes one style vector per image.
    """
    h, w = content.shape[:2]
    scale = tile / max(h, w)
    small = cv2.resize(content, (max(4, round(w * scale)) // 4 * 4, max(4, round(h * scale)) // 4 * 4),
                       interpolation=cv2.INTER_AREA)
    stylizer = stylizer_factory(styles.builtin({0: 1.0}))
    batch = np.repeat(small[None], NUM_STYLES, axis=0)
    stylized = stylizer.engine.run(batch, np.eye(NUM_STYLES, dtype=np.float32))
    return contact_sheet([("original", small)] + [(f"{i} {NAMES[i]}", stylized[i]) for i in range(NUM_STYLES)],
                         columns)


def contact_sheet(tiles: list[tuple[str, np.ndarray]], columns: int = 7) -> np.ndarray:
    """Pictures of one size in rows of ``columns``, each under its label, on white."""
    th, tw = tiles[0][1].shape[:2]
    label, pad = 22, 6
    widest = max(cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)[0][0] for name, _ in tiles)
    font = min(0.5, (tw - 4) / widest)  # every label fits its tile
    rows = -(-len(tiles) // columns)
    sheet = np.full((pad + rows * (th + label + pad), pad + columns * (tw + pad), 3), 255, np.uint8)
    for n, (name, img) in enumerate(tiles):
        r, c = divmod(n, columns)
        y, x = pad + r * (th + label + pad), pad + c * (tw + pad)
        cv2.putText(sheet, name, (x + 2, y + 16), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
        sheet[y + label : y + label + th, x : x + tw] = img
    return sheet
