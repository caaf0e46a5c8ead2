"""A request in a client API other than chat completions (OpenAI's Responses API,
Anthropic's Messages API) as the relay core carries it.

The core relays it like a chat request (one admission, one attempt loop, one settlement)
and asks the exchange, per channel, for what differs: a channel whose upstream speaks the
client's API (`Channel.native_apis`) gets the client's body passed through and answers in
that API; any other channel gets the request as chat completions and its answer is
translated back. Either way the client gets answers and events in its own API, and the
meter and the ledger see chat-shaped usage. The exchanges themselves are pure conversions
(server/apis/*), knowing neither HTTP nor protobuf."""
from __future__ import annotations

from typing import Protocol

from server.errors import GatewayError


class EventStream(Protocol):
    """One stream's events for the client, made from what one channel sends: chat chunks
    (translated) or the upstream's own events in the client's API (native). One is made
    per attempt, so an attempt that failed before its first event leaves nothing behind."""

    def feed(self, item: dict) -> list[dict]:
        """The client's events for one upstream item (none while the item only adds to
        something not yet complete)."""

    def metered(self, item: dict) -> dict | None:
        """The chat chunk `item` counts as for billing: its `usage` (chat-shaped) and the
        text it generated in `choices[].delta`. A translated stream's item is one already."""

    def finish(self, usage: dict) -> list[dict]:
        """The upstream ended: the closing events, given the chat usage the request is billed
        at (the upstream's own, else st-ai's count)."""

    def fail(self, error: GatewayError) -> list[dict]:
        """The stream failed after the client got its first event: the in-band events that
        end it (the status line is sent, so the error travels as events)."""


class Exchange(Protocol):
    api: str                        # "responses" | "messages": the ledger's api, and a channel's native API
    model: str                      # as the client named it: routing, prices, quotas
    chat: dict                      # the request as a chat completions body: estimates, translated channels
    refusal: GatewayError | None    # why it cannot be translated (a built-in tool only some upstreams
    #                                 have): what a channel that would have to translate answers

    def native_body(self, upstream_model: str) -> dict:
        """The body passed through to a channel that speaks `api` itself."""

    def answer(self, completion: dict) -> dict:
        """A translated channel's chat completion, as the client's answer."""

    def native_answer(self, answer: dict) -> dict:
        """A native channel's answer, as the client gets it."""

    def metered(self, answer: dict) -> dict:
        """A native answer as the chat completion it counts as for billing (`usage`
        chat-shaped, the generated text in `choices[0].message`)."""

    def translated_events(self) -> EventStream:
        """A new stream of events from chat chunks."""

    def native_events(self) -> EventStream:
        """A new stream of events from the upstream's own events in `api`."""
