"""Image generation: validate, route to an images-capable channel, fall back, book
usage. Transport-free, like the chat relay."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from server import call_record, routing, upstream_errors
from server.catalog import Catalog
from server.errors import GatewayError, invalid_request
from server.providers.registry import Registry
from server.store.tokens import Token
from server.store.usage import UsageRecord
from server.usage import UsageRecorder

FORMATS = ("url", "b64_json")
FILE_ID = re.compile(r"^img_[0-9a-f]{32}-[0-9a-f]{12}\.png$")


def validate_images(body: dict) -> None:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid_request("'prompt' is required.", param="prompt", code="missing_required_parameter")
    n = body.get("n")
    if n is not None and not (1 <= n <= 10):
        raise invalid_request("'n' must be between 1 and 10.", param="n", code="invalid_value")
    if body.get("response_format") not in (None, *FORMATS):
        raise invalid_request("'response_format' must be url or b64_json.", param="response_format",
                              code="invalid_value")


@dataclass
class ImageRelay:
    catalog: Catalog
    registry: Registry
    usage: UsageRecorder
    timeout: float = 300.0

    async def generate(self, token: Token, body: dict, timeout: float | None = None) -> dict:
        validate_images(body)
        model = body.get("model") or routing.default_model(self.catalog.snapshot, token,
                                                           self.registry.images_types, "image")
        channels = routing.candidates(self.catalog.snapshot, token, model, self.registry.images_types)
        budget = min(timeout, self.timeout) if timeout is not None else self.timeout
        error: GatewayError | None = None
        for channel in channels:
            upstream_model = channel.upstream_model(model)
            started = time.monotonic()
            status = 200
            try:
                return await self.registry.images[channel.type].generate(
                    channel, {**body, "model": upstream_model}, budget)
            except GatewayError as exc:
                exc = upstream_errors.for_client(exc, channel, body)
                status, error = exc.http_status, exc
                if not exc.retryable:
                    raise
            finally:
                call_record.note_attempt(channel.name, time.monotonic() - started)
                self.usage.record(UsageRecord(
                    ts=int(time.time()), token_id=token.id, channel_id=channel.id, model=model,
                    upstream_model=upstream_model, kind="images", stream=False, status=status,
                    latency_ms=int((time.monotonic() - started) * 1000)))
        raise error or GatewayError(503, "No channel could generate the image.", "no_available_channel")
