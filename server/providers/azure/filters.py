"""Azure OpenAI's content-filter annotations, taken out of what it answers.

Azure adds `prompt_filter_results` to an answer, `content_filter_results` (and, in its
asynchronous filter mode, `content_filter_offsets`) to each choice and image, and opens
every stream with a chunk that holds only the prompt's filter results (no choices, an
empty id and model); in asynchronous mode it also sends chunks that hold only
annotations. None of it is part of OpenAI's API: st-ai answers the same shape whichever
channel served a model (a failover must not change it), and the OpenAI SDK's models
would carry the extra fields without using them. What a filter decided still reaches
the client the OpenAI way: a `finish_reason` of "content_filter", or a 400
`content_filter` error (errors.py). A chunk left with nothing for the client is dropped,
so a stream's first event is its first real chunk (time to first token, and the
relay's first-byte rule, count from there)."""
from __future__ import annotations

ANSWER_FIELDS = ("prompt_filter_results", "prompt_annotations")  # the latter: older API versions' name
CHOICE_FIELDS = ("content_filter_results", "content_filter_offsets")
IMAGE_FIELDS = ("content_filter_results", "prompt_filter_results")


def _without(item: dict, fields: tuple[str, ...]) -> dict:
    return {k: v for k, v in item.items() if k not in fields} if any(f in item for f in fields) else item


def answer(completion: dict) -> dict:
    """A `chat.completion` without Azure's annotations."""
    completion = _without(completion, ANSWER_FIELDS)
    choices = completion.get("choices")
    if isinstance(choices, list):
        completion = completion | {"choices": [_without(c, CHOICE_FIELDS) if isinstance(c, dict) else c
                                               for c in choices]}
    return completion


def chunk(event: dict) -> dict | None:
    """A `chat.completion.chunk` without Azure's annotations; None when nothing is left
    for the client (a filter-results-only chunk)."""
    event = _without(event, ANSWER_FIELDS)
    choices = event.get("choices")
    if not isinstance(choices, list):
        return event
    kept = [_without(c, CHOICE_FIELDS) for c in choices if isinstance(c, dict)]
    kept = [c for c in kept if _carries_something(c)]
    if not kept and not event.get("usage"):
        return None
    return event | {"choices": kept}


def _carries_something(choice: dict) -> bool:
    return bool(choice.get("delta")) or choice.get("finish_reason") is not None or bool(choice.get("logprobs"))


def image_answer(generated: dict) -> dict:
    """An images answer without Azure's annotations on each image."""
    data = generated.get("data")
    if not isinstance(data, list):
        return generated
    return generated | {"data": [_without(item, IMAGE_FIELDS) if isinstance(item, dict) else item for item in data]}
