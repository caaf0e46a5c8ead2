"""Channel health (server/core/channel_health.py) with the one attempt loop, in-process:
no transport, no provider; calls are plain coroutines standing for an upstream call.
Its state goes to a real database, read back as another process would."""
from __future__ import annotations

import asyncio
import collections
import math
import random
import pytest

from server.catalog import Snapshot, load_snapshot
from server.core.attempts import AttemptLoop
from server.core.channel_health import ChannelHealth
from server.core.resilience import Resilience
from server.errors import GatewayError, credentials_rejected, upstream_rate_limited
from server.routing import weighted_order
from server.store import channel_health as health_store
from server.store import channels as channel_store
from server.store.db import DbWorker, open_db
from tests.test_attempt_loop import channel, ticket

pytestmark = pytest.mark.timeout(60)


def failing() -> GatewayError:
    return GatewayError(503, "down", "upstream_error", retryable=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Catalog:
    """The catalog as health sees it: a snapshot read from the database on `load`."""
    def __init__(self, worker: DbWorker) -> None:
        self.worker = worker
        self.snapshot = Snapshot()

    async def load(self) -> None:
        _, self.snapshot = await self.worker.run(load_snapshot)


async def no_pause(_: float) -> None:
    return None


class World:
    """Two channels in a real database, a health and a loop over them."""
    def __init__(self, worker: DbWorker, resilience: Resilience) -> None:
        self.worker, self.clock = worker, Clock()
        self.catalog = Catalog(worker)
        self.health = ChannelHealth(resilience, worker, self.catalog, clock=self.clock)
        self.loop = AttemptLoop(resilience, self.health, sleep=no_pause)
        self.calls: list[int] = []
        self.fail: set[int] = set()
        self.errors: dict[int, GatewayError] = {}

    async def start(self) -> None:
        for name in ("a", "b"):
            await self.worker.run(channel_store.add, name, "openai", "http://127.0.0.1:9", "sk-secret-key-0123456789",
                                  ["m"])
        await self.catalog.load()
        self.a, self.b = (self.catalog.snapshot.channels_by_id[i] for i in sorted(self.catalog.snapshot.channels_by_id))

    async def call(self, c, budget: float) -> str:
        self.calls.append(c.id)
        if c.id in self.errors:
            raise self.errors[c.id]
        if c.id in self.fail:
            raise failing()
        return f"answer from {c.name}"

    async def request(self, *channels) -> str:
        won = await self.loop.first(ticket(), list(channels or (self.a, self.b)), "m", self.call, deadline=1e12)
        return won.value


@pytest.fixture
def db_path(tmp_path):
    path = str(tmp_path / "st-ai.db")
    open_db(path).close()
    return path


def scenario(db_path: str, body, **resilience):
    async def main():
        worker = await asyncio.to_thread(DbWorker, db_path)
        try:
            world = World(worker, Resilience(**{"cooldown_failures": 3, "cooldown_base": 5.0,
                                                "cooldown_max": 300.0, **resilience}))
            await world.start()
            await body(world)
        finally:
            await asyncio.to_thread(worker.close)
    asyncio.run(asyncio.wait_for(main(), 30))


def other_process_state(db_path: str, channel_id: int):
    db = open_db(db_path)
    try:
        return health_store.load_all(db).get(channel_id), channel_store.all_channels(db)
    finally:
        db.close()


def test_three_failures_in_a_row_cool_the_channel_and_requests_skip_it_meanwhile(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        for _ in range(3):
            assert await w.request() == "answer from b"
        assert w.calls.count(w.a.id) == 3
        w.calls.clear()
        for _ in range(10):
            assert await w.request() == "answer from b"
        assert w.a.id not in w.calls  # not hit while it cools
        assert w.health.state(w.a.id).cooling_until == pytest.approx(w.clock.now + 5.0)
        with pytest.raises(GatewayError) as refused:
            await w.request(w.a)
        assert (refused.value.http_status, refused.value.code) == (503, "no_available_channel")
    scenario(db_path, body)


def test_a_success_between_failures_starts_the_count_again(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        await w.request()
        await w.request()
        w.fail.clear()
        await w.request()  # a answers
        w.fail.add(w.a.id)
        await w.request()
        await w.request()
        assert not w.health.state(w.a.id).cooling(w.clock.now)
        assert w.health.state(w.a.id).failures == 2
    scenario(db_path, body)


def test_after_the_cooldown_one_trial_request_goes_through_and_its_success_restores_the_channel(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        for _ in range(3):
            await w.request()
        w.clock.now += 5.01
        assert w.health.usable(w.a)  # the trial, handed to this caller
        assert not w.health.usable(w.a)  # everyone else waits for its outcome
        w.health.succeeded(w.a)
        assert w.health.state(w.a.id).healthy()
        assert all(w.health.usable(w.a) for _ in range(5))
    scenario(db_path, body)


def test_a_failed_trial_cools_the_channel_again_for_twice_as_long_up_to_the_cap(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        for _ in range(3):
            await w.request()
        lengths = []
        for _ in range(5):
            until = w.health.state(w.a.id).cooling_until
            lengths.append(round(until - w.clock.now, 3))
            w.clock.now = until + 0.01
            w.calls.clear()
            await w.request()  # the trial goes to a, fails, then b answers
            assert w.calls == [w.a.id, w.b.id]
        assert lengths == [5.0, 10.0, 20.0, 40.0, 40.0]
    scenario(db_path, body, cooldown_max=40.0)


def test_a_trial_whose_client_left_is_handed_to_the_next_request(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        for _ in range(3):
            await w.request()
        w.clock.now += 5.01
        w.fail.clear()
        silent = asyncio.Event()

        async def hangs(c, budget):
            await silent.wait()
        leaving = asyncio.create_task(w.loop.first(ticket(), [w.a], "m", hangs, deadline=1e12))
        await asyncio.sleep(0.05)
        assert not w.health.usable(w.a)  # the trial is out
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        assert await w.request(w.a) == "answer from a"  # the next request is the trial, and succeeds
        assert w.health.state(w.a.id).healthy()
    scenario(db_path, body)


def test_a_trial_whose_caller_vanished_is_handed_out_again_after_its_lease(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        for _ in range(3):
            await w.request()
        w.clock.now += 5.01
        assert w.health.usable(w.a)  # and nothing ever reported back (its client left)
        assert not w.health.usable(w.a)
        w.clock.now += 599
        assert not w.health.usable(w.a)
        w.clock.now += 2  # the channel's total timeout (600 s) is over: that request is gone
        assert w.health.usable(w.a)
    scenario(db_path, body)


def test_an_upstream_429_keeps_the_channel_out_for_its_retry_after_without_a_trial(db_path):
    async def body(w: World):
        w.errors[w.a.id] = upstream_rate_limited(retry_after=7.0)
        assert await w.request() == "answer from b"
        del w.errors[w.a.id]
        w.calls.clear()
        w.clock.now += 6.9
        await w.request()
        assert w.a.id not in w.calls
        w.clock.now += 0.2
        assert [w.health.usable(w.a) for _ in range(3)] == [True, True, True]  # no trial: it is simply back
    scenario(db_path, body)


def test_a_retry_after_longer_than_the_longest_cooldown_is_cut_to_it(db_path):
    async def body(w: World):
        w.errors[w.a.id] = upstream_rate_limited(retry_after=86400.0)
        await w.request()
        assert w.health.state(w.a.id).cooling_until == pytest.approx(w.clock.now + 300.0)
    scenario(db_path, body)


def test_a_rejected_key_disables_the_channel_at_once_and_in_the_database_with_its_reason(db_path):
    async def body(w: World):
        w.errors[w.a.id] = credentials_rejected()
        assert await w.request() == "answer from b"
        w.calls.clear()
        await w.request()
        assert w.a.id not in w.calls  # unusable in this process before anything is written
        await w.health.flush()
        _, channels = await asyncio.to_thread(other_process_state, db_path, w.a.id)
        stored = next(c for c in channels if c.id == w.a.id)
        assert (stored.enabled, stored.auto_disabled) == (False, True)
        assert stored.disabled_reason == ("The upstream service rejected the channel's credentials "
                                          "(disabled at 2027-01-15 08:00:00 UTC)")
        assert "sk-secret" not in stored.disabled_reason
        assert not w.health.usable(w.a)  # the catalog, reloaded, now shows it disabled
        assert w.a.id not in w.catalog.snapshot.channels_by_model.get("m", ())
    scenario(db_path, body)


def test_an_operators_disable_is_not_turned_into_st_ais(db_path):
    async def body(w: World):
        await w.worker.run(channel_store.set_enabled, "a", False)
        w.health.failed(w.a, credentials_rejected())
        await w.health.flush()
        _, channels = await asyncio.to_thread(other_process_state, db_path, w.a.id)
        stored = next(c for c in channels if c.id == w.a.id)
        assert (stored.enabled, stored.auto_disabled, stored.disabled_reason) == (False, False, None)
    scenario(db_path, body)


def test_another_process_sees_the_cooldown_and_a_later_recovery_there_wins_here(db_path):
    async def body(w: World):
        w.fail.add(w.a.id)
        for _ in range(3):
            await w.request()
        await w.health.flush()
        stored, _ = await asyncio.to_thread(other_process_state, db_path, w.a.id)
        assert stored.cooling_until == pytest.approx(w.clock.now + 5.0)
        assert (stored.failures, stored.cooldowns, stored.trial) == (3, 1, True)

        # a second gateway process on the same database: it skips the channel too
        other = ChannelHealth(Resilience(), w.worker, w.catalog, clock=w.clock)
        await w.catalog.load()
        assert not other.usable(w.a)

        # `channel test` in the CLI recovered it: newer than this process's view
        def recover(db):
            with db.conn:
                health_store.recover(db.conn, w.a.id, now=w.clock.now + 1)
        w.clock.now += 2
        await w.worker.run(recover)
        await w.catalog.load()
        assert w.health.usable(w.a) and w.health.usable(w.a)
    scenario(db_path, body)


def test_successes_of_a_healthy_channel_write_nothing(db_path):
    async def body(w: World):
        for _ in range(5):
            await w.request()
        await w.health.flush()
        stored, _ = await asyncio.to_thread(other_process_state, db_path, w.a.id)
        assert stored is None
    scenario(db_path, body)


def test_what_is_waiting_is_written_when_the_writer_stops(db_path):
    async def body(w: World):
        writer = asyncio.create_task(w.health.run())
        await asyncio.sleep(0)
        w.fail.add(w.a.id)
        for _ in range(3):
            await w.request()
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        stored, _ = await asyncio.to_thread(other_process_state, db_path, w.a.id)
        assert stored is not None and stored.cooling_until is not None
    scenario(db_path, body)


# -- weighted order --------------------------------------------------------------------

def test_weights_3_to_1_give_the_first_place_in_proportion():
    random.seed(7)
    heavy, light = channel(1, weight=3), channel(2, weight=1)
    n = 4000
    firsts = collections.Counter(weighted_order([heavy, light])[0].id for _ in range(n))
    sd = math.sqrt(n * 0.75 * 0.25)
    assert abs(firsts[1] - 0.75 * n) < 5 * sd


def test_a_weight_0_channel_is_a_standby_after_every_weighted_one():
    standby = channel(3, weight=0)
    for _ in range(200):
        assert weighted_order([standby, channel(1, weight=1), channel(2, weight=5)])[-1].id == 3
