"""One line in the server's log for each problem a client causes.

aiohttp logs every malformed request (a bad request line, a broken header) with a full
traceback, so anyone who can reach the port can fill the log; asyncio prints a traceback
for any task whose exception nobody retrieved. Both become one warning line here; a
failure inside a route (a bug, not a client) keeps its traceback.
"""
from __future__ import annotations

import asyncio
import logging
import sys

from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("vidstyle.serve")


def one_line(text: object, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class RequestErrors(logging.LoggerAdapter):
    """The logger aiohttp's request handler is given."""

    def __init__(self):
        super().__init__(log.getChild("http"), {})

    def exception(self, msg, *args, exc_info=True, **kwargs):
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            # aiohttp's words: "Error handling request from %s"; its message points at the
            # offending byte with a caret on a line of its own.
            where = msg.replace("Error handling request", "bad request", 1)
            words = [line for line in str(exc.message or exc).splitlines() if line.strip(" ^")]
            self.warning(where + ": %s", *args, one_line(" ".join(words)), **kwargs)
        else:
            self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """For ``loop.set_exception_handler``: one warning line (the traceback at debug level)."""
    exc = context.get("exception")
    detail = f": {type(exc).__name__}: {one_line(exc)}" if exc is not None else ""
    log.warning("%s%s", one_line(context.get("message", "unexpected error in the event loop")), detail)
    if exc is not None:
        log.debug("traceback", exc_info=exc)
