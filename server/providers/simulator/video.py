"""The simulator's video tasks: real MP4s drawn from the prompt, with progress that
advances over a configurable render time. It keeps no state: the task id carries
what the task needs, so tasks survive restarts like a remote provider's would."""
from __future__ import annotations

import asyncio
import base64
import os
import re
import time
from typing import AsyncIterator

import orjson

from server.errors import GatewayError, invalid_request
from server.providers.interface import Prepared, TaskState, Upstream, VideoRequest
from server.providers.simulator import media
from server.providers.video_shape import (ASPECT_RATIO, FIRST_FRAME, INPUT_LAST_FRAME, LAST_FRAME, NEGATIVE_PROMPT,
                                          REFERENCE, REFERENCE_IMAGES, RESOLUTION, RESOLUTION_HEIGHTS, TEXT,
                                          VideoCapabilities, nearest_aspect_ratio, nearest_duration, nearest_fps,
                                          nearest_resolution, nearest_size, split_metadata)
from server.store.channels import Channel

RENDER_SECONDS_ENV = "ST_AI_SIMULATOR_VIDEO_SECONDS"
DEFAULT_RENDER_SECONDS = 8.0
DEFAULT_FPS = 24
# It draws any size and frame rate within bounds, whole seconds from 1 to 20, from any of
# the inputs; the neutral keys it can honour shape the picture (the images only mark it).
CAPABILITIES = VideoCapabilities(
    durations=tuple(float(d) for d in range(1, 21)), aspect_ratios=("16:9", "9:16", "1:1", "4:3", "3:4", "21:9"),
    resolutions=("360p", "480p", "720p", "1080p"), side_range=(64, 1920), fps_range=(1, 60),
    inputs=(TEXT, FIRST_FRAME, INPUT_LAST_FRAME, REFERENCE),
    neutral=frozenset({NEGATIVE_PROMPT, LAST_FRAME, REFERENCE_IMAGES, ASPECT_RATIO, RESOLUTION}),
    own=frozenset({"style"}), default_duration=4.0, default_size=(1280, 720))
# The simulator serves any name for chat, images and videos alike; it lists capabilities
# for names of video model families (a word of the name starts with one) and "video".
VIDEO_FAMILIES = ("sora", "kling", "runway", "gen3", "gen4", "veo", "seedance", "wan", "hailuo", "minimax",
                  "video", "t2v", "i2v", "vidu", "pixverse", "hunyuanvideo")
CHUNK = 256 * 1024


def render_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get(RENDER_SECONDS_ENV, DEFAULT_RENDER_SECONDS)))
    except ValueError:
        return DEFAULT_RENDER_SECONDS


def is_video_model(model: str) -> bool:
    return any(word.startswith(VIDEO_FAMILIES) for word in re.split(r"[^a-z0-9]+", model.lower()))


def _size(request: VideoRequest, neutral: dict) -> tuple[int, int]:
    """The asked size; a neutral aspect ratio or resolution reshapes it around its short side."""
    ratio, resolution = neutral.get(ASPECT_RATIO), neutral.get(RESOLUTION)
    if ratio is None and resolution is None:
        return nearest_size(CAPABILITIES, request.width, request.height)
    for key, value in ((ASPECT_RATIO, ratio), (RESOLUTION, resolution)):
        if value is not None and not isinstance(value, str):
            raise invalid_request(f"metadata.{key} must be a string.", f"metadata.{key}")
    width, height = nearest_size(CAPABILITIES, request.width, request.height)
    shape = width / height
    if ratio is not None:
        w, _, h = nearest_aspect_ratio(CAPABILITIES, width, height, ratio).partition(":")
        shape = int(w) / int(h)
    short = min(width, height)
    if resolution is not None:
        short = RESOLUTION_HEIGHTS[nearest_resolution(CAPABILITIES, width, height, resolution).lower()]
    long = round(short * max(shape, 1 / shape))
    return nearest_size(CAPABILITIES, *((long, short) if shape >= 1 else (short, long)))


def _images(neutral: dict) -> bool:
    """Checks the image-valued neutral keys; True when there are any."""
    last, references = neutral.get(LAST_FRAME), neutral.get(REFERENCE_IMAGES)
    if last is not None and (not isinstance(last, str) or not last.strip()):
        raise invalid_request("metadata.last_frame is an image URL or base64.", f"metadata.{LAST_FRAME}")
    if references is not None and not (isinstance(references, list) and references
                                       and all(isinstance(r, str) and r.strip() for r in references)):
        raise invalid_request("metadata.reference_images is a list of image URLs or base64.",
                              f"metadata.{REFERENCE_IMAGES}")
    return last is not None or references is not None


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

    def capabilities(self, model: str) -> VideoCapabilities | None:
        return CAPABILITIES if is_video_model(model) else None

    def prepare(self, channel: Channel, request: VideoRequest) -> Prepared:
        neutral = split_metadata(CAPABILITIES, request.metadata, "simulator").neutral
        width, height = media.even_size(*_size(request, neutral))
        asked = {"duration": float(nearest_duration(CAPABILITIES, request.duration)), "width": width,
                 "height": height, "fps": nearest_fps(CAPABILITIES, request.fps) or DEFAULT_FPS}
        prompt = request.prompt
        if _images(neutral) or request.image or request.image_bytes:
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
