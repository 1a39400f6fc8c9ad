"""The built-in styles as people pick them: a name and a thumbnail for each index.

The network came without names for its styles, so these describe what each one does to
the sample clip (docs/images/styles.jpg shows all of them). Thumbnails are a frame of that
clip in each style, 160x120 JPEG, written with the sheet by ``python -m tools.style_sheet``.
"""
from __future__ import annotations

from pathlib import Path

from vidstyle.models import NUM_STYLES

THUMBNAILS = Path(__file__).parent / "thumbnails"

NAMES = (
    "sunlit-pastel",        # 0: soft yellow and sky-blue brushwork
    "ink-on-yellow",        # 1: heavy black strokes on yellow and white
    "pale-hatching",        # 2: faded colours crossed by diagonal hatching
    "fauvist-shards",       # 3: jagged red, blue and yellow strokes over everything
    "warm-gouache",         # 4: flat yellow, red and blue paint with light texture
    "broken-colour",        # 5: small orange and blue dabs
    "blue-cells",           # 6: navy with a cellular, bubbled texture
    "bold-primaries",       # 7: saturated yellow, blue and red areas, dark outlines
    "pink-pencil",          # 8: white paper with pink and cyan pencil lines
    "teal-mosaic",          # 9: small teal and red tiles
    "rust-oil",             # 10: brown and orange oil paint
    "gold-etching",         # 11: cream and gold with dark etched lines
    "lilac-haze",           # 12: soft violet and yellow blur
    "green-expressionism",  # 13: green, yellow and red hatched strokes
    "frost",                # 14: pale icy blue, low contrast
    "stained-glass",        # 15: pastel cells with dark leading
    "blue-crayon",          # 16: blue and orange crayon strokes
    "brick-weave",          # 17: red, orange and blue blocks on a grid
    "sepia-woodcut",        # 18: sepia and cream carved lines
    "starry-blue",          # 19: swirling blue and yellow, Van Gogh-like
    "red-ember",            # 20: deep red and orange
    "pop-poster",           # 21: flat pastel colour with bold black shapes
    "blue-woodblock",       # 22: blue, cream and red print
    "soft-wash",            # 23: smooth green and peach washes, few strokes
    "teal-stipple",         # 24: cream and teal stippling
    "tapestry",             # 25: dense woven blue and orange texture
)
assert len(NAMES) == NUM_STYLES and len(set(NAMES)) == NUM_STYLES


def thumbnail(index: int) -> Path:
    """The thumbnail of built-in style ``index`` (a file in the installed package)."""
    if not 0 <= index < NUM_STYLES:
        raise IndexError(f"no built-in style {index}; there are {NUM_STYLES}")
    return THUMBNAILS / f"{index:02d}.jpg"
