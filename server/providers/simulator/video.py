"""The simulator's video tasks: real MP4s drawn from the prompt, with progress that
advances over a configurable render time. It keeps no state: the task id carries
what the task needs, so tasks survive restarts like a remote provider's would."""
from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import AsyncIterator

import orjson

from server.errors import GatewayError, invalid_request
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.simulator import media
from server.store.channels import Channel

RENDER_SECONDS_ENV = "ST_AI_SIMULATOR_VIDEO_SECONDS"
DEFAULT_RENDER_SECONDS = 8.0
LIMITS = {"duration": (1.0, 20.0), "width": (64, 1920), "height": (64, 1920), "fps": (1, 60)}
DEFAULTS = {"duration": 4.0, "width": 1280, "height": 720, "fps": 24}
METADATA_KEYS = {"negative_prompt", "style"}
CHUNK = 256 * 1024


def render_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(RENDER_SECONDS_ENV, DEFAULT_RENDER_SECONDS)))
    except ValueError:
        return DEFAULT_RENDER_SECONDS


def _clamp(key: str, value: float | None) -> float:
    low, high = LIMITS[key]
    return min(high, max(low, value if value is not None else DEFAULTS[key]))


def _encode(job: dict) -> str:
    return "sim_" + base64.urlsafe_b64encode(orjson.dumps(job)).decode().rstrip("=")


def _decode(task_id: str) -> dict:
    if not task_id.startswith("sim_"):
        raise GatewayError(404, "Unknown simulator task.", "not_found")
    raw = task_id[4:]
    return orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


class SimulatorVideo:
    def __init__(self, upstream: Upstream) -> None:
        pass

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        unknown = set(request.metadata) - METADATA_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise invalid_request(f"The simulator does not know the metadata key '{key}'; it knows "
                                  f"{', '.join(sorted(METADATA_KEYS))}.", param=f"metadata.{key}")
        width, height = media.even_size(int(_clamp("width", request.width)), int(_clamp("height", request.height)))
        asked = {"duration": float(round(_clamp("duration", request.duration))), "width": width,
                 "height": height, "fps": int(_clamp("fps", request.fps))}
        prompt = request.prompt
        if request.image or request.image_bytes:
            prompt += " (from an image)"
        return Prepared(body={"prompt": prompt, **asked}, asked=asked)

    async def submit(self, channel: Channel, prepared: Prepared) -> str:
        return _encode({**prepared.body, "at": time.time(), "render": render_seconds()})

    async def remix(self, channel: Channel, task_id: str, prompt: str) -> str:
        job = _decode(task_id)
        return _encode({**job, "prompt": f"{job['prompt']} / remix: {prompt}", "at": time.time()})

    async def poll(self, channel: Channel, task_id: str) -> TaskState:
        job = _decode(task_id)
        elapsed = time.time() - job["at"]
        render = job["render"]
        if elapsed >= render:
            return TaskState("completed", 100, updated_at=int(job["at"] + render))
        if elapsed < render * 0.1:
            return TaskState("queued", 0, updated_at=int(job["at"]))
        return TaskState("in_progress", int(100 * elapsed / render), updated_at=int(time.time()))

    async def download(self, channel: Channel, task_id: str, state: TaskState, variant: str) -> AsyncIterator[bytes]:
        if variant != "video":
            raise GatewayError(404, "The simulator gives no thumbnail; st-ai extracts one.", "thumbnail_unavailable")
        job = _decode(task_id)
        folder = os.environ.get("TMPDIR", "/tmp")
        path = os.path.join(folder, f"st-ai-sim-{os.getpid()}-{time.monotonic_ns()}.mp4")
        try:
            await asyncio.to_thread(media.write_mp4, path, job["prompt"], job["duration"], job["width"],
                                    job["height"], job["fps"])
            with open(path, "rb") as f:
                while chunk := await asyncio.to_thread(f.read, CHUNK):
                    yield chunk
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
