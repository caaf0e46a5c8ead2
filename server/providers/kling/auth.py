"""Kling's request signing: a short-lived JWT (HS256) made from the channel's
"ACCESS_KEY:SECRET_KEY" key. Tokens are cached until shortly before they expire,
because signing on every poll of every task would be wasted work."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Callable

import orjson

from server.errors import upstream_failed

LIFETIME = 1800      # seconds; Kling's own sample signs for 30 minutes
NOT_BEFORE_SLACK = 5  # nbf a little in the past, for clock skew (Kling's sample)
REFRESH_MARGIN = 300  # replace a cached token this long before it expires


def split_key(key: str) -> tuple[str, str]:
    """The access and secret keys; the secret may itself hold a colon."""
    access, sep, secret = key.partition(":")
    if not sep or not access.strip() or not secret.strip():
        # Never echo the key: say only what shape it should have. Not retryable: a
        # misconfigured channel does not mend itself while a task waits.
        raise upstream_failed("The Kling channel's key is not in the form ACCESS_KEY:SECRET_KEY.",
                              retryable=False)
    return access.strip(), secret.strip()


def sign(access_key: str, secret_key: str, now: float) -> tuple[str, int]:
    """A fresh token and its expiry (Unix seconds)."""
    issued = int(now)
    exp = issued + LIFETIME
    # RFC 7519 by hand: one fixed algorithm needs no JWT library.
    head = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    claims = _b64url(orjson.dumps({"iss": access_key, "exp": exp, "nbf": issued - NOT_BEFORE_SLACK}))
    signing_input = f"{head}.{claims}".encode("ascii")
    signature = _b64url(hmac.new(secret_key.encode("utf-8"), signing_input, hashlib.sha256).digest())
    return f"{head}.{claims}.{signature}", exp


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class TokenCache:
    """One valid token per channel key, reused until REFRESH_MARGIN before expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, int]] = {}

    def token(self, key: str) -> str:
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and cached[1] - REFRESH_MARGIN > now:
            return cached[0]
        access, secret = split_key(key)
        token, exp = sign(access, secret, now)
        self._tokens[key] = (token, exp)
        return token

    def forget(self, key: str) -> None:
        """Drop a token the upstream refused, so the next call signs anew."""
        self._tokens.pop(key, None)

    def header(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(key)}"}
