"""Style pictures uploaded to the --serve page: the declared size is read from the header and
checked before anything is decoded; what is decoded stays within the limit.

Every file is made here: real encodes of a small picture by OpenCV (so the header readers
are checked against what encoders write), and crafted headers that declare sizes no upload
should make the server allocate.
"""
from __future__ import annotations

import functools
import struct
import zlib

import cv2
import numpy as np
import pytest

from vidstyle.apps.serve import pictures
from vidstyle.apps.serve.answers import Refused

LIMIT = 40_000_000


def encoded(ext: str, width: int = 37, height: int = 23, params=(), flat: bool = False) -> bytes:
    """A picture encoded by OpenCV: gradients, or one grey (quick to encode when big)."""
    if flat:
        image = np.full((height, width, 3), 128, np.uint8)
    else:
        y, x = np.mgrid[0:height, 0:width]
        image = np.dstack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                           (x + y) % 256]).astype(np.uint8)
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=4)
def png_declaring(width: int, height: int, rows: bool = True) -> bytes:
    """A 1-bit grey PNG of ``width`` x ``height`` black pixels: with ``rows``, a complete,
    valid file (30000x30000 compresses to about 110 KB), else the header alone."""
    packer = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush() if rows else b""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is rewritten to declare another size."""
    data = bytearray(encoded(".jpg"))
    at = data.index(b"\xff\xc0")
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def webp_declaring(width: int, height: int) -> bytes:
    """An extended-format (VP8X) WebP header: the canvas size, and nothing to decode."""
    payload = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bmp_declaring(width: int, height: int) -> bytes:
    data = bytearray(encoded(".bmp"))
    data[18:26] = struct.pack("<ii", width, -height)  # negative: stored top-down
    return bytes(data)


def tiff_declaring(width: int, height: int) -> bytes:
    """Little-endian TIFF header and a first directory holding only the two size tags."""
    entries = struct.pack("<HHII", 256, 4, 1, width) + struct.pack("<HHII", 257, 4, 1, height)
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + struct.pack("<I", 0)


@pytest.mark.parametrize("ext, params, kind", [
    (".png", (), "PNG"),
    (".jpg", (), "JPEG"),
    (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "JPEG"),  # SOF2, after the Huffman tables
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "WebP"),  # lossy: VP8
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "WebP"),  # lossless: VP8L
    (".bmp", (), "BMP"),
    (".tiff", (), "TIFF"),
])
def test_the_header_readers_agree_with_real_encoders(ext, params, kind):
    data = encoded(ext, 37, 23, params)
    assert pictures.declared_size(data) == (kind, 37, 23)
    image = pictures.decode(data, LIMIT)
    assert image.shape == (23, 37, 3) and image.dtype == np.uint8


@pytest.mark.parametrize("make, kind", [
    (lambda: png_declaring(30000, 30000), "PNG"),  # a complete 110 KB file that decodes to 900 MP
    (lambda: png_declaring(40000, 40000, rows=False), "PNG"),  # beyond OpenCV's own limit, which raised
    (lambda: jpeg_declaring(20000, 20000), "JPEG"),
    (lambda: webp_declaring(16384, 16384), "WebP"),
    (lambda: bmp_declaring(100000, 1000), "BMP"),
    (lambda: tiff_declaring(10000, 10000), "TIFF"),
], ids=["png-bomb", "png-40000", "jpeg", "webp", "bmp", "tiff"])
def test_a_picture_declaring_too_many_pixels_is_refused_before_decoding(make, kind, monkeypatch):
    def no_decoding(*args):
        raise AssertionError("the picture was handed to the decoder")

    data = make()
    monkeypatch.setattr(pictures.cv2, "imdecode", no_decoding)
    with pytest.raises(Refused) as refused:
        pictures.decode(data, LIMIT)
    assert refused.value.status == 413
    assert refused.value.message.startswith(f"the {kind} declares ") and "up to 40 MP" in refused.value.message


def test_the_bomb_from_the_wild_is_refused_with_its_size():
    with pytest.raises(Refused, match=r"^the PNG declares 30000x30000 pixels \(900 MP\); "
                                      r"the server takes pictures up to 40 MP$"):
        pictures.decode(png_declaring(30000, 30000), LIMIT)


@pytest.mark.parametrize("data, message", [
    (b"not a picture at all", "not a picture the server can read"),
    (b"", "no picture: send the file as the request body"),
    (b"\x89PNG\r\n\x1a\n", "not a picture the server can read"),  # the signature alone
    (b"\xff\xd8\xff\xe0\x00", "not a picture the server can read"),  # a JPEG cut inside its first segment
    (b"GIF89a\x01\x00\x01\x00", "not a picture the server can read"),  # not one of the formats taken
    (png_declaring(0, 10, rows=False), "the PNG declares an empty picture (0x10)"),
    (png_declaring(64, 64, rows=False), "cannot decode the PNG"),  # a header without pixels
])
def test_what_is_not_a_readable_picture_is_a_400(data, message):
    with pytest.raises(Refused) as refused:
        pictures.decode(data, LIMIT)
    assert refused.value.status == 400 and refused.value.message.startswith(message), refused.value.message


def test_an_opencv_error_is_a_400_in_opencvs_words():
    """With the server's limit lifted, OpenCV's own refusal (a C++ exception) is still a 400."""
    with pytest.raises(Refused) as refused:
        pictures.decode(png_declaring(40000, 40000, rows=False), max_pixels=10**10)
    assert refused.value.status == 400
    assert refused.value.message == "cannot decode the PNG: pixels <= CV_IO_MAX_IMAGE_PIXELS in function " \
                                    "'validateInputImageSize'"


def test_a_big_picture_is_brought_down_once(monkeypatch):
    flags = []
    decode = cv2.imdecode
    monkeypatch.setattr(pictures.cv2, "imdecode", lambda data, flag: flags.append(flag) or decode(data, flag))
    jpeg = encoded(".jpg", 4608, 2304, flat=True)
    image = pictures.decode(jpeg, LIMIT)
    assert image.shape == (1024, 2048, 3)
    assert flags == [cv2.IMREAD_REDUCED_COLOR_2]  # libjpeg decoded at half size: 2304x1152, never 4608x2304

    png = encoded(".png", 3000, 1500, flat=True)
    assert pictures.decode(png, LIMIT).shape == (1024, 2048, 3)


def test_a_kept_picture_is_the_decoded_pixels_in_a_png(tmp_path):
    data = encoded(".png", 40, 30)
    path = pictures.store(data, LIMIT)
    try:
        kept = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(kept, pictures.decode(data, LIMIT))
    finally:
        path.unlink()
