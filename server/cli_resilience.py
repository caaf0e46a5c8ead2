"""`st-ai serve` / `st-ai grpc` options for riding out failing upstreams: attempts,
the default timeouts of every channel, circuit breaking and the shutdown grace."""
from __future__ import annotations

import argparse

from server.core.resilience import DEFAULT_TIMEOUTS, Resilience
from server.store.channels import Timeouts

MAX_ATTEMPTS = 20


def _attempts(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_ATTEMPTS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_ATTEMPTS}")
    return int(text)


MAX_COOLDOWN_FAILURES = 1000


def _failures(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_COOLDOWN_FAILURES:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_COOLDOWN_FAILURES}")
    return int(text)


def add_serve_options(p: argparse.ArgumentParser, parse_seconds) -> None:
    d = DEFAULT_TIMEOUTS
    p.add_argument("--max-attempts", type=_attempts, default=3, metavar="N",
                   help="upstream calls one request may make over its channels before it fails (default 3)")
    p.add_argument("--timeout-connect", type=parse_seconds, default=d.connect, metavar="S",
                   help=f"default seconds to connect to an upstream (default {d.connect:g})")
    p.add_argument("--timeout-first-byte", type=parse_seconds, default=d.first_byte, metavar="S",
                   help="default seconds until an upstream's answer or first stream event; later, the "
                        f"request goes to the next channel (default {d.first_byte:g})")
    p.add_argument("--timeout-idle", type=parse_seconds, default=d.idle, metavar="S",
                   help=f"default most seconds between two events of a stream; a stalled stream is cut (default {d.idle:g})")
    # --upstream-timeout: the name of earlier releases
    p.add_argument("--timeout-total", "--upstream-timeout", dest="timeout_total", type=parse_seconds,
                   default=d.total, metavar="S",
                   help=f"longest a whole request may take, every attempt included (default {d.total:g})")
    p.add_argument("--cooldown-failures", type=_failures, default=3, metavar="N",
                   help="consecutive failures that put a channel in cooldown (default 3)")
    p.add_argument("--cooldown-base", type=parse_seconds, default=5.0, metavar="S",
                   help="a channel's first cooldown; each next one doubles (default 5)")
    p.add_argument("--cooldown-max", type=parse_seconds, default=300.0, metavar="S",
                   help="the longest cooldown (default 300)")
    p.add_argument("--shutdown-grace", type=parse_seconds, default=30.0, metavar="S",
                   help="on SIGTERM, how long in-flight requests and streams may finish (default 30)")
    p.add_argument("--probe-interval", type=parse_seconds, default=60.0, metavar="S",
                   help="how often channels st-ai disabled (a rejected key) are tested, and enabled "
                        "again when they answer (default 60)")


def config(args: argparse.Namespace) -> Resilience:
    return Resilience(
        timeouts=Timeouts(args.timeout_connect, args.timeout_first_byte, args.timeout_idle, args.timeout_total),
        max_attempts=args.max_attempts, cooldown_failures=args.cooldown_failures,
        cooldown_base=args.cooldown_base, cooldown_max=max(args.cooldown_max, args.cooldown_base),
        shutdown_grace=args.shutdown_grace, probe_interval=args.probe_interval)


def add_shutdown_grace(p: argparse.ArgumentParser, parse_seconds) -> None:
    """`st-ai bridge` has no upstreams, but drains its requests on SIGTERM like serve and grpc."""
    p.add_argument("--shutdown-grace", type=parse_seconds, default=30.0, metavar="S",
                   help="on SIGTERM, how long in-flight requests and streams may finish (default 30)")
