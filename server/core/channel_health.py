"""Channel health: the circuit breaker the attempt loop asks before each attempt and
tells after it (server/core/attempts.py `Health`).

- `cooldown_failures` consecutive failures put a channel in cooldown for
  `cooldown_base * 2**k` seconds (k: cooldowns in a row), at most `cooldown_max`. When it
  ends, ONE request in this process is let through as a trial; its success puts the
  channel back in full service, its failure cools it again, twice as long.
- An upstream 429 with Retry-After keeps the channel out that long (at most
  `cooldown_max`), with no trial after it: the upstream said when to come back.
- A rejected key (`channel_fault == "credentials"`, a 401/403) disables the channel in
  the database with the reason; a `channel test` or the background probe that gets an
  answer enables it again (server/core/channel_probe.py).

State is kept in the database (server/store/channel_health.py) so that every process and
the CLI see it. Writes leave the request path at once: the newest state of each channel
waits in a small map that `run` writes on the database thread, in order, so a burst of
failures costs one write. Other processes' state comes in with the catalog's reload;
of two views of a channel, the newer (`updated_at`, wall-clock) wins."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Callable, Protocol

from server.catalog import Snapshot
from server.core.resilience import Resilience
from server.errors import GatewayError
from server.store import channel_health as store
from server.store.channels import Channel
from server.store.db import DbWorker
from server.store.channel_health import HealthState

log = logging.getLogger("st_ai.channel_health")
_NEVER_FAILED = HealthState()  # frozen: one for every channel without a record, not one per request


class CatalogView(Protocol):
    """What health needs of server/catalog.py's Catalog."""
    snapshot: Snapshot

    async def load(self) -> None: ...


class ChannelHealth:
    def __init__(self, resilience: Resilience, worker: DbWorker, catalog: CatalogView,
                 clock: Callable[[], float] = time.time) -> None:
        self._resilience = resilience
        self._worker = worker
        self._catalog = catalog
        self._clock = clock
        self._mine: dict[int, HealthState] = {}  # this process's view, newer than the snapshot's or not
        self._trials: dict[int, float] = {}  # channel id -> when its one trial was handed out
        self._disabled: set[int] = set()  # disabled here, until the catalog shows it
        self._unwritten: dict[int, HealthState] = {}
        self._disables: dict[int, str] = {}
        self._wake = asyncio.Event()

    # -- what the attempt loop asks and tells -------------------------------------------

    def usable(self, channel: Channel) -> bool:
        if channel.id in self._disabled:
            return False
        current = self._catalog.snapshot.channels_by_id.get(channel.id)
        if current is not None and not current.enabled:  # disabled since the request was routed
            return False
        now = self._clock()
        state = self.state(channel.id)
        if state.cooling(now):
            return False
        if state.trial:
            handed = self._trials.get(channel.id)
            # a trial whose outcome never came (a caller that crashed) must not shut the channel for good
            if handed is not None and now - handed < self._trial_lease(channel):
                return False
            self._trials[channel.id] = now
        return True

    def succeeded(self, channel: Channel) -> None:
        self._trials.pop(channel.id, None)
        state = self.state(channel.id)
        if state.healthy():
            return  # the common case: nothing to write
        now = self._clock()
        resting = state.cooling_until if state.cooling(now) and not state.trial else None  # a Retry-After stands
        if state.trial:
            log.info("channel %r answered its trial request: back in service", channel.name)
        self._set(channel.id, HealthState(cooling_until=resting, updated_at=now))

    def abandoned(self, channel: Channel) -> None:
        self._trials.pop(channel.id, None)  # the next caller takes the trial

    def failed(self, channel: Channel, error: GatewayError) -> None:
        self._trials.pop(channel.id, None)
        now = self._clock()
        if error.channel_fault == "credentials":
            self._disable(channel, error, now)
            return
        state = self.state(channel.id)
        last = f"HTTP {error.http_status} {error.code}"
        if error.retry_after:
            until = now + min(error.retry_after, self._resilience.cooldown_max)
            if state.cooling_until is None or until > state.cooling_until:
                log.warning("channel %r is rate limited: resting for %gs as its upstream asked",
                            channel.name, until - now)
                self._set(channel.id, replace(state, cooling_until=until, last_error=last, updated_at=now))
            return
        if state.cooling(now):
            return  # a request that began before the cooldown: it says nothing new
        failures = state.failures + 1
        if state.trial or failures >= self._resilience.cooldown_failures:
            cooldowns = state.cooldowns + 1
            seconds = min(self._resilience.cooldown_max, self._resilience.cooldown_base * 2 ** (cooldowns - 1))
            log.warning("channel %r failed %d time(s) in a row (last: %s): cooling down for %gs",
                        channel.name, failures, last, seconds)
            self._set(channel.id, HealthState(failures, cooldowns, now + seconds, True, last, now))
        else:
            self._set(channel.id, replace(state, failures=failures, last_error=last, updated_at=now))

    # -- for the rest of st-ai ------------------------------------------------------------

    def state(self, channel_id: int) -> HealthState:
        """The newer of this process's view and the database's (as of the last reload)."""
        mine = self._mine.get(channel_id)
        theirs = self._catalog.snapshot.health.get(channel_id)
        if theirs is None or (mine is not None and mine.updated_at >= theirs.updated_at):
            return mine or _NEVER_FAILED
        return theirs

    def forget(self, channel_id: int) -> None:
        """A test answered and the channel was recovered in the database: start afresh."""
        self._mine.pop(channel_id, None)
        self._trials.pop(channel_id, None)
        self._disabled.discard(channel_id)

    async def run(self) -> None:
        """Write state changes to the database until cancelled; what is waiting then is
        still written (the database closes after this task)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._write()
        except asyncio.CancelledError:
            await self._write()
            raise

    async def flush(self) -> None:
        """Write what is waiting now (tests, and anyone who must read it back)."""
        await self._write()

    # -- inside ---------------------------------------------------------------------------

    def _trial_lease(self, channel: Channel) -> float:
        return self._resilience.timeouts_for(channel).total or 600.0

    def _set(self, channel_id: int, state: HealthState) -> None:
        self._mine[channel_id] = state
        self._unwritten[channel_id] = state
        self._wake.set()

    def _disable(self, channel: Channel, error: GatewayError, now: float) -> None:
        if channel.id in self._disabled:
            return
        log.warning("channel %r: %s Disabled until a test succeeds.", channel.name, error.message)
        self._disabled.add(channel.id)
        self._disables[channel.id] = store.rejected_key_reason(error.message, now)
        self._wake.set()

    async def _write(self) -> None:
        states, self._unwritten = self._unwritten, {}
        disables, self._disables = self._disables, {}
        try:
            if states:
                await self._worker.run(store.save, states)
            for channel_id, reason in disables.items():
                await self._worker.run(store.auto_disable, channel_id, reason)
            if disables:
                await self._catalog.load()  # the server's own writes do not trigger a reload
        except Exception:  # a locked file: the state stays right in this process meanwhile
            log.exception("storing channel health failed")
        finally:
            # the snapshot shows them disabled now (or, if a write failed, the next
            # rejected call disables them again)
            self._disabled.difference_update(disables)
