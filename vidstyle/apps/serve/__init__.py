"""``vidstyle live --serve``: the aiohttp/aiortc server (server), one pipeline per browser
(viewer), and the page it serves (web/)."""
