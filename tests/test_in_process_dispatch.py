"""The in-process channel answers as a grpc.aio channel would: messages, metadata both
ways, errors as AioRpcError with their trailers, deadlines, and a cancel that reaches the
method. (The REST suite runs against `serve` in both dispatch modes, see README.)"""
from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import wrappers_pb2

from server.services.in_process import PEER, STREAM_BUFFER, HandlerTable, InProcessChannel

SERVICE = "test.Echo"
StringValue = wrappers_pb2.StringValue


class Echo:
    def __init__(self) -> None:
        self.seen: list[tuple] = []
        self.cancelled = asyncio.Event()

    async def say(self, request: StringValue, context) -> StringValue:
        self.seen.append((tuple(context.invocation_metadata()), context.peer(), context.time_remaining()))
        if request.value == "fail":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no", trailing_metadata=(("why-bin", b"\x01"),))
        if request.value == "slow":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        await context.send_initial_metadata((("x-told", "yes"),))
        context.set_trailing_metadata((("x-after", "done"),))
        return StringValue(value=request.value.upper())

    async def count(self, request: StringValue, context):
        for i in range(int(request.value or 0)):
            yield StringValue(value=str(i))
        if request.value == "2":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "stopped")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


def channel(echo: Echo, wraps=()) -> InProcessChannel:
    table = HandlerTable()
    table.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Say": grpc.unary_unary_rpc_method_handler(echo.say, request_deserializer=StringValue.FromString),
        "Count": grpc.unary_stream_rpc_method_handler(echo.count, request_deserializer=StringValue.FromString),
    }),))
    return InProcessChannel(table, wraps)


async def test_a_unary_call_returns_the_answer_and_both_metadata_and_passes_the_callers_metadata():
    echo = Echo()
    say = channel(echo).unary_unary(f"/{SERVICE}/Say")
    call = say(StringValue(value="hi"), metadata=(("authorization", "Bearer k"),))
    assert (await asyncio.wait_for(call, 5)).value == "HI"
    assert tuple(await call.initial_metadata()) == (("x-told", "yes"),)
    assert tuple(await call.trailing_metadata()) == (("x-after", "done"),)
    assert call.done() and not call.cancelled()
    assert echo.seen == [((("authorization", "Bearer k"),), PEER, None)]


async def test_request_bytes_go_through_the_methods_own_parser():
    echo = Echo()
    say = channel(echo).unary_unary(f"/{SERVICE}/Say")
    assert (await asyncio.wait_for(say(StringValue(value="b").SerializeToString()), 5)).value == "B"
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await asyncio.wait_for(say(b"\xff\xff\xff"), 5)
    assert failed.value.code() == grpc.StatusCode.UNKNOWN  # as grpc answers a raising deserializer


async def test_an_aborted_call_raises_aiorpcerror_with_its_code_details_and_trailers():
    say = channel(Echo()).unary_unary(f"/{SERVICE}/Say")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await asyncio.wait_for(say(StringValue(value="fail")), 5)
    error = failed.value
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "no")
    assert tuple(error.trailing_metadata()) == (("why-bin", b"\x01"),)


async def test_a_deadline_ends_the_call_with_deadline_exceeded_and_cancels_the_method():
    echo = Echo()
    say = channel(echo).unary_unary(f"/{SERVICE}/Say")
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await asyncio.wait_for(say(StringValue(value="slow"), timeout=0.05), 5)
    assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert echo.cancelled.is_set()
    assert 0 < echo.seen[0][2] <= 0.05


async def test_a_caller_cancelled_while_waiting_cancels_the_method():
    echo = Echo()
    say = channel(echo).unary_unary(f"/{SERVICE}/Say")
    waiting = asyncio.ensure_future(_await(say(StringValue(value="slow"))))  # an HTTP handler, say
    await asyncio.sleep(0.05)
    waiting.cancel()  # its client left
    await asyncio.wait_for(echo.cancelled.wait(), 5)
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def _await(call):
    return await call


async def test_a_stream_yields_its_messages_then_its_error_and_every_read_after_the_end_is_eof():
    count = channel(Echo()).unary_stream(f"/{SERVICE}/Count")
    call = count(StringValue(value="2"))
    assert [(await asyncio.wait_for(call.read(), 5)).value for _ in range(2)] == ["0", "1"]
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await asyncio.wait_for(call.read(), 5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_read_nowait_takes_what_is_already_waiting_and_never_waits():
    count = channel(Echo()).unary_stream(f"/{SERVICE}/Count")
    call = count(StringValue(value="2"))
    assert (await asyncio.wait_for(call.read(), 5)).value == "0"
    for _ in range(5):
        await asyncio.sleep(0)  # the method yields "1", then fails
    assert call.read_nowait().value == "1"
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        call.read_nowait()
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE

    silent = count(StringValue(value="1"))  # "0", then nothing for a long while
    assert (await asyncio.wait_for(silent.read(), 5)).value == "0"
    await asyncio.sleep(0.05)
    assert silent.read_nowait() is None
    silent.cancel()


async def test_cancelling_a_stream_between_messages_cancels_the_method_and_reads_end():
    echo = Echo()
    count = channel(echo).unary_stream(f"/{SERVICE}/Count")
    call = count(StringValue(value="1"))
    assert (await asyncio.wait_for(call.read(), 5)).value == "0"
    call.cancel()
    await asyncio.wait_for(echo.cancelled.wait(), 5)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await asyncio.wait_for(call.read(), 5)
    assert failed.value.code() == grpc.StatusCode.CANCELLED


async def test_the_channel_applies_each_wrap_once_per_method_outermost_first():
    order: list[str] = []

    def named(name):
        def wrap(handler, method):
            inner = handler.unary_unary

            async def wrapped(request, context):
                order.append(name)
                return await inner(request, context)
            return handler._replace(unary_unary=wrapped)
        return wrap

    say = channel(Echo(), [named("outer"), named("inner")]).unary_unary(f"/{SERVICE}/Say")
    await asyncio.wait_for(say(StringValue(value="x")), 5)
    await asyncio.wait_for(say(StringValue(value="y")), 5)
    assert order == ["outer", "inner", "outer", "inner"]


async def test_a_stream_runs_ahead_of_its_reader_by_at_most_the_buffer_counting_each_message_of_a_batch():
    produced: list[int] = []

    async def batches(request, context):
        for i in range(20):
            produced.append(i)
            yield [StringValue(value=f"{i}.{j}") for j in range(3)]  # three messages that came together

    table = HandlerTable()
    table.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
        "Batches": grpc.unary_stream_rpc_method_handler(batches, request_deserializer=StringValue.FromString),
    }),))
    call = InProcessChannel(table, ()).unary_stream(f"/{SERVICE}/Batches")(StringValue())
    await asyncio.sleep(0.1)  # nobody reads
    # 3 batches of 3 fill a buffer of 8; the producer waits with the fourth in hand
    assert STREAM_BUFFER == 8 and produced == [0, 1, 2, 3]
    first = await asyncio.wait_for(call.read(), 5)
    assert [m.value for m in first] == ["0.0", "0.1", "0.2"]
    read = [first] + [await asyncio.wait_for(call.read(), 5) for _ in range(19)]
    assert [batch[0].value for batch in read] == [f"{i}.0" for i in range(20)]
    assert await asyncio.wait_for(call.read(), 5) is grpc.aio.EOF
