"""Style specs: a built-in index, a mix of built-ins, or any picture."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidstyle.errors import StyleError
from vidstyle.processing.pixels import load_rgb
from vidstyle.models import NUM_STYLES

BUILTIN_MODEL = "multistyle26"
PICTURE_MODEL = "arbitrary_transformer"


@dataclass(frozen=True)
class Style:
    """What to paint with. ``weights`` for built-ins (sums to 1), ``picture`` for any image."""

    label: str
    weights: np.ndarray | None = field(default=None, compare=False)
    picture: Path | None = None

    @property
    def model(self) -> str:
        return PICTURE_MODEL if self.picture is not None else BUILTIN_MODEL


def builtin(weights: dict[int, float]) -> Style:
    w = np.zeros(NUM_STYLES, np.float32)
    for idx, wt in weights.items():
        if not 0 <= idx < NUM_STYLES:
            raise StyleError(f"unknown style index {idx}; built-in styles are 0 to {NUM_STYLES - 1}")
        if wt < 0:
            raise StyleError(f"style weight for {idx} is negative ({wt})")
        w[idx] += wt
    # float() accepts "nan" and "inf", and float32 overflows past 3.4e38: any of them
    # would turn every normalised weight into NaN.
    if not np.isfinite(w.sum()):
        raise StyleError(f"style weights must be finite numbers, got {weights}")
    if w.sum() <= 0:
        raise StyleError("style weights must not all be zero")
    label = ",".join(f"{i}:{wt:g}" for i, wt in sorted(weights.items())) if len(weights) > 1 else str(next(iter(weights)))
    return Style(label=label, weights=w / w.sum())


def parse(spec: str | int) -> Style:
    """'7', '3:0.5,12:0.5', or a path to a picture."""
    text = str(spec).strip()
    if not text:
        raise StyleError("empty style; use an index (7), a mix (3:0.5,12:0.5) or a picture file")
    if not _is_index_mix(text):
        return picture(Path(text))
    weights: dict[int, float] = {}
    for part in text.split(","):
        idx, _, wt = part.partition(":")
        weights[int(idx)] = weights.get(int(idx), 0.0) + (float(wt) if wt else 1.0)
    return builtin(weights)


def _is_index_mix(text: str) -> bool:
    try:
        for part in text.split(","):
            idx, _, wt = part.partition(":")
            int(idx)
            if wt:
                float(wt)
        return True
    except ValueError:
        return False


def picture(path: Path) -> Style:
    if not path.is_file():
        raise StyleError(f"style {str(path)!r} is neither a style index (0-{NUM_STYLES - 1}), a mix (3:0.5,12:0.5) nor a picture file")
    read_picture(path)  # fail now, before any video work, if it is not an image
    return Style(label=path.name, picture=path)


def read_picture(path: Path) -> np.ndarray:
    """RGB uint8 picture, or StyleError naming the file."""
    image = load_rgb(path)
    if image is None:
        raise StyleError(f"cannot read style picture {path}: not an image OpenCV can decode")
    return image
