"""Whether a unary answer reached its client, as far as the server can know: a new video
task is submitted upstream only once the answer carrying its id went out.

grpc.aio runs a call's done callbacks once the call is over. The answer went out when the
handler returned and the status was sent OK with the deadline not passed. A call cancelled
(the client left, the bridge's client left) or out of time before that never sent it.

What remains: the status may be sent just before the client gives up (its deadline fires
while the answer is on its way). To keep that window small, an answer that would leave with
less than ANSWER_MARGIN of the call's deadline is not sent: the call fails with
DEADLINE_EXCEEDED and the task is dropped.
"""
from __future__ import annotations

from typing import Callable

import grpc

from server.errors import GatewayError, invalid_request

ANSWER_MARGIN = 0.1  # seconds of the deadline an answer must still have when it leaves
IDEMPOTENCY_KEY = "idempotency-key"
MAX_KEY_CHARS = 255


def too_late() -> GatewayError:
    return GatewayError(504, "The call's deadline was too close to answer it; nothing was created.",
                        "deadline_exceeded", type="timeout_error")


def went_out(context: grpc.aio.ServicerContext) -> bool:
    remaining = context.time_remaining()
    return (context.done() and context.code() in (None, grpc.StatusCode.OK)
            and (remaining is None or remaining > 0))


def on_answer(context: grpc.aio.ServicerContext, task_id: str, answered: Callable[[str, bool], None]) -> None:
    """Tell `answered(task_id, went_out)` once the call is over; refuse now (and tell it
    False) when too little of the deadline is left for the answer to arrive."""
    remaining = context.time_remaining()
    if remaining is not None and remaining < ANSWER_MARGIN:
        answered(task_id, False)
        raise too_late()
    context.add_done_callback(lambda ctx: answered(task_id, went_out(ctx)))


def idempotency_key(context: grpc.aio.ServicerContext) -> str | None:
    """The client's Idempotency-Key (REST header, gRPC metadata), checked."""
    for key, value in context.invocation_metadata() or ():
        if key == IDEMPOTENCY_KEY:
            if not (0 < len(value) <= MAX_KEY_CHARS) or not value.isascii() or not value.isprintable():
                raise invalid_request(f"The Idempotency-Key header must be 1-{MAX_KEY_CHARS} printable ASCII "
                                      "characters.", code="invalid_idempotency_key")
            return value
    return None
