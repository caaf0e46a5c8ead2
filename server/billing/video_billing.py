"""Video money: a create is admitted like any request (quota, rate limits, `--unpriced
deny`) with the cost of the seconds it asks upstream (the most any of its candidate
channels would ask); its reservation then belongs to the task and is settled exactly
once, when the task ends:

- completed: billed its cost (token `used` and the create's ledger row, with the seconds
  and the create's upstream attempts);
- failed, timed out, deleted while open: refunded (reservation released, ledger row at 0);
- never accepted (every channel failed, the client left before one accepted, or st-ai
  stopped meanwhile): discarded, never seen by its client, never billed (ledger row at 0
  with its attempts).

Each of these is one transaction with the task's own state change (server/store/video_money.py).
Transport-free, like the relays.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Sequence

from server import call_record
from server.billing.admission import Admission, Ticket
from server.billing.cost import Unpriced, video_cost, video_token_cost
from server.billing.prices import ModelPrice
from server.providers.video_shape import RESOLUTION_HEIGHTS
from server.store import video_money
from server.store.db import DbWorker
from server.store.quota import Attempt, LedgerRow
from server.store.tokens import Token
from server.store.videos import VideoTask

# The ledger status of a task that did not complete, by how it ended.
FAILED = 502        # the provider failed it, or st-ai could not use its video
TIMED_OUT = 504
DELETED = 499       # the client deleted it before it completed
INTERRUPTED = 499   # st-ai stopped while the task was being submitted


def seconds_text(duration: float | int | None) -> str:
    duration = float(duration or 0)
    return str(int(duration)) if duration.is_integer() else str(duration)


def estimated_tokens(asked: dict) -> int:
    """The most tokens a token-billed video can count, by Ark's formula (width x height x
    fps x seconds / 1024); a shape that follows the image is taken at its widest (21:9)."""
    width, height = asked.get("width"), asked.get("height")
    if not (width and height):
        height = RESOLUTION_HEIGHTS.get(str(asked.get("resolution") or "").lower(), 1080)
        width = math.ceil(height * 21 / 9)
    seconds = math.ceil(float(asked.get("duration") or 0))
    return math.ceil(int(width) * int(height) * int(asked.get("fps") or 24) * seconds / 1024)


def charge(model: str, asked: dict):
    """The cost of a task's video: the seconds and size asked upstream (`asked`), or where
    the operator prices the model by output tokens (and not by seconds), the most tokens
    it can count."""
    # a task whose shape follows its image reports no pixel size, only a resolution
    size = (f"{asked['width']}x{asked['height']}" if asked.get("width") and asked.get("height")
            else asked.get("resolution") if isinstance(asked.get("resolution"), str) else None)

    def cost(price: ModelPrice | None) -> int:
        if price is not None and price.output is not None and not price.per_second:
            return video_token_cost(price, model, completion_tokens=estimated_tokens(asked))
        return video_cost(price, model, seconds=seconds_text(asked.get("duration")), size=size)
    return cost


def charge_any(model: str, asked: Sequence[dict]):
    """The reservation of a create that may go to any of several channels, each asking
    its own seconds and size: the most of them."""
    costs = [charge(model, one) for one in asked]
    return lambda price: max(cost(price) for cost in costs)


@dataclass(frozen=True)
class Ending:
    """How a task ended, for its ledger row."""
    status: int
    error_code: str | None = None
    billed: bool = False  # completed: its cost is booked
    # a completed task's real cost, from the tasks' own row (None: what it reserved)
    cost: Callable[[VideoTask], int | None] | None = None
    completion_tokens: int = 0  # what the provider counted, where it counts tokens


class VideoBilling:
    def __init__(self, worker: DbWorker, admission: Admission) -> None:
        self._worker, self._admission = worker, admission

    @contextlib.asynccontextmanager
    async def request(self, token: Token, model: object = None) -> AsyncIterator[Ticket]:
        """A create or remix, opened like every request that uses a model (its refusals are
        booked there)."""
        async with self._admission.request(token, "video", model) as ticket:
            yield ticket

    async def admit(self, ticket: Ticket, model: str, asked: Sequence[dict]) -> Ticket:
        """Reserve the task's cost (`asked`: what each channel it may go to would ask; the
        most of them), or refuse the create (429 insufficient_quota, ...)."""
        return await self._admission.admit(ticket, model, charge_any(model, asked))

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

    def cost(self, ticket: Ticket, model: str, asked: dict) -> int:
        """What the task a channel accepted costs when it completes: the seconds and size
        that channel asked (at most what was reserved)."""
        return min(ticket.reserved, self._admission.cost(ticket.price, model, charge(model, asked)))

    async def insert(self, task: VideoTask, key_since: float) -> VideoTask | None:
        return await self._worker.run(video_money.insert, task, task.reservation_id, key_since)

    async def accept(self, task_id: str, changes: dict) -> VideoTask | None:
        return await self._worker.run(video_money.accept, task_id, changes)

    async def complete(self, task_id: str, changes: dict, usage: dict | None = None) -> bool:
        """`usage`: the tokens the provider counted, which a model priced by tokens is billed."""
        changes = {**changes, "status": "completed"}
        tokens = (usage or {}).get("completion_tokens")
        ending = Ending(200, billed=True)
        if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
            ending = Ending(200, billed=True, cost=lambda task: self._token_cost(task, tokens),
                            completion_tokens=tokens)
        return await self._worker.run(video_money.finish, task_id, changes, booking(ending))

    def _token_cost(self, task: VideoTask, tokens: int) -> int | None:
        try:
            return video_token_cost(self._admission.price(task.model), task.model, completion_tokens=tokens)
        except Unpriced:
            return None  # priced otherwise (by seconds), or not at all: what was reserved

    async def fail(self, task_id: str, status: int, code: str, message: str) -> bool:
        changes = {"status": "failed", "error_code": code, "error_message": message}
        return await self._worker.run(video_money.finish, task_id, changes, booking(Ending(status, code)))

    async def delete(self, task_id: str) -> VideoTask | None:
        return await self._worker.run(video_money.delete, task_id, booking(Ending(DELETED, "video_deleted")))

    async def discard(self, task_id: str, status: int, code: str | None, attempts: Sequence[Attempt]) -> bool:
        """A task no channel accepted: it goes, booked at zero with how its create ended
        and the attempts it made."""
        return await self._worker.run(video_money.drop, task_id, booking(Ending(status, code)), tuple(attempts))

    async def interrupted(self, task_id: str) -> bool:
        """A task whose process stopped while submitting it (its client got no answer)."""
        return await self._worker.run(video_money.drop, task_id, booking(Ending(INTERRUPTED, "not_submitted")))


def booking(ending: Ending) -> video_money.Booking:
    def book(task: VideoTask) -> LedgerRow:
        asked = task.asked or {}
        now = time.time()
        cost = 0
        if ending.billed:
            real = ending.cost(task) if ending.cost is not None else None
            cost = (task.charge or 0) if real is None else real
        row = LedgerRow(ts=now, request_id=task.request_id, token_id=task.token_id, model=task.model,
                        upstream_model=task.upstream_model, channel_id=task.channel_id, kind="video",
                        status=ending.status, cost=cost,
                        completion_tokens=ending.completion_tokens,
                        video_seconds=seconds_text(asked.get("duration")),
                        latency_ms=max(0, int((now - task.created_at) * 1000)), error_code=ending.error_code,
                        client_address=task.client_address)
        return row
    return book
