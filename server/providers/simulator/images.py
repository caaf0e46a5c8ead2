"""The simulator's images: real PNGs drawn from the prompt, returned inline
(b64_json) or stored and served by st-ai (url)."""
from __future__ import annotations

import asyncio
import base64
import secrets
import time

from server.errors import invalid_request
from server.providers.interface import Upstream
from server.providers.simulator import media
from server.store.channels import Channel

DEFAULT_SIZE = (1024, 1024)
MAX_SIDE = 2048


def _size(text: str | None) -> tuple[int, int]:
    if not text or text == "auto":
        return DEFAULT_SIZE
    width, sep, height = text.lower().partition("x")
    if not sep or not (width + height).isascii() or not width.isdigit() or not height.isdigit() or not (
            16 <= int(width) <= MAX_SIDE and 16 <= int(height) <= MAX_SIDE):
        raise invalid_request(f"'size' must be WIDTHxHEIGHT with sides from 16 to {MAX_SIDE}.", param="size")
    return int(width), int(height)


class SimulatorImages:
    def __init__(self, upstream: Upstream) -> None:
        self._assets = upstream.assets
        self._public_url = upstream.public_url.rstrip("/")

    async def generate(self, channel: Channel, body: dict, timeout: float | None) -> dict:
        width, height = _size(body.get("size"))
        prompt = body["prompt"]
        data = []
        for i in range(body.get("n") or 1):
            png = await asyncio.to_thread(media.draw_png, prompt if i == 0 else f"{prompt} #{i + 1}", width, height)
            item: dict = {"revised_prompt": f"{prompt} (drawn by the st-ai simulator)"}
            if body.get("response_format") == "b64_json" or self._assets is None:
                item["b64_json"] = base64.b64encode(png).decode()
            else:
                stored = await self._assets.save_bytes("images", "img_" + secrets.token_hex(16), ".png", png)
                item["url"] = f"{self._public_url}/v1/images/files/{stored.path.rsplit('/', 1)[-1]}"
            data.append(item)
        return {"created": int(time.time()), "data": data, "size": f"{width}x{height}", "output_format": "png"}

