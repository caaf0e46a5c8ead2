"""`channel test`: one minimal real request through a channel's provider (a chat of one
output token, or, for a model the chat endpoint refuses, an embedding of one word; for a
video-only provider, its free probe call: server/providers/interface.py's ChannelProbe),
reporting whether the upstream answered and how fast. It goes to the provider directly,
past routing and admission, so no token is billed and no ledger row is written; the error
shown is scrubbed of the channel's secrets.

A channel that answers is recovered (`record`): enabled again if st-ai had disabled it
(a rejected key), and its cooldown cleared; an operator's disable stays."""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, replace

import aiohttp
import sqlite_utils

from server import upstream_errors
from server.admin import audit
from server.admin.errors import AdminError
from server.api_client import ApiClient
from server.errors import GatewayError
from server.providers.interface import ChannelProbe, Upstream
from server.providers.registry import Registry
from server.store import channel_health
from server.store.channels import Channel

TIMEOUT = 30.0


@dataclass(frozen=True)
class TestResult:
    name: str
    model: str
    ok: bool
    latency_ms: int
    error: str | None = None
    error_code: str | None = None
    http_status: int | None = None
    reenabled: bool | None = None  # it answered, and st-ai had disabled it: enabled again

    def view(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


async def run(registry: Registry, channel: Channel, model: str | None = None,
              timeout: float = TIMEOUT) -> TestResult:
    if model is not None and model not in channel.models:
        raise AdminError(f"channel {channel.name!r} does not serve {model!r} (it serves {', '.join(channel.models)})")
    model = model or channel.models[0]
    began = time.monotonic()
    try:
        await asyncio.wait_for(_probe(registry, channel, model, timeout), timeout)
    except GatewayError as error:
        upstream_errors.for_client(error, channel, None)
        return TestResult(channel.name, model, False, _ms(began), error.message, error.code, error.http_status)
    except asyncio.TimeoutError:
        return TestResult(channel.name, model, False, _ms(began), f"no answer within {timeout:g} seconds",
                          "timeout", 504)
    return TestResult(channel.name, model, True, _ms(began))


async def _probe(registry: Registry, channel: Channel, model: str, timeout: float) -> None:
    if channel.type in registry.chat:
        body = {"model": channel.upstream_model(model), "messages": [{"role": "user", "content": "ping"}],
                "max_tokens": 1, "stream": False}
        try:
            await registry.chat[channel.type].complete(channel, body, timeout)
        except GatewayError as refused:
            # a refused key or an empty account is the answer; a refusal of the model or of
            # the chat endpoint may mean it is an embeddings model
            if channel.type not in registry.embeddings or refused.channel_fault in ("credentials", "account"):
                raise
            try:  # the model may be an embeddings model, which the chat endpoint refuses
                await _embed_one(registry, channel, model, timeout)
            except GatewayError:
                raise refused from None
    elif channel.type in registry.embeddings:
        await _embed_one(registry, channel, model, timeout)
    elif isinstance(registry.video.get(channel.type), ChannelProbe):
        await registry.video[channel.type].probe(channel)
    else:
        raise GatewayError(400, f"channel type {channel.type!r} offers no call cheap enough to test",
                           "untestable")


async def _embed_one(registry: Registry, channel: Channel, model: str, timeout: float) -> None:
    await registry.embeddings[channel.type].embed(channel, {"model": channel.upstream_model(model), "input": "ping"},
                                                  timeout)


async def run_alone(channel: Channel, model: str | None = None, timeout: float = TIMEOUT) -> TestResult:
    """`run` outside a server (the CLI): with a pooled client of its own for this one call."""
    calls = ApiClient()
    try:
        async with aiohttp.ClientSession() as http:
            return await run(Registry.build(Upstream(http, calls=calls)), channel, model, timeout)
    finally:
        await calls.close()


def record(db: sqlite_utils.Database, actor: audit.Actor, channel: Channel, result: TestResult) -> TestResult:
    """Audit the test; when the channel answered, recover it in the same change. Returns
    the result saying whether it was re-enabled."""
    summary = {"model": result.model, "ok": result.ok, "latency_ms": result.latency_ms}
    with audit.transaction(db) as conn:
        reenabled = result.ok and channel_health.recover(conn, channel.id)
        audit.write(conn, actor, "channel.test", channel.name, {**summary, "reenabled": True} if reenabled else summary)
    return replace(result, reenabled=True) if reenabled else result


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
