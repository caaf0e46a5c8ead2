"""`previous_response_id` on any upstream: the stored conversation and the new input as
one item list, sent whole, since only OpenAI's own Responses API keeps state. Pure."""
from __future__ import annotations

# Output item types that are the model's turn and go back as history; a stored response
# holds only these (answer.py makes no others).
HISTORY_OUTPUTS = frozenset({"message", "function_call", "reasoning"})


def conversation(previous_input: list[dict], previous_output: list[dict], new_input: list[dict]) -> list[dict]:
    """The earlier response's input items, its output items, then the new input. The route
    stores this whole list as the new response's input, so one stored response gives the
    conversation up to it. The earlier instructions are not carried over, as OpenAI
    documents: each request's `instructions` stand alone."""
    kept = [item for item in previous_output if item.get("type") in HISTORY_OUTPUTS]
    return [*previous_input, *kept, *new_input]


def as_listed(items: list[dict]) -> list[dict]:
    """Input items as OpenAI keeps and lists them: a message's text content as one text
    part (`input_text`, or `output_text` for the assistant's)."""
    return [{**item, "content": [{"type": "output_text" if item.get("role") == "assistant" else "input_text",
                                  "text": item["content"]}]}
            if item.get("type") == "message" and isinstance(item.get("content"), str) else item
            for item in items]
