"""One Responses API request as the relay carries it (server/apis/responses/exchange.py),
without servers: what a native channel is sent and what its answers and events become,
what a translated channel's chunks become, and what either is billed as. Every answer and
event is read by the official SDK's types; the fake OpenAI server's Responses API
(tests/fakes/openai_responses.py) makes the native side, so its shapes are checked here too."""
from __future__ import annotations

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from server.apis.responses import carry
from server.apis.responses.exchange import ResponsesExchange, chat_usage
from server.apis.responses.request import read_request
from server.errors import upstream_failed
from tests.fakes import openai_responses

EVENTS = TypeAdapter(ResponseStreamEvent)
RESPONSE_ID, CREATED = "resp_" + "a" * 48, 1_700_000_000
HISTORY = [{"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
           {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA-openai-state"},
           {"id": "rs_2", "type": "reasoning", "summary": []},
           {"id": "rs_3", "type": "reasoning", "summary": [], "encrypted_content": carry.pack([{"type": "thinking",
                                                                                              "thinking": "x"}], {})},
           {"id": "ws_1", "type": "web_search_call", "status": "completed",
            "action": {"type": "search", "query": "news"}},
           {"id": "msg_2", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}]


def exchange(body: dict, history: list[dict] | None = None, stream: bool = False) -> ResponsesExchange:
    body = {"model": "gpt-public", **body}
    return ResponsesExchange(read_request(body), body, history or [], RESPONSE_ID, CREATED, stream)


def valid_events(events: list[dict]) -> list:
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return [EVENTS.validate_python(e) for e in events]


def test_the_native_body_is_the_clients_with_the_whole_conversation_and_nothing_stored_upstream():
    made = exchange({"input": "And now?", "previous_response_id": "resp_prev", "metadata": {"k": "v"},
                     "temperature": 0.2, "tools": [{"type": "web_search"}]}, HISTORY)
    sent = made.native_body("gpt-upstream")
    assert sent["model"] == "gpt-upstream" and sent["store"] is False and "previous_response_id" not in sent
    assert (sent["metadata"], sent["temperature"], sent["tools"]) == ({"k": "v"}, 0.2, [{"type": "web_search"}])
    assert "stream" not in sent
    # OpenAI's own reasoning state goes back; reasoning without it, or with st-ai's carrier, cannot
    assert [i.get("id") for i in sent["input"]] == [None, "rs_1", "ws_1", None, None]
    assert [i["type"] for i in sent["input"]] == ["message", "reasoning", "web_search_call", "message", "message"]
    assert sent["input"][-1]["content"] == [{"type": "input_text", "text": "And now?"}]
    assert sent["include"] == ["reasoning.encrypted_content"]


def test_a_streamed_native_body_asks_for_a_stream_and_a_plain_one_keeps_include_as_given():
    made = exchange({"input": "Hi", "stream": True, "include": ["message.output_text.logprobs"]}, stream=True)
    sent = made.native_body("m")
    assert sent["stream"] is True and sent["include"] == ["message.output_text.logprobs"]
    assert "include" not in exchange({"input": "Hi"}).native_body("m")


def test_a_built_in_tool_is_refused_for_translation_yet_the_request_is_sized_for_admission():
    made = exchange({"input": "News?", "tools": [{"type": "web_search"}], "max_output_tokens": 300})
    assert made.refusal is not None and made.refusal.http_status == 400 and made.refusal.param == "tools[0].type"
    assert made.chat["model"] == "gpt-public" and made.chat["max_completion_tokens"] == 300
    assert "News?" in made.chat["messages"][0]["content"]


def test_translation_carries_history_chat_can_say_and_leaves_built_in_calls_out():
    made = exchange({"input": "And now?", "instructions": "Be brief."}, HISTORY)
    assert made.refusal is None
    assert made.chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                     {"role": "assistant", "content": "Hello!",
                                      "thinking_blocks": [{"type": "thinking", "thinking": "x"}]},
                                     {"role": "user", "content": "And now?"}]


def test_a_native_answer_is_st_ais_response_and_bills_as_its_usage():
    body = {"model": "gpt-upstream", "input": "Hi", "reasoning": {"effort": "low"}}
    upstream = openai_responses.response(body, openai_responses.output(body))
    upstream["usage"] = {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 12, "cache_write_tokens": 0},
                         "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 4}, "total_tokens": 39}
    made = exchange({"input": "Hi", "previous_response_id": "resp_prev", "store": False})
    answer = Response.model_validate(made.native_answer(upstream))
    assert (answer.id, answer.created_at, answer.model, answer.previous_response_id) == (
        RESPONSE_ID, CREATED, "gpt-public", "resp_prev")
    assert made.native_answer(upstream)["store"] is False
    metered = made.metered(upstream)
    assert metered["usage"] == {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39,
                                "prompt_tokens_details": {"cached_tokens": 12, "cache_write_tokens": 0},
                                "completion_tokens_details": {"reasoning_tokens": 4}}
    assert "Hello from the fake Responses API." in metered["choices"][0]["message"]["content"]
    assert chat_usage({"input_tokens": "many"}) is None


def test_native_events_are_renumbered_made_st_ais_and_metered():
    body = {"model": "gpt-upstream", "input": "Hi", "tools": [{"type": "web_search"}], "stream": True}
    upstream = openai_responses.events(openai_responses.response(body, openai_responses.output(body)))
    valid_events(upstream)  # the fake streams what the SDK reads
    events = exchange({"input": "Hi"}, stream=True).native_events()
    out = [e for item in upstream for e in events.feed(item)]
    parsed = valid_events(out)
    assert {p.response.id for p in parsed if hasattr(p, "response")} == {RESPONSE_ID}
    assert events.finish({}) == []  # the upstream's response.completed ended it
    deltas = [events.metered(item) for item in upstream if item["type"] == "response.output_text.delta"]
    assert "".join(d["choices"][0]["delta"]["content"] for d in deltas) == "Hello from the fake Responses API."
    assert events.metered(upstream[-1])["usage"]["prompt_tokens"] == upstream[-1]["response"]["usage"]["input_tokens"]
    assert events.metered(upstream[0]) is None


def test_a_native_stream_that_breaks_ends_with_an_error_and_a_failed_response_holding_what_was_done():
    body = {"model": "gpt-upstream", "input": "Hi", "tools": [{"type": "web_search"}], "stream": True}
    upstream = openai_responses.events(openai_responses.response(body, openai_responses.output(body)))
    cut = next(i for i, e in enumerate(upstream) if e["type"] == "response.output_item.done") + 1
    events = exchange({"input": "Hi"}, stream=True).native_events()
    out = [e for item in upstream[:cut] for e in events.feed(item)]
    out += events.fail(upstream_failed("The upstream service failed mid-stream: overloaded"))
    parsed = valid_events(out)
    assert [p.type for p in parsed[-2:]] == ["error", "response.failed"]
    failed = parsed[-1].response
    assert failed.status == "failed" and [i.type for i in failed.output] == ["web_search_call"]
    assert failed.id == RESPONSE_ID and "overloaded" in failed.error.message


def test_a_native_stream_that_ends_without_its_response_fails():
    body = {"model": "gpt-upstream", "input": "Hi", "stream": True}
    upstream = openai_responses.events(openai_responses.response(body, openai_responses.output(body)))
    events = exchange({"input": "Hi"}, stream=True).native_events()
    out = [e for item in upstream[:-1] for e in events.feed(item)] + events.finish({})
    assert [p.type for p in valid_events(out)[-2:]] == ["error", "response.failed"]


def test_translated_events_open_with_created_before_the_first_content_and_carry_the_id():
    events = exchange({"input": "Hi"}, stream=True).translated_events()
    assert events.feed({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}) == []
    first = events.feed({"choices": [{"index": 0, "delta": {"content": "Hel"}}]})
    rest = events.feed({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]})
    rest += events.finish({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    parsed = valid_events(first + rest)
    assert [p.type for p in parsed[:2]] == ["response.created", "response.in_progress"]
    assert parsed[-1].type == "response.completed" and parsed[-1].response.id == RESPONSE_ID
    assert parsed[-1].response.output_text == "Hello" and parsed[-1].response.usage.total_tokens == 5


@pytest.mark.parametrize("ending", ["finish", "fail"])
def test_a_translated_stream_that_never_made_content_still_opens_before_it_ends(ending):
    events = exchange({"input": "Hi"}, stream=True).translated_events()
    out = (events.finish({"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}) if ending == "finish"
           else events.fail(upstream_failed()))
    parsed = valid_events(out)
    assert [p.type for p in parsed[:2]] == ["response.created", "response.in_progress"]
    assert parsed[-1].type == ("response.completed" if ending == "finish" else "response.failed")
