"""Sends webhook events from the outbox (server/store/webhook_events.py) after the task's
final state is committed: leased per row, POSTed with the Standard Webhooks headers
(server/webhook_signing.py) through the one pooled HTTP client, retried with exponential
backoff (`--webhook-retry-base`, doubling) until the receiver answers 2xx or
`--webhook-max-attempts` attempts have failed; then the event is marked failed and logged.
A process killed mid-delivery leaves its lease: the next sender frees it (a local process
that is gone) or waits it out, and sends the event again, so an event is delivered at least
once; receivers deduplicate by `webhook-id`, which stays the same on every attempt."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp

from server import webhook_signing
from server.callback_urls import CallbackRules, shown
from server.errors import GatewayError
from server.leased_work import run_claims
from server.store import webhook_events as outbox
from server.store.db import DbWorker
from server.store.webhook_events import Event

log = logging.getLogger("st_ai.webhooks")
CLAIM_BATCH = 32
KEEP_DONE_SECONDS = 30 * 86400.0  # delivered and failed events are kept this long, for the operator


@dataclass(frozen=True)
class WebhookConfig:
    retry_base: float = 5.0         # seconds before the 2nd attempt; doubles after each failure
    max_attempts: int = 8           # then the event is marked failed
    timeout: float = 10.0           # seconds for one attempt, connect to answer
    allow_callback_hosts: tuple[str, ...] = ()  # hosts a client's callback_url may name anyway

    @property
    def lease(self) -> float:
        # longer than one attempt, so no other process sends a row while it is in flight
        return self.timeout * 3 + 5


def next_attempt_at(now: float, attempts_made: int, config: WebhookConfig) -> float | None:
    """When to try again after `attempts_made` failed attempts; None: give up."""
    if attempts_made >= config.max_attempts:
        return None
    return now + config.retry_base * 2 ** (attempts_made - 1)


class WebhookSender:
    def __init__(self, worker: DbWorker, http: aiohttp.ClientSession, callbacks: CallbackRules,
                 config: WebhookConfig, owner: str, owner_alive) -> None:
        self.worker, self.http, self.callbacks, self.config, self.owner = worker, http, callbacks, config, owner
        self._owner_alive = owner_alive  # (lease owner) -> False only for a local process that is gone
        self._running: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        await run_claims(lambda now: self.worker.run(outbox.claim_due, self.owner, now, self.config.lease, CLAIM_BATCH),
                         self._send, self._running, tick=max(0.05, min(1.0, self.config.retry_base / 4)),
                         what="webhook", housekeeping=self._housekeeping,
                         hand_back=lambda: self.worker.run(outbox.free_dead_leases, [self.owner]))

    async def _housekeeping(self) -> None:
        try:
            owners = await self.worker.run(outbox.lease_owners)
            dead = [o for o in owners if o != self.owner and not self._owner_alive(o)]
            if dead:
                freed = await self.worker.run(outbox.free_dead_leases, dead)
                log.info("resuming %d webhook events left by stopped processes", freed)
            await self.worker.run(outbox.prune, time.time() - KEEP_DONE_SECONDS)
        except Exception:
            log.exception("webhook housekeeping failed")

    async def _send(self, event: Event) -> None:
        try:
            if event.secret is None:  # the token (or its secret) is gone: nothing could sign it, ever
                problem, retry_at, made = "the token has no webhook secret any more", None, event.attempts + 1
                await self.worker.run(outbox.attempt_failed, event.id, self.owner, problem, None)
                log.warning("webhook %s (%s for %s) dropped: %s", event.id, event.type, event.video_id, problem)
                return
            problem = await self._attempt(event)
            if problem is None:
                await self.worker.run(outbox.delivered, event.id, self.owner)
                return
            made = event.attempts + 1
            retry_at = next_attempt_at(time.time(), made, self.config)
            await self.worker.run(outbox.attempt_failed, event.id, self.owner, problem, retry_at)
            if retry_at is None:
                log.warning("webhook %s (%s for %s) to %s failed after %d attempts, given up: %s", event.id,
                            event.type, event.video_id, shown(event.url), made, problem)
            else:
                log.info("webhook %s to %s: attempt %d failed (%s); next in %.1f s", event.id, shown(event.url),
                         made, problem, retry_at - time.time())
        except asyncio.CancelledError:
            await asyncio.shield(self.worker.run(outbox.release, event.id, self.owner))
            raise
        except Exception:
            log.exception("webhook %s: unexpected error", event.id)
        finally:
            self._running.pop(event.id, None)

    async def _attempt(self, event: Event) -> str | None:
        """One POST; None when the receiver acknowledged it (2xx), else what went wrong
        (said without the URL, which may hold a token)."""
        url, extra = event.url, {}
        if event.from_client:
            try:
                pinned = await self.callbacks.check(event.url)
            except GatewayError as refusal:
                return refusal.message
            if pinned.address is not None:  # connect to the address just checked
                url = pinned.url.with_host(pinned.address)
                extra = {"server_hostname": pinned.url.raw_host if pinned.url.scheme == "https" else None}
                host = pinned.url.host_port_subcomponent or pinned.address
            else:
                host = None
        else:
            host = None
        headers = webhook_signing.headers(event.secret, event.id, int(time.time()), event.payload)
        if host:
            headers["Host"] = host
        try:
            async with self.http.post(url, data=event.payload, headers=headers, allow_redirects=False,
                                      timeout=aiohttp.ClientTimeout(total=self.config.timeout), **extra) as answer:
                await answer.content.read(4096)  # a bounded look; the body says nothing st-ai needs
                if 200 <= answer.status < 300:
                    return None
                return f"the receiver answered HTTP {answer.status}"
        except asyncio.TimeoutError:
            return f"no answer within {self.config.timeout:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as error:
            return f"could not connect ({type(error).__name__})"
