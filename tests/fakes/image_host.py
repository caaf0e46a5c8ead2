"""A client's image server on 127.0.0.1, for providers whose client image URLs st-ai
fetches itself (Gemini chat, Veo): by name ending, `.png` is the image with its type,
`.bin` the image from a server that does not say what it serves, `.mp4` a few MP4 bytes,
anything else an HTML page. It records the headers of every request it served."""
from __future__ import annotations

from aiohttp import web

from tests.fakes.threaded_server import ThreadedServer

MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64


class ImageHost:
    def __init__(self, png: bytes) -> None:
        self.png = png
        self.received: list[dict] = []
        self._server = ThreadedServer(self._app)
        self.port = 0

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.Response:
        self.received.append(dict(request.headers))
        name = request.match_info["name"]
        if name.endswith(".png"):
            return web.Response(body=self.png, content_type="image/png")
        if name.endswith(".bin"):
            return web.Response(body=self.png, content_type="application/octet-stream")
        if name.endswith(".mp4"):
            return web.Response(body=MP4, content_type="video/mp4")
        return web.Response(text="<html>not an image</html>", content_type="text/html")

    def start(self) -> "ImageHost":
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()
