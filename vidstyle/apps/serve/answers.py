"""How the server says no: a :class:`Refused` raised anywhere in a route becomes a JSON
``{"error": message}`` with its status, which the page shows as it is."""
from __future__ import annotations

from aiohttp import web


class Refused(Exception):
    """A request the server will not carry out, and the one line that says why."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except Refused as refused:
        return error(refused.status, refused.message, refused.headers)
