"""Style pictures uploaded to the page: size read from the header, then decoded within it.

A PNG of 100 KB can declare 30000x30000 pixels; decoding it takes gigabytes and a minute.
So the header's declared size is read first, by the few lines below rather than by a
decoder, and a picture beyond the pixel limit is refused before any decoding. What is
decoded is at most that limit (JPEG even less: libjpeg scales by 1/2, 1/4 or 1/8 while
decoding), and a big picture is brought down once to :data:`KEEP_SIDE`, since the style
predictor reads only a 256-pixel square of it. The result is saved as a PNG for the
stylizer to read, so no uploaded bytes reach a decoder a second time.
"""
from __future__ import annotations

import os
import re
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidstyle.apps.serve.answers import Refused

FORMATS = "PNG, JPEG, WebP, BMP or TIFF"
KEEP_SIDE = 2048  # longer side kept of a big picture; the predictor reads a 256-pixel square
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def declared_size(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) as the file's header declares them; None for anything else."""
    try:
        for reader in (_png, _jpeg, _webp, _bmp, _tiff):
            found = reader(data)
            if found is not None:
                return found
    except (struct.error, IndexError, ValueError):  # a header cut short or inconsistent
        return None
    return None


def _png(data: bytes):
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "PNG", width, height
    return None


def _jpeg(data: bytes):
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return "JPEG", width, height
        if marker in (0xD9, 0xDA) or length < 2:  # image end or scan data before any frame header
            return None
        at += 2 + length
    return None


def _webp(data: bytes):
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return "WebP", width, height
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return "WebP", width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return "WebP", 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _bmp(data: bytes):
    if data[:2] != b"BM":
        return None
    (header,) = struct.unpack("<I", data[14:18])
    if header == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return "BMP", abs(width), abs(height)  # a negative height is a top-down picture


def _tiff(data: bytes):
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        return None
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    size = {}
    for entry in range(count):
        at = ifd + 2 + 12 * entry
        tag, kind = struct.unpack(order + "HH", data[at:at + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            size[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), data[at + 8:at + (10 if kind == 3 else 12)])[0]
    if 256 not in size or 257 not in size:
        return None
    return "TIFF", size[256], size[257]


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """The picture as RGB uint8, its longer side at most :data:`KEEP_SIDE`; :class:`Refused`
    (413 beyond ``max_pixels``, 400 otherwise) for anything else."""
    if not data:
        raise Refused(400, "no picture: send the file as the request body")
    found = declared_size(data)
    if found is None:
        raise Refused(400, f"not a picture the server can read ({FORMATS})")
    kind, width, height = found
    if width == 0 or height == 0:
        raise Refused(400, f"the {kind} declares an empty picture ({width}x{height})")
    if width * height > max_pixels:
        raise Refused(413, f"the {kind} declares {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
                           f"the server takes pictures up to {max_pixels / 1e6:.0f} MP")
    flags = cv2.IMREAD_COLOR
    if kind == "JPEG":  # libjpeg scales while decoding: the full size is never allocated
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if max(width, height) // factor >= KEEP_SIDE:
                flags = reduced
                break
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise Refused(400, f"cannot decode the {kind}: {_first_line(exc)}") from None
    if image is None:
        raise Refused(400, f"cannot decode the {kind} (damaged, or a kind of {kind} OpenCV does not read)")
    if image.shape[0] * image.shape[1] > max_pixels:  # the decoder read another size than the header
        raise Refused(400, f"the {kind}'s header and its pixels disagree on its size")
    longer = max(image.shape[:2])
    if longer > KEEP_SIDE:
        scale = KEEP_SIDE / longer
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def store(data: bytes, max_pixels: int) -> Path:
    """The uploaded picture, checked and decoded as :func:`decode` does, in a temporary PNG
    file that the caller removes."""
    return save(decode(data, max_pixels))


def save(image: np.ndarray) -> Path:
    """An RGB picture in a temporary PNG file; the caller removes it."""
    ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise Refused(400, "cannot keep the picture (PNG encoding failed)")
    fd, name = tempfile.mkstemp(prefix="vidstyle-style-", suffix=".png")
    with os.fdopen(fd, "wb") as f:
        f.write(png.tobytes())
    return Path(name)


def _first_line(exc: Exception) -> str:
    """OpenCV's words without its version, source path and error code."""
    text = " ".join(str(exc).split())
    match = re.search(r"error: \([^)]*\) (.*)", text)
    return (match[1] if match else text or type(exc).__name__)[:200]
