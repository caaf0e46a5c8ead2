"""The Idempotency-Key a video create or remix may carry (REST header, gRPC metadata)."""
from __future__ import annotations

import grpc

from server.errors import invalid_request

IDEMPOTENCY_KEY = "idempotency-key"
MAX_KEY_CHARS = 255


def idempotency_key(context: grpc.aio.ServicerContext) -> str | None:
    """The client's Idempotency-Key, checked."""
    for key, value in context.invocation_metadata() or ():
        if key == IDEMPOTENCY_KEY:
            if not (0 < len(value) <= MAX_KEY_CHARS) or not value.isascii() or not value.isprintable():
                raise invalid_request(f"The Idempotency-Key header must be 1-{MAX_KEY_CHARS} printable ASCII "
                                      "characters.", code="invalid_idempotency_key")
            return value
    return None
