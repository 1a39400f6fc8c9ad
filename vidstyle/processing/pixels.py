"""Per-pixel helpers: an RGB picture from a file, colour preservation, strength."""
from __future__ import annotations

import cv2
import numpy as np


def keep_colour(stylized: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Stylized luminance with the original's chroma (Gatys et al. 2016, "Preserving colour")."""
    y = cv2.cvtColor(stylized, cv2.COLOR_RGB2YCrCb)[..., :1]
    crcb = cv2.cvtColor(original, cv2.COLOR_RGB2YCrCb)[..., 1:]
    return cv2.cvtColor(np.concatenate([y, crcb], axis=-1), cv2.COLOR_YCrCb2RGB)


def blend(stylized: np.ndarray, original: np.ndarray, strength: float) -> np.ndarray:
    """strength 1 -> stylized, 0 -> original."""
    if strength >= 1.0:
        return stylized
    return cv2.addWeighted(stylized, strength, original, 1.0 - strength, 0.0)


def load_rgb(path) -> np.ndarray | None:
    """RGB uint8 image from a file, or None if OpenCV cannot decode it. Reads the bytes
    and decodes them (np.fromfile + imdecode) so non-ASCII paths work."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
