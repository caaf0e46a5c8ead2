"""Video money: a create is admitted like any request (quota, rate limits, `--unpriced
deny`) with the cost of the seconds it asks upstream; its reservation then belongs to the
task and is settled exactly once, when the task ends:

- completed: billed its cost (token `used` and the create's ledger row, with the seconds);
- failed, timed out, deleted while open: refunded (reservation released, ledger row at 0);
- never answered (the create's call was cancelled or ran past its deadline before the id
  went out): dropped, never submitted, never billed.

Each of these is one transaction with the task's own state change (server/store/video_money.py).
Transport-free, like the relays.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import AsyncIterator

from server import call_record
from server.billing.admission import Admission, Ticket
from server.billing.cost import video_cost
from server.store import video_money
from server.store.db import DbWorker
from server.store.quota import LedgerRow
from server.store.tokens import Token
from server.store.videos import VideoTask

# The ledger status of a task that did not complete, by how it ended.
FAILED = 502        # the provider failed it, or st-ai could not use its video
TIMED_OUT = 504
DELETED = 499       # the client deleted it before it completed
NEVER_ANSWERED = 499


def seconds_text(duration: float | int | None) -> str:
    duration = float(duration or 0)
    return str(int(duration)) if duration.is_integer() else str(duration)


def charge(model: str, asked: dict):
    """The cost of a task's video: the seconds and size asked upstream (`asked`)."""
    size = f"{asked['width']}x{asked['height']}" if asked.get("width") and asked.get("height") else None
    return lambda price: video_cost(price, model, seconds=seconds_text(asked.get("duration")), size=size)


@dataclass(frozen=True)
class Ending:
    """How a task ended, for its ledger row."""
    status: int
    error_code: str | None = None
    billed: bool = False  # completed: its cost is booked


class VideoBilling:
    def __init__(self, worker: DbWorker, admission: Admission) -> None:
        self._worker, self._admission = worker, admission

    @contextlib.asynccontextmanager
    async def request(self, token: Token, model: object = None) -> AsyncIterator[Ticket]:
        """A create or remix, opened like every request that uses a model (its refusals are
        booked there)."""
        async with self._admission.request(token, "video", model) as ticket:
            yield ticket

    async def admit(self, ticket: Ticket, model: str, asked: dict) -> Ticket:
        """Reserve the task's cost, or refuse the create (429 insufficient_quota, ...)."""
        return await self._admission.admit(ticket, model, charge(model, asked))

    @staticmethod
    def stamp(task: VideoTask, ticket: Ticket) -> VideoTask:
        """The task takes over the ticket: its reservation, cost and request id."""
        record = call_record.current()
        task.reservation_id, task.charge = ticket.reservation_id, ticket.reserved
        task.request_id = ticket.request_id
        task.client_address = record.client_address if record else None
        return task

    def handed_over(self, ticket: Ticket) -> None:
        """The task (or the task an Idempotency-Key named) settles it now, not the ticket."""
        self._admission.hand_over(ticket)

    def abandon(self, ticket: Ticket, status: int, error_code: str | None) -> None:
        self._admission.abandon(ticket, status, error_code)

    async def insert(self, task: VideoTask, key_since: float) -> VideoTask | None:
        return await self._worker.run(video_money.insert, task, task.reservation_id, key_since)

    async def complete(self, task_id: str, changes: dict) -> bool:
        changes = {**changes, "status": "completed"}
        return await self._worker.run(video_money.finish, task_id, changes, booking(Ending(200, billed=True)))

    async def fail(self, task_id: str, status: int, code: str, message: str) -> bool:
        changes = {"status": "failed", "error_code": code, "error_message": message}
        return await self._worker.run(video_money.finish, task_id, changes, booking(Ending(status, code)))

    async def delete(self, task_id: str) -> VideoTask | None:
        return await self._worker.run(video_money.delete, task_id, booking(Ending(DELETED, "video_deleted")))

    async def give_up(self, task_id: str) -> bool:
        return await self._worker.run(video_money.give_up, task_id,
                                      booking(Ending(NEVER_ANSWERED, "not_submitted")))

    async def drop(self, task_id: str) -> bool:
        return await self._worker.run(video_money.drop, task_id, booking(Ending(NEVER_ANSWERED, "client_closed")))


def booking(ending: Ending) -> video_money.Booking:
    def book(task: VideoTask) -> LedgerRow:
        asked = task.asked or {}
        now = time.time()
        row = LedgerRow(ts=now, request_id=task.request_id, token_id=task.token_id, model=task.model,
                        upstream_model=task.upstream_model, channel_id=task.channel_id, kind="video",
                        status=ending.status, cost=(task.charge or 0) if ending.billed else 0,
                        video_seconds=seconds_text(asked.get("duration")),
                        latency_ms=max(0, int((now - task.created_at) * 1000)), error_code=ending.error_code,
                        client_address=task.client_address)
        return row
    return book
