"""The quota's writes in groups: every reservation and settlement that arrived while the
previous group was being written goes into one transaction, each in a savepoint of its own,
each caller awaiting its own result.

A request's answer is released only after its settlement is durable, so a SIGKILL never
loses a request a client saw answered; a reservation is made before the request goes
upstream. Grouping keeps both to one commit and one hop to the database thread per group
instead of one per request: under load that hop and that commit were most of the database
thread's work. An op that fails (a refused reservation, a bad settlement) fails alone.

While the process is busy, a group may wait a little for company (PostgreSQL's
`commit_delay` and `commit_siblings`): a group smaller than the number of requests open is
sent once the others have queued their ops too, or once its oldest op has waited
`CommitDelay.seconds`, whichever comes first. Each group costs a wake of the database thread,
a commit and a wake of the loop: over gRPC, where grpc.aio hands the loop its calls a few at
a time, groups were of two ops, and the wakes, not the writes, were the cost. A lone request
never waits (nobody could join it), nor does any while the process has time to spare.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Callable

from server import metrics
from server.billing import limits
from server.cpu_share import CpuShare
from server.store import quota as quota_store
from server.store.db import DbWorker
from server.store.quick_init import quick_init
from server.store.quota import Settlement
from server.store.tokens import Token

log = logging.getLogger("st-ai.billing")


@dataclass(frozen=True)
class CommitDelay:
    seconds: float = 0.002  # the longest an op waits for company; 0: never waits
    busy_at: float = 0.8  # the share of one core the process uses before ops wait at all


@quick_init
@dataclass(frozen=True)
class _Op:
    run: Callable[[sqlite3.Connection], object]
    done: asyncio.Future
    settlement: Settlement | None = None  # for the ledger's metrics and the failure log
    # given what the op took when its caller stopped waiting before it was written (a
    # reservation whose client left: what it holds is given back)
    unclaimed: Callable[[object], None] | None = None


class GroupCommit:
    """No task of its own: the first op queued while nothing is being written has the group
    sent at the end of the loop's turn (so every op queued in that turn joins it), and each
    group's completion, a callback, sends the ops queued meanwhile. A task that woke for every
    group cost two task steps and a task's creation per group, on the loop's one core."""

    def __init__(self, worker: DbWorker, delay: CommitDelay = CommitDelay(0.0),
                 company: Callable[[], int] = lambda: 0, busy: Callable[[], bool] | None = None) -> None:
        """`company`: how many requests are open (each may still queue an op); `busy`: whether
        the process is busy (default: its CPU share, server/cpu_share.py)."""
        self._worker = worker
        self._pending: list[_Op] = []
        self._idle = asyncio.Event()  # cleared while a group is being written or about to be sent
        self._idle.set()
        self._delay = delay.seconds
        self._company = company
        self._busy = busy or CpuShare(delay.busy_at).busy
        self._first_queued = 0.0  # loop time of the oldest pending op
        self._waiting: asyncio.TimerHandle | None = None  # a group waiting for company

    def submit(self, settlement: Settlement) -> asyncio.Future:
        """Queue a settlement; the future resolves once it is committed (or fails)."""
        return self._queue(_Op(functools.partial(quota_store.settle_in, settlements=[settlement]),
                               asyncio.get_running_loop().create_future(), settlement))

    async def commit(self, settlement: Settlement) -> None:
        # A caller cancelled while waiting cancels only its future: the settlement stays
        # queued and is written with its group (whose result for it then goes unread).
        await self.submit(settlement)

    def reserve(self, token: Token, amount: int, tokens: int, owner: str, now: float,
                unclaimed: Callable[[limits.Taken], None] | None = None) -> asyncio.Future:
        """Queue a reservation (limits.reserve_in); the future resolves to what it took once
        that is committed, or to its refusal. A caller cancelled while waiting cancels its
        future only: the reservation is still written, and what it took goes to `unclaimed`."""
        run = functools.partial(limits.reserve_in, token=token, amount=amount, tokens=tokens, owner=owner, now=now)
        return self._queue(_Op(run, asyncio.get_running_loop().create_future(), unclaimed=unclaimed))

    def _queue(self, op: _Op) -> asyncio.Future:
        pending = self._pending
        if not pending and self._delay:
            self._first_queued = asyncio.get_running_loop().time()
        pending.append(op)
        if self._idle.is_set():
            self._idle.clear()
            asyncio.get_running_loop().call_soon(self._send)
        elif self._waiting is not None and len(pending) >= self._company():
            self._waiting.cancel()  # everyone who could join has
            self._waiting = None
            asyncio.get_running_loop().call_soon(self._send)
        return op.done

    async def run(self) -> None:
        """Until cancelled (the server's shutdown); then returns once all that was queued is
        written, so that nothing queued is lost. Ops queued later are written all the same."""
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self._idle.wait())

    def _send(self) -> None:
        self._waiting = None
        batch = self._pending
        if not batch:
            self._idle.set()
            return
        if self._delay and len(batch) < self._company() and self._busy():
            loop = asyncio.get_running_loop()
            due = self._first_queued + self._delay
            if due > loop.time():
                self._waiting = loop.call_at(due, self._send)
                return
        self._pending = []
        started = time.monotonic()
        try:
            writing = self._worker.start(quota_store.write_each, [op.run for op in batch])
        except RuntimeError as exc:  # the worker is closed: nothing can be written any more
            writing = asyncio.get_running_loop().create_future()
            writing.set_exception(exc)
        writing.add_done_callback(functools.partial(self._written, batch, started))

    def _written(self, batch: list[_Op], started: float, writing: asyncio.Future) -> None:
        if writing.exception() is None:
            self._resolve_group(batch, writing.result(), started)
            asyncio.get_running_loop().call_soon(self._send)
        else:
            _keep(asyncio.ensure_future(self._one_at_a_time(batch, writing.exception(), started)))

    async def _one_at_a_time(self, batch: list[_Op], failure: BaseException, started: float) -> None:
        # The transaction itself failed: each op gets its own, so one cause fails only its op.
        log.error("a group of %d database writes failed; writing them one at a time", len(batch),
                  exc_info=failure)
        results: list[object] = []
        for op in batch:
            try:
                results.append((await self._worker.run(quota_store.write_each, [op.run]))[0])
            except Exception as exc:
                results.append(exc)
        self._resolve_group(batch, results, started)
        self._send()

    def _resolve_group(self, batch: list[_Op], results: list[object], started: float) -> None:
        settled = sum(1 for op, result in zip(batch, results)
                      if op.settlement is not None and not isinstance(result, Exception))
        if settled:
            metrics.ledger_write(time.monotonic() - started, settled)
        for op, result in zip(batch, results):
            if isinstance(result, Exception) and op.settlement is not None:
                log.error("settlement of request %s failed: %r", op.settlement.row.request_id, result)
            _resolve(op, result)


_writing: set[asyncio.Future] = set()


def _keep(task: asyncio.Future) -> None:
    _writing.add(task)
    task.add_done_callback(_writing.discard)


def _resolve(op: _Op, result: object) -> None:
    done = op.done
    if done.done():
        if done.cancelled() and op.unclaimed is not None and not isinstance(result, Exception):
            op.unclaimed(result)
        return
    if not isinstance(result, Exception):
        done.set_result(result)
    else:
        done.set_exception(result)
        done.exception()  # a caller that stopped waiting must not leave "never retrieved" noise
