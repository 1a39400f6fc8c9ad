"""From a Style to pixels: ``Stylizer`` (conditioning vectors, batches through the engine,
the per-frame finish) and ``StylizeSettings``, the stylizing options every command shares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from vidstyle import models
from vidstyle.engines import Engine
from vidstyle.engines import create as create_engine
from vidstyle.errors import StyleError, VidstyleError
from vidstyle.models import STYLE_IMAGE_SIZE
from vidstyle.processing import geometry, guided, pixels, reuse, styles
from vidstyle.processing import temporal as temporal_mod
from vidstyle.processing.styles import Style, read_picture


def style_vector(picture: np.ndarray) -> np.ndarray:
    """The 100-d style embedding of an RGB picture (centre square at 256x256), computed by
    the style predictor's ONNX export on onnxruntime (no TensorFlow)."""
    from vidstyle.engines import predictor

    return predictor.embed(geometry.square_crop(picture, STYLE_IMAGE_SIZE))


def check_internal_scale(scale: float) -> None:
    if not 0.0 < scale <= 1.0:
        raise VidstyleError(f"--internal-scale must be above 0 and at most 1, got {scale}")


def run_scaled(engine: Engine, batch: np.ndarray, vector: np.ndarray, scale: float) -> np.ndarray:
    """``engine.run`` at ``scale`` x the batch's size: the network runs smaller and each frame
    comes back to the size it was given by guided upsampling, the frame itself as the guide
    (see vidstyle.processing.guided). At scale 1 (or a size that rounds back to itself) a plain run."""
    h, w = batch.shape[1:3]
    iw, ih = geometry.internal_size(w, h, scale)
    if (iw, ih) == (w, h):
        return engine.run(batch, vector)
    small = np.stack([cv2.resize(f, (iw, ih), interpolation=cv2.INTER_AREA) for f in batch])
    out = engine.run(small, vector)
    return np.stack([guided.upsample(o, f) for o, f in zip(out, batch)])


class Stylizer:
    """Runs one Style on batches of prepared frames and finishes each frame.

    ``strength`` follows Magenta for pictures (the style vector moves toward
    the content's own, computed once from the first frame) and is an output
    blend with the original for built-in styles, whose network has no such
    vector.
    """

    def __init__(self, style: Style, engine: Engine | None = None, *, strength: float = 1.0,
                 preserve_color: bool = False, engine_name: str = "auto", threads: int = 0,
                 precision: str = "auto", model: str = "auto", internal_scale: float = 1.0):
        if not 0.0 <= strength <= 1.0:
            raise StyleError(f"strength must be between 0 and 1, got {strength}")
        check_internal_scale(internal_scale)
        self.style = style
        self.strength = strength
        self.preserve_color = preserve_color
        self.internal_scale = float(internal_scale)
        self.engine = engine or create_engine(engine_name, models.for_style(style.model, model), threads=threads,
                                              precision=precision)
        self._made_with = None if engine else (engine_name, model, precision)
        self._vector: np.ndarray | None = None
        self._picture_vector = style_vector(read_picture(style.picture)) if style.picture else None

    def switch(self, style: Style) -> None:
        """Use ``style`` from the next batch on (live style switching); same network only."""
        if style.model != self.style.model:
            raise StyleError("switching between a built-in style and a picture needs a restart")
        vector = style_vector(read_picture(style.picture)) if style.picture else None
        self.style, self._picture_vector, self._vector = style, vector, None

    def vector(self, content: np.ndarray) -> np.ndarray:
        """The conditioning vector; ``content`` (an RGB frame) is used once, for picture strength."""
        if self._vector is None:
            if self.style.picture is None:
                self._vector = self.style.weights
            elif self.strength < 1.0:
                own = style_vector(content)
                self._vector = self.strength * self._picture_vector + (1.0 - self.strength) * own
            else:
                self._vector = self._picture_vector
        return self._vector

    def run(self, batch: np.ndarray, size: int | None = None, scale: float = 1.0,
            engine: Engine | None = None) -> np.ndarray:
        """Stylize a batch of prepared frames. ``size`` pads a short final batch up to the
        stream's batch size, so each stream compiles exactly one shape; ``scale`` runs the
        network smaller still than ``internal_scale`` (a cheap fill); ``engine`` is another
        engine of the same network (:meth:`engine_with`)."""
        n = len(batch)
        if size and n < size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], size - n, axis=0)])
        return run_scaled(engine or self.engine, batch, self.vector(batch[0]), self.internal_scale * scale)[:n]

    def engine_with(self, threads: int) -> Engine:
        """An engine of this network with ``threads`` intra-op threads, for work that runs
        beside this stylizer's own (live keyframes); this stylizer's engine where it was
        given one rather than made here."""
        if self._made_with is None:
            return self.engine
        name, model, precision = self._made_with
        return create_engine(name, models.for_style(self.style.model, model), threads=threads, precision=precision)

    @property
    def regions(self) -> bool:
        """Whether crops can be recomputed with a keyframe's statistics (region recompute)."""
        return self.engine.regions and self.internal_scale == 1.0

    def keyframe(self, frame: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Stylize one prepared frame (H, W, 3) and measure its norm statistics."""
        out, stats = self.engine.run_stats(frame[None], self.vector(frame))
        return out[0], stats

    def crops(self, crops: list[np.ndarray], stats: list[np.ndarray]) -> list[np.ndarray]:
        """Stylize parts of a frame as the keyframe that measured ``stats`` would have."""
        return self.engine.run_frozen(crops, self.vector(crops[0]), stats)

    def submit(self, batch: np.ndarray, size: int | None = None) -> Callable[[], np.ndarray]:
        """Start stylizing a batch; the returned function waits for and returns what
        :meth:`run` would. An engine that queues work on a device (tensorrt: upload,
        inference and download on their own streams) returns at once, so the caller can
        submit the next batch while this one computes; any other engine runs it now."""
        n = len(batch)
        if size and n < size:
            batch = np.concatenate([batch, np.repeat(batch[-1:], size - n, axis=0)])
        h, w = batch.shape[1:3]
        if geometry.internal_size(w, h, self.internal_scale) == (w, h):
            pending = self.engine.submit(batch, self.vector(batch[0]))
            return lambda: np.concatenate([p.result() for p in pending])[:n]
        out = self.run(batch)[:n]
        return lambda: out

    def finish(self, stylized: np.ndarray, original: np.ndarray, geom: geometry.Geometry) -> np.ndarray:
        return self.touch_up(geometry.finish(stylized, geom), original)

    def touch_up(self, out: np.ndarray, original: np.ndarray) -> np.ndarray:
        """Colour preservation and strength, from the frame's own original. Temporal
        smoothing comes before this, so neither brings back an earlier frame's colours."""
        if self.preserve_color:
            out = pixels.keep_colour(out, original)
        if self.style.picture is None:
            out = pixels.blend(out, original, self.strength)
        return out

    def image(self, rgb: np.ndarray, size: tuple[int, int] | int | None = None) -> np.ndarray:
        """Stylize one RGB picture."""
        h, w = rgb.shape[:2]
        geom = geometry.plan(w, h, size)
        prepared = geometry.prepare(rgb, geom)
        return self.finish(self.run(prepared[None])[0], rgb, geom)


@dataclass(frozen=True, kw_only=True)
class StylizeSettings:
    """What turns frames into stylized frames, the same for transcode, live, serve and the cluster.

    Keyword-only, so the commands' configs extend it with their own fields
    (``TranscodeConfig(input, output, style=...)``).
    """

    style: str = "7"  # a built-in index, a mix (3:0.5,12:0.5) or a picture file
    strength: float = 1.0
    preserve_color: bool = False
    size: tuple[int, int] | int | None = None  # processing size; the output keeps the source size
    engine: str = "auto"
    threads: int = 0  # engine intra-op threads; 0 = the runtime's default
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 | int8 (vidstyle.engines.PRECISIONS)
    model: str = "auto"  # the network for built-in styles: auto | multistyle26 | student26
    internal_scale: float = 1.0  # the network runs at this x the processing size (guided upsampling back)
    temporal: str = temporal_mod.DEFAULT_MODE  # off | ema | flow
    temporal_strength: float = temporal_mod.DEFAULT_STRENGTH
    reuse: str | int = reuse.DEFAULT  # auto | off | N: keyframes from the content, none, or every N frames

    def stylizer(self, style: Style | None = None) -> Stylizer:
        """A Stylizer for ``style`` (default: this ``style``, parsed) with these settings' engine."""
        return Stylizer(style or styles.parse(self.style), strength=self.strength,
                        preserve_color=self.preserve_color, engine_name=self.engine, threads=self.threads,
                        precision=self.precision, model=self.model, internal_scale=self.internal_scale)

    def smoother(self) -> temporal_mod.Temporal:
        return temporal_mod.create(self.temporal, self.temporal_strength)

    def keyframes(self, asynchronous: bool = False) -> reuse.KeyframePolicy | None:
        """The keyframe policy of ``reuse`` (None: every frame through the network). Reuse
        carries the output along the flow, so it applies with flow smoothing only;
        ``asynchronous``: keyframes on their own thread (live video)."""
        mode = reuse.parse(self.reuse)
        if mode == "off" or self.temporal != "flow":
            return None
        return reuse.KeyframePolicy(every=mode if isinstance(mode, int) else None, asynchronous=asynchronous)
