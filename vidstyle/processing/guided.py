"""Edge-aware upsampling for ``--internal-scale``: a low-resolution stylized image brought
back to full size, guided by the full-resolution frame (fast guided filter, He & Sun 2015).

``upsample(low, guide)`` returns ``low`` at ``guide``'s size (uint8 RGB). A linear model
of the guide is fitted per window at low resolution and applied at full resolution, so
the guide's edges come back where the stylization follows them. Guides: ``"gray"``
(default) or ``"color"``. With ``residual`` (default) the result is the plain bilinear
upsampling plus the guide's detail, so nothing a plain resize keeps is smoothed away.
``plain`` is that bilinear resize. How the filter works: docs/design-notes.md.
"""
from __future__ import annotations

import cv2
import numpy as np

RADIUS = 1  # box radius where the model is fitted
SUBSAMPLE = 2  # the model is fitted at the low resolution / this
EPS = 1e-3  # regularisation, on [0, 1] intensities (variance units)
GUIDES = ("gray", "color")


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def _up(x: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR)


def _gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def upsample(low: np.ndarray, guide: np.ndarray, radius: int = RADIUS, eps: float = EPS,
             guide_mode: str = "gray", residual: bool = True, subsample: int = SUBSAMPLE) -> np.ndarray:
    """``low`` (h x w x 3 uint8, stylized) -> ``guide``'s size (H x W x 3 uint8), guided by ``guide``.

    The linear model is fitted at ``low``'s size / ``subsample`` (the "fast" in the fast
    guided filter; not below 32 px a side), with box radius ``radius`` there."""
    if guide_mode not in GUIDES:
        raise ValueError(f"guide must be one of {', '.join(GUIDES)}, not {guide_mode!r}")
    H, W = guide.shape[:2]
    h, w = low.shape[:2]
    if (h, w) == (H, W):
        return np.ascontiguousarray(low)
    g_small = cv2.resize(guide, (w, h), interpolation=cv2.INTER_AREA)
    s = subsample if min(h, w) // max(subsample, 1) >= 32 else 1
    fw, fh = max(1, w // s), max(1, h // s)
    p_fit = low if s == 1 else cv2.resize(low, (fw, fh), interpolation=cv2.INTER_AREA)
    g_fit = g_small if s == 1 else cv2.resize(g_small, (fw, fh), interpolation=cv2.INTER_AREA)
    p = p_fit.astype(np.float32) * (1 / 255)
    if guide_mode == "gray":
        g_lo, g_hi = _gray(g_small), _gray(guide)
        I = _gray(g_fit).astype(np.float32) * (1 / 255)
        mI = _box(I, radius)
        mp = _box(p, radius)
        var = _box(I * I, radius) - mI * mI
        cov = _box(p * I[..., None], radius) - mp * mI[..., None]
        a = cov / (var + eps)[..., None]
        A = _box(a, radius)
        if residual:
            # A·I_hi + up(p - A·I_lo) ≈ up(p) + up(A)·(I_hi - up(I_lo)): the plain resize plus
            # the guide's detail. In fixed point (A in 1/256 steps): 3x faster than float here.
            base = cv2.resize(low, (W, H), interpolation=cv2.INTER_LINEAR)
            detail = cv2.subtract(g_hi, _up(g_lo, W, H), dtype=cv2.CV_16S)
            gain = _up(np.clip(A * 256, -32767, 32767).astype(np.int16), W, H)
            d3 = cv2.multiply(gain, cv2.merge([detail, detail, detail]), scale=1 / 256, dtype=cv2.CV_16S)
            return cv2.add(base, d3, dtype=cv2.CV_8U)
        B = _box(mp - a * mI[..., None], radius)
        I_hi = g_hi.astype(np.float32) * (1 / 255)
        out = _up(A, W, H) * I_hi[..., None] + _up(B, W, H)
        return _to_uint8(out)
    else:
        I_lo = g_fit.astype(np.float32) * (1 / 255)
        h, w = fh, fw
        I_hi = guide.astype(np.float32) * (1 / 255)
        mI = _box(I_lo, radius)  # h, w, 3
        mp = _box(p, radius)  # h, w, 3
        # Covariance of the guide (symmetric 3x3) and guide x output (3x3), per pixel.
        II = np.stack([I_lo[..., i] * I_lo[..., j] for i, j in _PAIRS], axis=-1)
        sigma = _box(II, radius) - np.stack([mI[..., i] * mI[..., j] for i, j in _PAIRS], axis=-1)
        sigma[..., [0, 3, 5]] += eps  # rr, gg, bb
        cov = np.empty((h, w, 3, 3), np.float32)  # [channel of p, channel of I]
        for c in range(3):
            cov[..., c, :] = _box(p[..., c : c + 1] * I_lo, radius) - mp[..., c : c + 1] * mI
        inv = _inverse3(sigma)  # h, w, 3, 3
        a = np.einsum("hwck,hwkl->hwcl", cov, inv, optimize=True)  # p channel c on I channel l
        b = mp - np.einsum("hwcl,hwl->hwc", a, mI, optimize=True)
        A = _box(a.reshape(h, w, 9), radius)
        A_hi = _up(A, W, H).reshape(H, W, 3, 3)
        if residual:  # as for gray: the plain resize plus the guide's detail, per colour
            detail = I_hi - _up(g_small.astype(np.float32) * (1 / 255), W, H)
            out = _up(low, W, H).astype(np.float32) * (1 / 255) + np.einsum("hwcl,hwl->hwc", A_hi, detail, optimize=True)
        else:
            out = np.einsum("hwcl,hwl->hwc", A_hi, I_hi, optimize=True) + _up(_box(b, radius), W, H)
    return _to_uint8(out)


def _to_uint8(out: np.ndarray) -> np.ndarray:
    """[0, 1] float32 -> uint8, rounded and saturated (OpenCV: ~10x numpy's clip + astype)."""
    return cv2.convertScaleAbs(cv2.max(out, 0.0), alpha=255.0)


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def _inverse3(s: np.ndarray) -> np.ndarray:
    """Per-pixel inverse of symmetric 3x3 matrices stored as (rr, rg, rb, gg, gb, bb)."""
    rr, rg, rb, gg, gb, bb = (s[..., i] for i in range(6))
    c00 = gg * bb - gb * gb
    c01 = rb * gb - rg * bb
    c02 = rg * gb - rb * gg
    c11 = rr * bb - rb * rb
    c12 = rg * rb - rr * gb
    c22 = rr * gg - rg * rg
    det = rr * c00 + rg * c01 + rb * c02
    inv = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22], axis=-1) / det[..., None]
    return inv.reshape(*s.shape[:-1], 3, 3)


def plain(low: np.ndarray, width: int, height: int) -> np.ndarray:
    """The plain bilinear resize guided upsampling is compared with."""
    if low.shape[:2] == (height, width):
        return np.ascontiguousarray(low)
    return cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR)
