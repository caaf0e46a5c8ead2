"""Stored Responses API responses: what `store` keeps, so `GET`/`DELETE /v1/responses/{id}`,
its input items and `previous_response_id` work on every upstream, not only OpenAI's.

A response belongs to the token that made it: every read and delete takes the token, and
another token's response is not found, exactly as one that never existed (no oracle for
ids). A response past its `expires_at` is not found either, before `prune` deletes it.

Each row keeps the request's own input items (the earlier turns of a chain are not
repeated: they are the earlier rows) and the whole response object as it was answered;
`conversation` walks `previous_response_id` back to rebuild the turns a new request
continues. Transport-free: callers reach these functions through `DbWorker.run`.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import sqlite_utils

ID_PREFIX = "resp_"
DEFAULT_RETENTION = 30 * 86_400  # seconds: as long as OpenAI keeps a stored response
MAX_CHAIN = 100  # responses a previous_response_id chain may reach back through
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 20, 100
PRUNE_BATCH = 1000

# the id prefix OpenAI gives each kind of input item; any other type gets "item_"
_ITEM_PREFIX = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}


class ResponseNotFound(LookupError):
    """No response with this id for this token (never made, another token's, deleted or expired)."""

    def __init__(self, response_id: str, param: str | None = None) -> None:
        super().__init__(f"Response with id '{_shown(response_id)}' not found.")
        self.response_id = response_id
        self.param = param


class ResponseQueryError(ValueError):
    """A request the store cannot answer as asked; `param` names the client's field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class StoredResponse:
    id: str
    token_id: int
    created_at: float
    model: str | None
    status: str
    previous_response_id: str | None
    input_items: list[dict]
    output: dict  # the whole response object, as the client got it
    usage: dict | None
    expires_at: float | None  # None: kept until deleted


@dataclass(frozen=True)
class ItemPage:
    data: list[dict]
    first_id: str | None
    last_id: str | None
    has_more: bool

    def as_dict(self) -> dict:
        return {"object": "list", "data": self.data, "first_id": self.first_id, "last_id": self.last_id,
                "has_more": self.has_more}


def new_id() -> str:
    """`resp_` and 48 hex digits, OpenAI's length; unguessable, since it is what a client
    names to read or continue the response."""
    return ID_PREFIX + secrets.token_hex(24)


def _shown(text: str) -> str:
    return text if len(text) <= 80 else text[:80] + "\u2026"


def with_item_ids(items: list[dict]) -> list[dict]:
    """The items, each with an `id` (the client's own when it gave one), so input items can
    be paged through by id."""
    return [item if isinstance(item.get("id"), str) and item["id"]
            else {"id": _ITEM_PREFIX.get(item.get("type"), "item_") + secrets.token_hex(24), **item}
            for item in items]


def create(db: sqlite_utils.Database, token_id: int, response: dict, input_items: list[dict], *,
           retention: float | None = DEFAULT_RETENTION, now: float | None = None) -> StoredResponse:
    """Store `response` (the whole object: its `id` from `new_id`, `model`, `status`,
    `previous_response_id`, `usage`) with the request's own `input_items`, kept for
    `retention` seconds (None: until deleted)."""
    now = time.time() if now is None else now
    row = {"id": response["id"], "token_id": token_id, "created_at": now, "model": response.get("model"),
           "status": response.get("status") or "completed",
           "previous_response_id": response.get("previous_response_id"),
           "input_items": json.dumps(with_item_ids(input_items)), "output": json.dumps(response),
           "usage": json.dumps(response["usage"]) if response.get("usage") is not None else None,
           "expires_at": None if retention is None else now + retention}
    with db.conn:
        db.conn.execute(f"INSERT INTO responses ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))
    return _from_row(row)


def get(db: sqlite_utils.Database, token_id: int, response_id: str, *, now: float | None = None,
        param: str | None = None) -> StoredResponse:
    now = time.time() if now is None else now
    cursor = db.conn.execute("SELECT * FROM responses WHERE id = ? AND token_id = ? "
                             "AND (expires_at IS NULL OR expires_at > ?)", [response_id, token_id, now])
    found = cursor.fetchone()
    if found is None:
        raise ResponseNotFound(response_id, param)
    return _from_row(dict(zip([d[0] for d in cursor.description], found)))


def delete(db: sqlite_utils.Database, token_id: int, response_id: str, *, now: float | None = None) -> None:
    get(db, token_id, response_id, now=now)  # another token's or an expired one: not found
    with db.conn:
        db.conn.execute("DELETE FROM responses WHERE id = ? AND token_id = ?", [response_id, token_id])


def input_items(db: sqlite_utils.Database, token_id: int, response_id: str, *, after: str | None = None,
                limit: int = LIST_LIMIT_DEFAULT, order: str = "desc", now: float | None = None) -> ItemPage:
    """A page of the response's input items, OpenAI's cursor way: `order` desc (newest
    first, the default) or asc, the items after the one with id `after` in that order."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= LIST_LIMIT_MAX:
        raise ResponseQueryError(f"limit must be an integer from 1 to {LIST_LIMIT_MAX}", "limit")
    if order not in ("asc", "desc"):
        raise ResponseQueryError("order must be 'asc' or 'desc'", "order")
    items = get(db, token_id, response_id, now=now).input_items
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ResponseQueryError(f"No input item with id '{_shown(after)}' in response '{_shown(response_id)}'.",
                                     "after")
        items = items[ids.index(after) + 1:]
    page = items[:limit]
    return ItemPage(page, page[0]["id"] if page else None, page[-1]["id"] if page else None, len(items) > limit)


def conversation(db: sqlite_utils.Database, token_id: int, previous_response_id: str, *,
                 max_depth: int = MAX_CHAIN, now: float | None = None) -> list[dict]:
    """The turns a request with `previous_response_id` continues: for each response of the
    chain, oldest first, its input items then its output items. A link that is missing
    (deleted, expired, another token's) is ResponseNotFound naming it; a chain longer than
    `max_depth` is a ResponseQueryError."""
    chain: list[StoredResponse] = []
    seen: set[str] = set()
    next_id: str | None = previous_response_id
    while next_id is not None:
        if len(chain) == max_depth or next_id in seen:
            raise ResponseQueryError(f"The conversation reaches back through more than {max_depth} responses; "
                                     "start a new one with its history as input.", "previous_response_id")
        seen.add(next_id)
        stored = get(db, token_id, next_id, now=now, param="previous_response_id")
        chain.append(stored)
        next_id = stored.previous_response_id
    turns: list[dict] = []
    for stored in reversed(chain):
        turns.extend(stored.input_items)
        turns.extend(stored.output.get("output") or [])
    return turns


def prune(db: sqlite_utils.Database, now: float | None = None, batch: int = PRUNE_BATCH) -> int:
    """Delete responses past their `expires_at`, in batches that each hold the write lock
    briefly; returns how many were deleted."""
    now = time.time() if now is None else now
    deleted = 0
    while True:
        with db.conn:
            count = db.conn.execute("DELETE FROM responses WHERE id IN (SELECT id FROM responses "
                                    "WHERE expires_at <= ? LIMIT ?)", [now, batch]).rowcount
        deleted += count
        if count < batch:
            return deleted


def _from_row(row: dict) -> StoredResponse:
    return StoredResponse(id=row["id"], token_id=row["token_id"], created_at=row["created_at"], model=row["model"],
                          status=row["status"], previous_response_id=row["previous_response_id"],
                          input_items=json.loads(row["input_items"]), output=json.loads(row["output"]),
                          usage=json.loads(row["usage"]) if row["usage"] is not None else None,
                          expires_at=row["expires_at"])
