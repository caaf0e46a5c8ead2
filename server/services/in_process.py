"""In-process dispatch: `st-ai serve`'s REST bridge calling st-ai's services in the same
process, without the gRPC hop (grpc-gateway's `RegisterXHandlerServer`).

It stands in for the grpc.aio channel the bridge would use: `unary_unary` and
`unary_stream` give multi-callables whose calls answer like grpc.aio's (`await call`,
`read()`, metadata, `cancel()`, an `AioRpcError` on failure). Behind them is the very
handler the gRPC server serves, wrapped by the same interceptor wraps
(server/services/interceptors.py), so each call runs the same steps as over gRPC: call
log, draining, the unparsable-message check, memory trimming, client address and
rate-limit figures, then the servicer with its authentication, strict codec and errors.

Like grpc, each call runs in a task of its own: the call's record (server/call_record.py)
stays its own, a shutdown's cut cancels the call and not the bridge's handler, and
`cancel()` (the HTTP client left) cancels exactly the call. Request bytes go through the
handler's own parser (the same checks as bytes off the wire); response messages are handed
over as they are, with no encoding and decoding between two parts of one process."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence

import grpc

from server.services.interceptors import Wrap, behaviour, compose

# Named like the private socket's peers ("unix:..."): the same process's own bridge, which
# the edge trusts the same way (it may name its HTTP client's address, it is not refused
# while draining because it refuses new requests itself).
PEER = "unix:st-ai-in-process"
CLOSE_GRACE = 5.0  # seconds a call may take to end once the bridge closes
# messages a stream may run ahead of its reader, as flow control would allow: what the
# service produced at once is then read, and written, at once
STREAM_BUFFER = 8
_NO_DEADLINE = contextlib.nullcontext()

Metadata = Sequence[tuple[str, str | bytes]]


class HandlerTable:
    """Takes the place of a grpc server in the generated `add_XServicer_to_server`
    functions, keeping the method handlers they register."""

    def __init__(self) -> None:
        self._generic: list = []

    def add_generic_rpc_handlers(self, handlers) -> None:
        self._generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        pass  # the same handlers come through add_generic_rpc_handlers

    def handler(self, method: str) -> grpc.RpcMethodHandler | None:
        details = _CallDetails(method)
        for generic in self._generic:
            if (found := generic.service(details)) is not None:
                return found
        return None


class _CallDetails(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method, self.invocation_metadata = method, ()


class InProcessContext:
    """The parts of grpc.aio.ServicerContext that st-ai's servicers and wraps use."""

    json_answers = True  # the caller, the REST bridge, writes answers as JSON (server/services/answers.py)

    def __init__(self, metadata: Metadata, timeout: float | None) -> None:
        self._metadata = tuple(metadata)
        self._deadline = time.monotonic() + timeout if timeout is not None else None
        self.initial: Metadata | None = None
        self._initial_sent: asyncio.Event | None = None  # made only for a caller that waits
        self.trailing: Metadata = ()
        self._code: grpc.StatusCode | None = None
        self._details: str | None = None

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return PEER

    def time_remaining(self) -> float | None:
        return max(self._deadline - time.monotonic(), 0.0) if self._deadline is not None else None

    @property
    def initial_sent(self) -> asyncio.Event:
        if self._initial_sent is None:
            self._initial_sent = asyncio.Event()
            if self.initial is not None:
                self._initial_sent.set()
        return self._initial_sent

    async def send_initial_metadata(self, metadata: Metadata) -> None:
        if self.initial is not None:
            raise RuntimeError("initial metadata was already sent")
        self.initial = tuple(metadata)
        if self._initial_sent is not None:
            self._initial_sent.set()

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        self.trailing = tuple(metadata)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()) -> None:
        self._code, self._details = code, details
        if trailing_metadata:
            self.trailing = tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_details(self, details: str) -> None:
        self._details = details

    def details(self) -> str | None:
        return self._details

    def error(self, exc: BaseException) -> grpc.aio.AioRpcError:
        """The error the call ends with, as grpc.aio would raise it on the client side."""
        if isinstance(exc, grpc.aio.AbortError):
            code, details = self._code or grpc.StatusCode.UNKNOWN, self._details or ""
        elif isinstance(exc, TimeoutError):
            code, details = grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        elif isinstance(exc, asyncio.CancelledError):
            code, details = grpc.StatusCode.CANCELLED, "Locally cancelled by application!"
        else:  # what grpc answers for an exception a handler let out
            code, details = grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc).__name__}"
        return grpc.aio.AioRpcError(code, grpc.aio.Metadata(*(self.initial or ())),
                                    grpc.aio.Metadata(*self.trailing), details)


class _Call:
    """What a grpc.aio call offers the bridge, for a call running in its own task."""

    def __init__(self, context: InProcessContext, task: asyncio.Task) -> None:
        self._context, self._task = context, task

    # Metadata comes as a tuple of (key, value) pairs, not a grpc.aio.Metadata: the bridge
    # only iterates it, as it iterates grpc.aio's, and a Metadata costs a dict per call.

    async def initial_metadata(self) -> Metadata:
        if self._context.initial is None and not self._task.done():
            # sent with the first message or the answer; an error sends none
            waiter = asyncio.ensure_future(self._context.initial_sent.wait())
            try:
                await asyncio.wait((waiter, self._task), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        return self._context.initial or ()

    async def trailing_metadata(self) -> Metadata:
        if not self._task.done():  # a finished call answers at once: its request may end meanwhile
            await asyncio.wait((self._task,))
        return self._context.trailing

    def cancel(self) -> bool:
        return self._task.cancel()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def done(self) -> bool:
        return self._task.done()

    def _outcome(self) -> Any:
        """The finished task's result; a call cancelled from outside fails as grpc's do."""
        if self._task.cancelled():
            raise self._context.error(asyncio.CancelledError())
        return self._task.result()


class _UnaryCall(_Call):
    def __await__(self):
        task = self._task
        if not task.done():
            # awaiting the task hands a cancellation of the caller (its client left) on to the call
            try:
                yield from task.__await__()
            except BaseException:  # the outcome is read from the task; only the caller's own cancel counts
                if not task.done() or _current_task_cancelling():
                    raise
        return self._outcome()


class _Pipe:
    """The messages a stream has produced and its reader not yet taken; the producer waits
    while `limit` are waiting, the end is always accepted. A batch (a list: messages that
    were ready together, server/services/answers.py) is one item and counts its messages."""

    def __init__(self, limit: int) -> None:
        self._items: collections.deque = collections.deque()
        self._limit = limit
        self._held = 0  # messages waiting, a batch's each counted
        self._reader: asyncio.Future | None = None  # the reader waiting for an item
        self._writer: asyncio.Future | None = None  # the producer waiting for room

    def put_nowait(self, item: Any) -> bool:
        """Take `item` if there is room for it now; False when the producer must wait (`put`)."""
        if self._held >= self._limit:
            return False
        self._append(item)
        return True

    async def put(self, item: Any) -> None:
        while self._held >= self._limit:
            self._writer = asyncio.get_running_loop().create_future()
            try:
                await self._writer
            finally:
                self._writer = None
        self._append(item)

    def _append(self, item: Any) -> None:
        self._items.append(item)
        self._held += _messages(item)
        _wake(self._reader)

    def end(self) -> None:
        self._items.append(_END)
        _wake(self._reader)

    async def get(self) -> Any:
        while not self._items:
            self._reader = asyncio.get_running_loop().create_future()
            try:
                await self._reader
            finally:
                self._reader = None
        return self.get_nowait()

    def get_nowait(self) -> Any:
        """The next item if one is waiting, else _NOTHING."""
        if not self._items:
            return _NOTHING
        item = self._items.popleft()
        if item is not _END:
            self._held -= _messages(item)
        _wake(self._writer)
        return item


def _messages(item: Any) -> int:
    return len(item) if type(item) is list else 1


def _wake(waiter: asyncio.Future | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


_END, _NOTHING = object(), object()


class _StreamCall(_Call):
    def __init__(self, context: InProcessContext, task: asyncio.Task, pipe: _Pipe) -> None:
        super().__init__(context, task)
        self._pipe = pipe
        task.add_done_callback(lambda _: pipe.end())

    async def read(self) -> Any:
        return self._message(await self._pipe.get())

    def read_nowait(self) -> Any:
        """A message already waiting (or the end), else None; grpc.aio's calls have no such
        read. The bridge writes the messages that came together in one write."""
        item = self._pipe.get_nowait()
        return None if item is _NOTHING else self._message(item)

    def _message(self, item: Any) -> Any:
        if item is _END:
            self._pipe.end()  # every later read sees the end too
            self._outcome()  # raises the call's error, if it failed
            return grpc.aio.EOF
        return item

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (message := await self.read()) is not grpc.aio.EOF:
            yield message


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _parsed(handler: grpc.RpcMethodHandler, request: Any) -> Any:
    # bytes are parsed by the handler's own parser, which refuses what does not parse
    if isinstance(request, (bytes, bytearray)) and handler.request_deserializer is not None:
        return handler.request_deserializer(bytes(request))
    return request


async def _run(serve: Callable[[], Awaitable[Any]], context: InProcessContext, timeout: float | None) -> Any:
    """Run the call; how it fails is an AioRpcError, as on grpc's client side. A call
    without a deadline (every call of the bridge's) sets no timer."""
    limit = asyncio.timeout(timeout) if timeout is not None else _NO_DEADLINE
    try:
        async with limit:
            try:
                return await serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise context.error(exc) from None
    except TimeoutError:
        if limit is not _NO_DEADLINE and limit.expired():
            raise context.error(TimeoutError()) from None
        raise


async def _unary(handler: grpc.RpcMethodHandler, serve: Callable, request: Any, context: InProcessContext) -> Any:
    return await serve(_parsed(handler, request), context)


async def _stream(handler: grpc.RpcMethodHandler, serve: Callable, request: Any, context: InProcessContext,
                  pipe: _Pipe) -> None:
    async for message in serve(_parsed(handler, request), context):
        if context.initial is None:  # headers go with the first message, as grpc sends them
            await context.send_initial_metadata(())
        if not pipe.put_nowait(message):  # a coroutine only for a reader that fell behind
            await pipe.put(message)


class InProcessChannel:
    """The grpc.aio.Channel subset the bridge uses, dispatching to `table`'s handlers
    wrapped once per method by `wraps` (outermost first, as grpc applies interceptors)."""

    def __init__(self, table: HandlerTable, wraps: Sequence[Wrap]) -> None:
        self._table, self._wrap = table, compose(tuple(wraps))
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        # asyncio keeps only weak references to tasks: a call whose request is gone (its
        # client left) must still run to its end, settlement included
        self._running: set[asyncio.Task] = set()

    def _start(self, call: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.create_task(call)
        self._running.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # a failure nobody read (the request had gone) is not an error to report

    def _handler(self, method: str) -> grpc.RpcMethodHandler:
        handler = self._handlers.get(method)
        if handler is None:
            handler = self._table.handler(method)
            if handler is None:
                raise ValueError(f"no service has the method {method}")
            handler = self._handlers[method] = self._wrap(handler, method)
        return handler

    def unary_unary(self, method: str, request_serializer: Callable | None = None,
                    response_deserializer: Callable | None = None) -> Callable[..., _UnaryCall]:
        handler = self._handler(method)
        _, serve = behaviour(handler)

        def invoke(request: Any, metadata: Metadata = (), timeout: float | None = None, **_: Any) -> _UnaryCall:
            context = InProcessContext(metadata, timeout)
            task = self._start(_run(lambda: _unary(handler, serve, request, context), context, timeout))
            return _UnaryCall(context, task)
        return invoke

    def unary_stream(self, method: str, request_serializer: Callable | None = None,
                     response_deserializer: Callable | None = None) -> Callable[..., _StreamCall]:
        handler = self._handler(method)
        _, serve = behaviour(handler)

        def invoke(request: Any, metadata: Metadata = (), timeout: float | None = None, **_: Any) -> _StreamCall:
            context = InProcessContext(metadata, timeout)
            pipe = _Pipe(STREAM_BUFFER)
            task = self._start(_run(lambda: _stream(handler, serve, request, context, pipe), context, timeout))
            return _StreamCall(context, task, pipe)
        return invoke

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Let calls still ending (their requests were cancelled) finish their clean-up,
        settlement included, before the core behind them closes; cancel what outlasts it."""
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=grace)
