"""Tokens of an embeddings request's input, counted by st-ai: what its reservation holds,
and what it is billed when the upstream reports no usage. Pure: no I/O."""
from __future__ import annotations

from collections.abc import Sequence

from server.billing.tokenizer import TokenTally, encoding_for


def input_tokens(inputs: Sequence[str | Sequence[int]], model: str) -> int:
    """Texts are counted with `model`'s encoding (cl100k for OpenAI's embedding models);
    an input given as token ids is as many tokens as it has ids."""
    tally = TokenTally(encoding_for(model))
    ids = 0
    for item in inputs:
        if isinstance(item, str):
            tally.add(item)
        else:
            ids += len(item)
    return tally.total() + ids
