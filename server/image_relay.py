"""Image generation: validate, route to an images-capable channel, fall back, settle
the request. Transport-free, like the chat relay."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from server import routing
from server.billing.admission import Admission, Outcome, Ticket, failure_status
from server.billing.cost import image_cost
from server.billing.prices import PriceError, parse_size
from server.catalog import Catalog
from server.core.attempts import AttemptLoop
from server.errors import invalid_request
from server.providers.registry import Registry
from server.store.channels import Channel
from server.store.tokens import Token

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


def _asked(body: dict) -> int:
    n = body.get("n")
    if isinstance(n, float) and n.is_integer():  # gRPC Structs carry numbers as doubles
        n = int(n)
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


def _priced_size(size: object) -> str | None:
    """A size the price table can name; anything else is priced as the dearest size (the
    upstream, not st-ai, tells the client what it accepts)."""
    if not isinstance(size, str):
        return None
    try:
        parse_size(size.strip().lower())
    except PriceError:
        return None
    return size


@dataclass
class ImageRelay:
    catalog: Catalog
    registry: Registry
    admission: Admission
    attempts: AttemptLoop = field(default_factory=AttemptLoop)

    async def generate(self, token: Token, body: dict, timeout: float | None = None) -> dict:
        async with self.admission.request(token, "images", body.get("model")) as ticket:
            return await self._generate(ticket, body, timeout)

    async def _generate(self, ticket: Ticket, body: dict, timeout: float | None) -> dict:
        token = ticket.token
        validate_images(body)
        model = body.get("model") or routing.default_model(self.catalog.snapshot, token,
                                                           self.registry.images_types, "image")
        channels = routing.candidates(self.catalog.snapshot, token, model, self.registry.images_types)
        deadline = self.attempts.deadline(timeout)
        size, quality = _priced_size(body.get("size")), body.get("quality")
        quality = quality if isinstance(quality, str) else None

        def charge(images: int):
            return lambda price: image_cost(price, model, n=images, size=size, quality=quality)

        await self.admission.admit(ticket, model, charge(_asked(body)))
        try:
            answer, channel = await self._generate_on(channels, ticket, model, body, deadline)
        except BaseException as exc:
            self.admission.abandon(ticket, *failure_status(exc))
            raise
        images = len(answer.get("data") or ()) if isinstance(answer, dict) else 0
        await self.admission.settle(ticket, Outcome(200, channel.id, channel.upstream_model(model), images=images),
                                    charge(images))
        return answer

    async def _generate_on(self, channels: list[Channel], ticket: Ticket, model: str, body: dict,
                           deadline: float) -> tuple[dict, Channel]:
        provider = self.registry.images

        def call(channel: Channel, budget: float):
            return provider[channel.type].generate(channel, {**body, "model": channel.upstream_model(model)}, budget)
        won = await self.attempts.first(ticket, channels, model, call, deadline, request=body)
        return won.value, won.channel
