"""Which channels may serve a request, in the order to try them."""
from __future__ import annotations

import itertools
from collections.abc import Collection
import random

from server import call_record
from server.catalog import Snapshot
from server.errors import invalid_request, model_not_allowed, model_not_found, no_channel
from server.store.channels import Channel
from server.store.tokens import Token


def visible_models(snapshot: Snapshot, token: Token) -> list[str]:
    return sorted(m for m in snapshot.channels_by_model if token.allows(m))


def candidates(snapshot: Snapshot, token: Token, model: str, capability: Collection[str]) -> list[Channel]:
    """Channels to try for `model`: best priority first, in weighted random order within
    a priority so that load spreads as the weights say; only channels whose provider has
    `capability` (the provider types) count. Raises 404 / 403 / 503 as the contract says."""
    call_record.note_model(model)
    channels = snapshot.channels_by_model.get(model)
    if not channels:
        if model in snapshot.resting_models and token.allows(model):
            raise no_channel(model)
        raise model_not_found(model)
    if not token.allows(model):
        raise model_not_allowed(model)
    usable = [c for c in channels if c.type in capability]
    if not usable:
        raise no_channel(model)
    ordered: list[Channel] = []
    for _, group in itertools.groupby(usable, key=lambda c: c.priority):
        ordered.extend(weighted_order(list(group)))
    return ordered


def weighted_order(channels: list[Channel]) -> list[Channel]:
    """A random order in which each channel comes first with a chance proportional to its
    weight (and so on for the rest: weighted sampling without replacement, by sorting on
    random() ** (1 / weight)). Weight 0 is a standby: after every weighted channel of its
    tier, so it serves only when they are unusable."""
    keyed = [(random.random() ** (1.0 / c.weight) if c.weight > 0 else -random.random(), c) for c in channels]
    return [c for _, c in sorted(keyed, key=lambda kc: kc[0], reverse=True)]


def default_model(snapshot: Snapshot, token: Token, capability: Collection[str], what: str) -> str:
    """The first model the token may use that a channel with `capability` serves, for
    requests that leave `model` out (the documented image and video APIs allow it)."""
    for model in visible_models(snapshot, token):
        if any(c.type in capability for c in snapshot.channels_by_model[model]):
            return model
    raise invalid_request(f"'model' is required: no {what} model is available to this token.", param="model")
