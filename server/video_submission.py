"""What a new video task is sent upstream as, channel by channel, before its create answers.

A create (or a remix) goes through the one attempt loop (server/core/attempts.py): each
candidate channel is an `Offer` — what that channel's provider would be sent, what it
would really ask (seconds, size: what the task is billed by) and the call that sends it.
The offers are decided before anything is sent, so a request no channel can honour is a
400 with nothing sent, and the reservation covers whichever channel ends up taking it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Awaitable, Callable, Sequence

from server.errors import GatewayError
from server.providers.interface import Prepared, VideoInputCheck, VideoProvider, VideoRemixer, VideoRequest
from server.store.channels import Channel


@dataclass(frozen=True)
class Offer:
    """One candidate channel for a new task."""
    channel: Channel
    upstream_model: str
    asked: dict     # duration, width, height, fps the channel would really ask
    request: dict   # the task's request as stored with it
    send: Callable[[], Awaitable[str]]  # starts the task upstream; the provider's id for it
    prepared: Prepared | None = None  # a create's: what its provider will send


@dataclass(frozen=True)
class Submission:
    """The channels a new task may go to, in routing's order."""
    offers: Sequence[Offer]

    @property
    def channels(self) -> list[Channel]:
        return [offer.channel for offer in self.offers]

    def offer(self, channel: Channel) -> Offer:
        return next(offer for offer in self.offers if offer.channel.id == channel.id)

    def call(self, channel: Channel, budget: float) -> Awaitable[str]:
        """One attempt (server/core/attempts.py `Call`): the loop holds it to `budget`."""
        return self.offer(channel).send()


def creating(channels: Sequence[Channel], providers: dict[str, VideoProvider], request: VideoRequest,
             model: str, stored: Callable[[VideoRequest], dict]) -> Submission:
    """A create's offers: every candidate whose provider can honour the request (each maps
    it to its own parameters). A candidate that cannot is left out; when none can, the
    first one's 400 says why."""
    offers: list[Offer] = []
    refusal: GatewayError | None = None
    for channel in channels:
        provider = providers[channel.type]
        asked = replace(request, model=channel.upstream_model(model))
        try:
            prepared = provider.prepare(channel, asked)  # no I/O: nothing is sent yet
        except GatewayError as error:
            refusal = refusal or error
            continue
        offers.append(Offer(channel, asked.model, prepared.asked, stored(asked),
                            lambda provider=provider, channel=channel, prepared=prepared:
                            provider.submit(channel, prepared), prepared))
    if not offers:
        assert refusal is not None
        raise refusal
    return Submission(offers)


async def check_inputs(providers: dict[str, VideoProvider], submission: Submission) -> None:
    """Providers that fetch the client's image URLs themselves check them now, so a URL
    st-ai will not fetch is a 400 before anything is sent."""
    for offer in submission.offers:
        provider = providers[offer.channel.type]
        if isinstance(provider, VideoInputCheck) and offer.prepared is not None:
            await provider.check_inputs(offer.channel, offer.prepared)


def remixing(channel: Channel, provider: VideoRemixer, upstream_model: str, upstream_id: str, prompt: str,
             asked: dict, request: dict) -> Submission:
    """A remix goes to the channel holding the source video, the only one that has it."""
    return Submission([Offer(channel, upstream_model, asked, request,
                             lambda: provider.remix(channel, upstream_id, prompt))])
