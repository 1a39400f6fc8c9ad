"""Only the page's own origin may drive the server.

A page on another site can make the visitor's browser send a "simple" POST (a form's or
``text/plain`` body, no preflight) to ``http://127.0.0.1:8080``; a site whose name it
re-points at 127.0.0.1 (DNS rebinding) can even read the answers, because to the browser
it is then that site's own origin. So, before any route runs:

- the ``Host`` header must name this server: an IP address, ``localhost``, this machine's
  own name, or the host of the public URL a proxy serves it under; a rebinding site's
  name is none of these;
- a request that changes something (POST) must come from the page itself: its ``Origin``,
  when a browser sent one, is ``http://`` + that Host or the public URL's origin, and its
  ``Sec-Fetch-Site``, when sent, is ``same-origin``. Clients that are not browsers (curl,
  scripts, the tests) send neither header and are let through: they could not be made to
  act by a page anyway.

The routes themselves insist on ``application/json`` (or a picture type) as the body's
type, which no cross-site simple request can carry.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from aiohttp import web

from vidstyle.apps.serve.answers import Refused


def _split_host(host: str) -> tuple[str, str]:
    """``name[:port]`` or ``[v6]:port`` -> (lower-case name without brackets, port text)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, ""
        return host[1:end], host[end + 2:] if host[end + 1:end + 2] == ":" else ""
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, ""


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class SameOrigin:
    """The hosts and origins of this server. ``public_url`` (``https://studio.example.com``)
    is the address a proxy serves the page under, or None."""

    def __init__(self, public_url: str | None = None, names: Iterable[str] | None = None):
        own = socket.gethostname().lower()
        self.names = {"localhost", own, f"{own}.local", *(n.lower() for n in names or ())}
        self.origins: set[str] = set()
        if public_url:  # checked by Limits
            parts = urlsplit(public_url)
            self.names.add(parts.hostname.lower())
            self.origins.add(f"{parts.scheme}://{parts.netloc.lower()}")

    def host_allowed(self, host: str | None) -> bool:
        if host is None:  # HTTP/1.0 without Host: not a browser, which always names the host
            return True
        name, _ = _split_host(host)
        return _is_address(name) or name in self.names

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        origin = origin.strip().lower()
        return origin in self.origins or (host is not None and origin == f"http://{host.strip().lower()}")

    def check(self, request: web.BaseRequest) -> None:
        """Raise :class:`Refused` (403) unless the request is this server's own page's."""
        host = request.headers.get("Host")
        if not self.host_allowed(host):
            raise Refused(403, f"this server does not answer for {host!r}; open it by its address "
                               "(or start it with --public-url for the name a proxy gives it)")
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, host):
            raise Refused(403, f"requests from {origin} are refused: only the page this server serves may use it")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site.lower() != "same-origin":
            raise Refused(403, f"a {site} request is refused: only the page this server serves may use it")

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        self.check(request)
        return await handler(request)
