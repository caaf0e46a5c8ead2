"""The one attempt loop, in-process: no transport, no provider, calls are plain
coroutines standing for an upstream call on a channel."""
from __future__ import annotations

import asyncio

import pytest

from server.billing.admission import Ticket
from server.core.attempts import AttemptLoop
from server.core.resilience import Resilience
from server.errors import GatewayError, credentials_rejected, upstream_rate_limited
from server.store.channels import Channel, Timeouts
from server.store.tokens import Token


def channel(id: int, **kw) -> Channel:
    return Channel(id=id, name=f"c{id}", type="openai", base_url="http://127.0.0.1:9", key="k", models=("m",), **kw)


def ticket() -> Ticket:
    return Ticket(Token(id=1, name="t", key_hash="h", key_hint="...", enabled=True, expires_at=None, models=None,
                        created_at=0), "chat")


class Health:
    """Records what the loop reports; a channel that sent Retry-After is put aside."""
    def __init__(self) -> None:
        self.failures: list[tuple[int, str | None]] = []
        self.successes: list[int] = []
        self.cooling: set[int] = set()
        self.abandons: list[int] = []

    def usable(self, c: Channel) -> bool:
        return c.id not in self.cooling

    def succeeded(self, c: Channel) -> None:
        self.successes.append(c.id)

    def failed(self, c: Channel, e: GatewayError) -> None:
        self.failures.append((c.id, e.code))
        if e.retry_after:
            self.cooling.add(c.id)

    def abandoned(self, c: Channel) -> None:
        self.abandons.append(c.id)


async def no_pause(_: float) -> None:
    return None


def loop(health=None, **kw) -> AttemptLoop:
    return AttemptLoop(Resilience(**kw), health, sleep=no_pause)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def scripted(outcomes: dict[int, list]):
    """A call whose answer per channel id is the next of `outcomes[id]`: a value, or an
    exception to raise; every call is logged."""
    calls: list[int] = []

    async def call(c: Channel, budget: float):
        calls.append(c.id)
        outcome = outcomes[c.id].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return await outcome()
        return outcome
    return call, calls


def failing() -> GatewayError:
    return GatewayError(503, "down", "upstream_error", retryable=True)


def test_a_retryable_failure_moves_to_the_next_channel_and_both_attempts_are_on_the_ticket():
    t, health = ticket(), Health()
    call, calls = scripted({1: [failing()], 2: ["answer"]})
    won = run(loop(health).first(t, [channel(1), channel(2)], "m", call, deadline=1e12))
    assert (won.value, won.channel.id, calls) == ("answer", 2, [1, 2])
    assert [(a.channel_id, a.status) for a in t.attempts] == [(1, 503), (2, 200)]
    assert health.failures == [(1, "upstream_error")] and health.successes == [2]


def test_a_client_error_from_upstream_is_final_and_the_channel_counts_as_healthy():
    t, health = ticket(), Health()
    call, calls = scripted({1: [GatewayError(400, "bad", "invalid_value")], 2: ["answer"]})
    with pytest.raises(GatewayError) as caught:
        run(loop(health).first(t, [channel(1), channel(2)], "m", call, deadline=1e12))
    assert caught.value.http_status == 400 and calls == [1]
    assert health.successes == [1] and health.failures == []


def test_every_channel_failing_stops_after_max_attempts_and_no_more():
    call, calls = scripted({1: [failing()] * 5, 2: [failing()] * 5})
    with pytest.raises(GatewayError) as caught:
        run(loop(max_attempts=3).first(ticket(), [channel(1), channel(2)], "m", call, deadline=1e12))
    assert caught.value.http_status == 503 and calls == [1, 2, 1]


def test_a_single_channel_is_tried_again_up_to_max_attempts():
    call, calls = scripted({1: [failing(), failing(), "third time"]})
    won = run(loop(max_attempts=3).first(ticket(), [channel(1)], "m", call, deadline=1e12))
    assert won.value == "third time" and calls == [1, 1, 1]


def test_a_channel_that_asked_to_be_left_alone_is_not_come_back_to():
    health = Health()
    call, calls = scripted({1: [upstream_rate_limited(30.0)], 2: [failing(), failing(), failing()]})
    with pytest.raises(GatewayError):
        run(loop(health, max_attempts=4).first(ticket(), [channel(1), channel(2)], "m", call, deadline=1e12))
    assert calls == [1, 2, 2, 2]


def test_a_rejected_key_moves_on_even_when_the_provider_calls_it_final():
    health = Health()
    call, calls = scripted({1: [credentials_rejected(retryable=False)], 2: ["answer"]})
    won = run(loop(health).first(ticket(), [channel(1), channel(2)], "m", call, deadline=1e12))
    assert won.channel.id == 2 and health.failures == [(1, "upstream_error")]


def test_no_first_byte_within_the_channels_limit_is_a_retryable_timeout():
    async def silent():
        await asyncio.sleep(30)
    call, calls = scripted({1: [silent], 2: ["answer"]})
    slow = channel(1, timeouts=Timeouts(first_byte=0.05))
    t = ticket()
    won = run(loop().first(t, [slow, channel(2)], "m", call, deadline=1e12))
    assert won.channel.id == 2 and [a.status for a in t.attempts] == [504, 200]


def test_the_deadline_is_shared_by_every_attempt():
    async def slow():
        await asyncio.sleep(30)
    call, calls = scripted({1: [slow], 2: [slow]})
    attempt_loop = loop()

    async def go():
        return await attempt_loop.first(ticket(), [channel(1), channel(2)], "m", call,
                                        deadline=attempt_loop.clock() + 0.1)
    with pytest.raises(GatewayError) as caught:
        run(go())
    assert caught.value.code == "upstream_timeout" and calls == [1]


def test_a_provider_that_breaks_on_an_answer_gives_a_502_and_the_next_channel_is_tried():
    call, calls = scripted({1: [ValueError("not json")], 2: ["answer"]})
    t = ticket()
    won = run(loop().first(t, [channel(1), channel(2)], "m", call, deadline=1e12))
    assert won.channel.id == 2 and [(a.status, a.error_code) for a in t.attempts] == [
        (502, "upstream_bad_answer"), (200, None)]


def test_an_open_ended_winner_is_recorded_when_its_caller_finishes_it():
    t, health = ticket(), Health()
    call, _ = scripted({1: ["first event"]})
    won = run(loop(health).first(t, [channel(1)], "m", call, deadline=1e12, open_ended=True))
    assert t.attempts == []
    won.finish(504, "upstream_timeout", GatewayError(504, "stalled", "upstream_timeout", retryable=True))
    won.finish()  # once only
    assert [(a.status, a.error_code) for a in t.attempts] == [(504, "upstream_timeout")]
    assert health.failures == [(1, "upstream_timeout")]


def test_every_channel_rate_limited_is_a_503_for_the_client_not_its_own_429():
    call, calls = scripted({1: [upstream_rate_limited(2.0)], 2: [upstream_rate_limited(5.0)]})
    with pytest.raises(GatewayError) as caught:
        run(loop(Health()).first(ticket(), [channel(1), channel(2)], "m", call, deadline=1e12))
    assert (caught.value.http_status, caught.value.code) == (503, "upstream_rate_limited")
    assert calls == [1, 2]


class Clock:
    """The loop's clock, moved only by its pauses and by the calls a test scripts."""
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_client_may_come_back_when_the_soonest_rate_limited_channel_may_be_asked_again():
    # channel 1 says 30 s at t=0, channel 2 says 10 s at t=4, channel 3 says 20 s at t=8:
    # channel 2 is free soonest, at t=14, six seconds after the loop gives up at t=8
    clock = Clock()

    def limited(seconds: float):
        async def answer():
            clock.now += 4.0
            raise upstream_rate_limited(seconds)
        return answer
    call, calls = scripted({1: [limited(30.0)], 2: [limited(10.0)], 3: [limited(20.0)]})
    looped = AttemptLoop(Resilience(max_attempts=3, backoff=0.0), None, clock=clock, sleep=clock.sleep)
    with pytest.raises(GatewayError) as caught:
        run(looped.first(ticket(), [channel(1), channel(2), channel(3)], "m", call, deadline=1e12))
    assert (caught.value.http_status, caught.value.code, caught.value.retry_after) == (503, "upstream_rate_limited", 6.0)
    assert calls == [1, 2, 3]


def test_a_final_upstream_failure_tells_the_client_when_a_rate_limited_channel_is_free_again():
    call, _ = scripted({1: [upstream_rate_limited(30.0)], 2: [failing()]})
    with pytest.raises(GatewayError) as caught:
        run(loop(max_attempts=2).first(ticket(), [channel(1), channel(2)], "m", call, deadline=1e12))
    assert (caught.value.http_status, caught.value.code) == (503, "upstream_error")
    assert 29.0 < caught.value.retry_after <= 30.0


def test_no_channel_saying_when_leaves_the_client_without_a_retry_after():
    call, _ = scripted({1: [failing()], 2: [upstream_rate_limited(None)]})
    with pytest.raises(GatewayError) as caught:
        run(loop(max_attempts=2).first(ticket(), [channel(1), channel(2)], "m", call, deadline=1e12))
    assert (caught.value.code, caught.value.retry_after) == ("upstream_rate_limited", None)


def test_a_channel_at_fault_is_not_asked_again_within_the_request():
    empty_account = GatewayError(502, "no balance", "upstream_error", channel_fault="account")
    call, calls = scripted({1: [empty_account, "not reached"]})
    with pytest.raises(GatewayError) as caught:
        run(loop(Health(), max_attempts=3).first(ticket(), [channel(1)], "m", call, deadline=1e12))
    assert caught.value is empty_account and calls == [1]


def test_a_channels_own_timeouts_win_and_the_gateways_fill_only_what_it_left_unset():
    gateway = Resilience(timeouts=Timeouts(connect=1.0, first_byte=2.0, idle=3.0, total=4.0))
    assert gateway.timeouts_for(channel(1)) == Timeouts(1.0, 2.0, 3.0, 4.0)
    assert gateway.timeouts_for(channel(2, timeouts=Timeouts(first_byte=0.5))) == Timeouts(1.0, 0.5, 3.0, 4.0)
    own = Timeouts(5.0, 6.0, 7.0, 8.0)  # a snapshot's channel comes with every one filled
    assert gateway.timeouts_for(channel(3, timeouts=own)) is own
