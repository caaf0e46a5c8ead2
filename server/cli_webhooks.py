"""The CLI's webhook options: `token update --webhook-url/--rotate-webhook-secret` and
`serve --webhook-retry-base/--webhook-max-attempts/--allow-callback-host`."""
from __future__ import annotations

import argparse

from server.admin import rules
from server.admin.errors import AdminError
from server.store.token_edits import KEEP
from server.webhook_sender import WebhookConfig

MAX_ATTEMPTS = 100


def _url(text: str) -> object:
    if text.strip().lower() == "none":
        return None
    try:
        return rules.webhook_url(text)
    except AdminError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("must be a number of seconds above 0 and at most 86400, e.g. 5")
    return value


def _attempts(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_ATTEMPTS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_ATTEMPTS}")
    return int(text)


def _hosts(text: str) -> tuple[str, ...]:
    hosts = tuple(h.strip() for h in text.split(",") if h.strip())
    if not hosts:
        raise argparse.ArgumentTypeError("give one or more host names or addresses, comma-separated")
    return hosts


def add_token_options(update: argparse.ArgumentParser) -> None:
    update.add_argument("--webhook-url", type=_url, default=KEEP, metavar="URL|none",
                        help="POST the token's finished video tasks there (none: stop); the first URL "
                             "makes the token's webhook secret, printed once on the last line")
    update.add_argument("--rotate-webhook-secret", action="store_true",
                        help="a new webhook secret, printed once on the last line (the old one stops signing)")


def token_changes(args: argparse.Namespace) -> dict:
    return {"webhook_url": args.webhook_url, "rotate_webhook_secret": args.rotate_webhook_secret}


def print_secret(secret: str | None) -> None:
    if secret is not None:
        print("the webhook secret is shown only this once; verify each event's webhook-signature with it:")
        print(secret)


def add_serve_options(p: argparse.ArgumentParser) -> None:
    defaults = WebhookConfig()
    p.add_argument("--webhook-retry-base", type=_positive_seconds, default=defaults.retry_base, metavar="S",
                   help="seconds before a failed webhook is sent again, doubling after each failure (default 5)")
    p.add_argument("--webhook-max-attempts", type=_attempts, default=defaults.max_attempts, metavar="N",
                   help="attempts per webhook event before it is marked failed (default 8)")
    p.add_argument("--allow-callback-host", type=_hosts, default=(), metavar="HOST,...",
                   help="hosts a client's callback_url may name although they are private or local "
                        "(default: none)")


def config(args: argparse.Namespace) -> WebhookConfig:
    return WebhookConfig(retry_base=args.webhook_retry_base, max_attempts=args.webhook_max_attempts,
                         allow_callback_hosts=args.allow_callback_host)
