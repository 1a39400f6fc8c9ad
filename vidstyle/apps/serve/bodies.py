"""Request bodies read with a size limit and a declared type, or refused in one line.

The declared type matters beyond tidiness: a page on another site can send ``text/plain``,
a form, or no type at all without asking the browser's permission first (a CORS
preflight), but not ``application/json`` or a picture type, which this server requires.
"""
from __future__ import annotations

import json

from aiohttp import web

from vidstyle.apps.serve.answers import Refused

JSON_BYTES = 64 * 1024  # a browser's offer with every candidate is 3-10 KB
PICTURE_TYPES = ("image/", "application/octet-stream")


def _declared_type(request: web.Request) -> str | None:
    """The Content-Type the client sent (aiohttp reports octet-stream when there is none)."""
    return request.content_type if "Content-Type" in request.headers else None


async def read_limited(request: web.Request, limit: int, what: str) -> bytes:
    """The whole body, or 413 as soon as it passes ``limit`` bytes (stated length or not)."""
    too_big = Refused(413, f"{what} is larger than {_size(limit)}")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, expected: str) -> object:
    """The JSON body; ``expected`` describes it for the error message."""
    if _declared_type(request) != "application/json":
        raise Refused(403, f"expected Content-Type: application/json, got {_declared_type(request) or 'none'}")
    data = await read_limited(request, JSON_BYTES, "the request")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise Refused(400, f"expected JSON {expected}") from None


def check_picture_type(request: web.Request) -> None:
    """An uploaded picture (the body is the file) must say it is one."""
    declared = _declared_type(request)
    if declared is None or not declared.startswith(PICTURE_TYPES):
        raise Refused(403, f"expected the picture with Content-Type image/… or application/octet-stream, "
                           f"got {declared or 'none'}")


def _size(limit: int) -> str:
    return f"{limit // 2**20} MB" if limit >= 2**20 and limit % 2**20 == 0 else f"{limit // 1024} KB"
