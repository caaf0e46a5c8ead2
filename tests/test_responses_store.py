"""server/store/responses.py: stored Responses API responses, each its token's own; their
input items paged OpenAI's way; previous_response_id chains; retention and pruning; and
schema step 13 on a database the release before it left."""
from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

import pytest

from server.store import responses as store
from server.store import schema
from server.store import tokens as token_store
from server.responses_retention import parse_retention, sweep_expired
from server.store.db import DbWorker, open_db
from tests.test_cli import run

T0 = 1_800_000_000.0


@pytest.fixture
def db(tmp_path: Path):
    database = open_db(str(tmp_path / "st-ai.db"))
    yield database
    database.close()


@pytest.fixture
def alice(db) -> int:
    return token_store.create(db, "alice")[0].id


@pytest.fixture
def bob(db) -> int:
    return token_store.create(db, "bob")[0].id


def user(text: str) -> dict:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def answer(text: str, previous: str | None = None, model: str = "gpt-4o") -> dict:
    return {"id": store.new_id(), "object": "response", "created_at": int(T0), "status": "completed",
            "model": model, "previous_response_id": previous,
            "output": [{"type": "message", "id": "msg_" + text.replace(" ", "_"), "role": "assistant",
                        "status": "completed", "content": [{"type": "output_text", "text": text,
                                                            "annotations": []}]}],
            "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}


def texts(items: list[dict]) -> list[str]:
    return [item["content"][0]["text"] for item in items]


def test_ids_look_like_openais_and_never_repeat():
    ids = {store.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"resp_[0-9a-f]{48}", id_) for id_ in ids)


def test_a_stored_response_reads_back_whole_for_its_token(db, alice):
    response = answer("hello there")
    store.create(db, alice, response, [user("hi")], now=T0)
    stored = store.get(db, alice, response["id"], now=T0 + 1)
    assert stored.output == response
    assert (stored.model, stored.status, stored.usage) == ("gpt-4o", "completed", response["usage"])
    assert texts(stored.input_items) == ["hi"]
    assert stored.input_items[0]["id"].startswith("msg_")
    assert stored.expires_at == T0 + 30 * 86_400


def test_another_tokens_response_is_not_found_as_if_it_never_existed(db, alice, bob):
    response = answer("secret")
    store.create(db, alice, response, [user("hi")], now=T0)
    for read in (lambda: store.get(db, bob, response["id"], now=T0),
                 lambda: store.input_items(db, bob, response["id"], now=T0),
                 lambda: store.delete(db, bob, response["id"], now=T0),
                 lambda: store.conversation(db, bob, response["id"], now=T0)):
        with pytest.raises(store.ResponseNotFound) as missing:
            read()
        assert str(missing.value) == f"Response with id '{response['id']}' not found."
    with pytest.raises(store.ResponseNotFound) as never:
        store.get(db, bob, store.new_id(), now=T0)
    assert str(never.value).startswith("Response with id 'resp_")
    assert store.get(db, alice, response["id"], now=T0).output == response  # bob's delete did nothing


def test_a_deleted_response_is_gone_and_deleting_it_again_is_not_found(db, alice):
    response = answer("bye")
    store.create(db, alice, response, [user("hi")], now=T0)
    store.delete(db, alice, response["id"], now=T0)
    with pytest.raises(store.ResponseNotFound):
        store.get(db, alice, response["id"], now=T0)
    with pytest.raises(store.ResponseNotFound):
        store.delete(db, alice, response["id"], now=T0)


def test_a_clients_own_item_ids_are_kept_and_the_others_get_one_by_their_type(db, alice):
    items = [user("a"), {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "42"}, {**user("b"), "id": "msg_mine"}]
    response = answer("ok")
    store.create(db, alice, response, items, now=T0)
    ids = [item["id"] for item in store.get(db, alice, response["id"], now=T0).input_items]
    assert ids[0].startswith("msg_") and ids[1].startswith("fc_") and ids[2].startswith("fco_")
    assert ids[3] == "msg_mine"


@pytest.fixture
def seven_items(db, alice) -> tuple[str, list[str]]:
    response = answer("ok")
    store.create(db, alice, response, [{**user(str(n)), "id": f"msg_{n}"} for n in range(7)], now=T0)
    return response["id"], [f"msg_{n}" for n in range(7)]


def test_input_items_come_newest_first_by_default_twenty_at_most(db, alice, seven_items):
    response_id, ids = seven_items
    page = store.input_items(db, alice, response_id, now=T0)
    assert [item["id"] for item in page.data] == ids[::-1]
    assert page.as_dict() == {"object": "list", "data": page.data, "first_id": "msg_6", "last_id": "msg_0",
                              "has_more": False}


def test_paging_through_input_items_with_after_visits_each_once_in_either_order(db, alice, seven_items):
    response_id, ids = seven_items
    for order, expected in (("asc", ids), ("desc", ids[::-1])):
        seen, after, pages = [], None, 0
        while True:
            page = store.input_items(db, alice, response_id, after=after, limit=3, order=order, now=T0)
            seen += [item["id"] for item in page.data]
            pages += 1
            assert page.first_id == page.data[0]["id"] and page.last_id == page.data[-1]["id"]
            if not page.has_more:
                break
            after = page.last_id
        assert (seen, pages) == (expected, 3)


def test_a_page_that_ends_exactly_at_the_last_item_has_no_more_and_after_the_last_is_empty(db, alice, seven_items):
    response_id, _ = seven_items
    assert not store.input_items(db, alice, response_id, limit=7, now=T0).has_more
    assert store.input_items(db, alice, response_id, limit=6, now=T0).has_more
    empty = store.input_items(db, alice, response_id, after="msg_0", now=T0)
    assert (empty.data, empty.first_id, empty.last_id, empty.has_more) == ([], None, None, False)


@pytest.mark.parametrize("asked, param", [({"limit": 0}, "limit"), ({"limit": 101}, "limit"),
                                          ({"limit": True}, "limit"), ({"order": "newest"}, "order"),
                                          ({"after": "msg_nope"}, "after")])
def test_bad_paging_is_refused_naming_the_parameter(db, alice, seven_items, asked, param):
    with pytest.raises(store.ResponseQueryError) as refused:
        store.input_items(db, alice, seven_items[0], now=T0, **asked)
    assert refused.value.param == param


def test_limits_one_and_a_hundred_are_allowed(db, alice, seven_items):
    assert len(store.input_items(db, alice, seven_items[0], limit=1, now=T0).data) == 1
    assert len(store.input_items(db, alice, seven_items[0], limit=100, now=T0).data) == 7


def chain(db, token: int, turns: int) -> list[dict]:
    made, previous = [], None
    for n in range(turns):
        response = answer(f"answer {n}", previous)
        store.create(db, token, response, [user(f"question {n}")], now=T0 + n)
        made.append(response)
        previous = response["id"]
    return made


def test_a_chain_is_rebuilt_oldest_first_each_turns_input_then_its_output(db, alice):
    made = chain(db, alice, 3)
    turns = store.conversation(db, alice, made[-1]["id"], now=T0 + 10)
    assert texts(turns) == ["question 0", "answer 0", "question 1", "answer 1", "question 2", "answer 2"]
    assert [t["role"] for t in turns] == ["user", "assistant"] * 3


def test_a_missing_link_in_a_chain_is_not_found_naming_it(db, alice):
    made = chain(db, alice, 3)
    store.delete(db, alice, made[1]["id"], now=T0)
    with pytest.raises(store.ResponseNotFound) as missing:
        store.conversation(db, alice, made[2]["id"], now=T0 + 10)
    assert missing.value.response_id == made[1]["id"]
    assert missing.value.param == "previous_response_id"


def test_a_chain_longer_than_the_bound_is_refused_clearly(db, alice):
    made = chain(db, alice, 5)
    assert len(store.conversation(db, alice, made[-1]["id"], max_depth=5, now=T0 + 10)) == 10
    with pytest.raises(store.ResponseQueryError) as refused:
        store.conversation(db, alice, made[-1]["id"], max_depth=4, now=T0 + 10)
    assert refused.value.param == "previous_response_id"
    assert "more than 4 responses" in str(refused.value)


def test_an_expired_response_is_not_found_before_and_after_the_prune_deletes_it(db, alice):
    old, kept, forever = answer("old"), answer("kept"), answer("forever")
    store.create(db, alice, old, [user("a")], retention=86_400, now=T0)
    store.create(db, alice, kept, [user("b")], retention=30 * 86_400, now=T0)
    store.create(db, alice, forever, [user("c")], retention=None, now=T0)
    later = T0 + 2 * 86_400
    with pytest.raises(store.ResponseNotFound):
        store.get(db, alice, old["id"], now=later)
    assert store.prune(db, now=later, batch=1) == 1
    assert db["responses"].count == 2
    assert store.get(db, alice, kept["id"], now=later).output == kept
    assert store.prune(db, now=T0 + 400 * 86_400) == 1
    assert store.get(db, alice, forever["id"], now=T0 + 400 * 86_400).expires_at is None


def test_pruning_many_responses_goes_in_batches_and_deletes_each_once(db, alice):
    for n in range(25):
        store.create(db, alice, answer(str(n)), [user(str(n))], retention=86_400, now=T0)
    assert store.prune(db, now=T0 + 86_400, batch=10) == 25
    assert db["responses"].count == 0


def test_step_13_keeps_a_v12_databases_rows_and_adds_the_new_columns_empty(tmp_path):
    path = str(tmp_path / "st-ai.db")
    conn = sqlite3.connect(path)
    schema.migrate(conn, schema.MIGRATIONS[:12])
    conn.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO tokens (name, key_hash, created_at) VALUES ('t', 'h', 1)")
    conn.execute("INSERT INTO channels (name, type, base_url, key, models, created_at) "
                 "VALUES ('c', 'openai', 'http://127.0.0.1:9', 'k', '[\"m\"]', 1)")
    conn.execute("INSERT INTO ledger (ts, token_id, model, kind, status, cost) VALUES (?, 1, 'm', 'chat', 200, 7)",
                 [T0])
    conn.commit()
    conn.close()

    db = open_db(path)
    try:
        assert schema.version(db.conn) == schema.LATEST >= 13
        assert db.conn.execute("SELECT model, kind, cost, api FROM ledger").fetchall() == [("m", "chat", 7, None)]
        assert db.conn.execute("SELECT name, native_apis FROM channels").fetchall() == [("c", None)]
        assert db["responses"].count == 0
        assert "api" in db["usage_daily"].columns_dict
    finally:
        db.close()


# -- retention: the option and the background sweep ------------------------------------------

@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86_400), ("12h", 12 * 3600), ("forever", None),
                                           (" Forever ", None)])
def test_the_retention_option_takes_a_duration_or_forever(text, seconds):
    assert parse_retention(text) == seconds


@pytest.mark.parametrize("text", ["30", "0d", "-1d", "never", ""])
def test_a_retention_that_is_no_duration_is_refused(text):
    with pytest.raises(ValueError):
        parse_retention(text)


def test_serve_refuses_a_bad_retention_in_one_line(tmp_path):
    result = run("serve", "--responses-retention", "30", db=str(tmp_path / "st-ai.db"))
    assert result.code == 2 and "--responses-retention" in result.err and "'forever'" in result.err
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.timeout(30)
async def test_the_background_sweep_deletes_expired_responses_and_keeps_the_others(tmp_path):
    path = str(tmp_path / "st-ai.db")
    db = open_db(path)
    token = token_store.create(db, "alice")[0].id
    expired, live = answer("expired"), answer("live")
    store.create(db, token, expired, [user("a")], retention=1, now=time.time() - 10)
    store.create(db, token, live, [user("b")])
    db.close()
    worker = await asyncio.to_thread(DbWorker, path)
    sweep = asyncio.create_task(sweep_expired(worker, interval=0.05))
    try:
        for _ in range(200):
            if await worker.run(lambda d: d["responses"].count) == 1:
                break
            await asyncio.sleep(0.05)
        assert [r.id for r in await worker.run(lambda d: [store.get(d, token, live["id"])])] == [live["id"]]
        assert await worker.run(lambda d: d["responses"].count) == 1
    finally:
        sweep.cancel()
        await asyncio.gather(sweep, return_exceptions=True)
        await asyncio.to_thread(worker.close)
