"""The `st-ai` command: run the gateway, manage tokens and channels, read usage."""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import sqlite3
import sys
import time
from typing import NoReturn

from server import channel_rules, cli_admin, cli_prices, cli_resilience, cli_usage, cli_webhooks, durations, token_rules, url_rules
from server.admin import audit, rules
from server.admin import channel_state
from server.admin import channels as admin_channels
from server.admin import tokens as admin_tokens
from server.admin.errors import AdminError
from server.billing import money
from server.store import channel_health
from server.store import channels as channel_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import default_path, open_db


_UNSET = object()  # `token update` without --quota (None means --quota none: unlimited)
MIN_POLL_INTERVAL = 0.1
MAX_SECONDS = 7 * 86400  # no timeout an operator means is longer than a week
MAX_COMMIT_DELAY_MS = 100.0
MAX_BODY_BYTES = 4 * 1024**3  # a request body larger than this is a typo, not an upload
MAX_VIDEO_BYTES = 64 * 1024**3
MAX_PRIORITY = rules.MAX_PRIORITY
MAX_WORKERS = 64  # more `serve --workers` than this is a typo, not a machine


class Parser(argparse.ArgumentParser):
    """argparse, but a refusal is one line (argparse prints its usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parse_duration(text: str) -> int:
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_responses_retention(text: str) -> float | None:
    from server.responses_retention import parse_retention

    try:
        return parse_retention(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or 'forever'") from None


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds above 0")
    if value > MAX_SECONDS:  # 1e308 is a typo, and overflows the event loop's timers
        raise argparse.ArgumentTypeError(f"{text!r} is more than a week ({MAX_SECONDS} seconds)")
    return value


def parse_commit_delay(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds") from None
    if not 0 <= value <= MAX_COMMIT_DELAY_MS:  # every request of a busy gateway waits this long
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and {MAX_COMMIT_DELAY_MS} milliseconds")
    return value


def parse_poll_interval(text: str) -> float:
    value = parse_seconds(text)
    if value < MIN_POLL_INTERVAL:  # every task would be polled upstream many times a second
        raise argparse.ArgumentTypeError(f"{text!r} is below {MIN_POLL_INTERVAL:g} seconds")
    return value


def parse_port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 0 to 65535 (0: any free port)")
    return int(text)


def parse_workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers from 1 to {MAX_WORKERS}")
    return int(text)


def parse_size(text: str, maximum: int = MAX_BODY_BYTES) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes above 0")
    if int(text) > maximum:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {maximum // 1024**3} GiB ({maximum} bytes)")
    return int(text)


def parse_video_size(text: str) -> int:
    return parse_size(text, MAX_VIDEO_BYTES)


def _refusing(check):
    """A url_rules check as an argparse type."""
    def parse(text: str) -> str:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


def parse_networks(text: str) -> tuple:
    try:
        return token_rules.parse_allow_ip(text, what="")
    except token_store.TokenError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _ruled(rule):
    """A server/admin/rules.py check (shared with the Admin API) as an argparse type."""
    def parse(text: str):
        try:
            return rule(text)
        except AdminError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


parse_models = _ruled(lambda text: rules.models(parse_list(text), text))
parse_name = _ruled(rules.name)
parse_priority = _ruled(rules.priority)
parse_weight = _ruled(rules.weight)
parse_timeout = _ruled(rules.timeout)


def parse_model_map(text: str) -> dict[str, str]:
    mapping = {}
    for pair in parse_list(text):
        public, sep, upstream = pair.partition("=")
        if not sep or not public.strip() or not upstream.strip():
            raise argparse.ArgumentTypeError(f"{pair!r} is not public=upstream")
        mapping[public.strip()] = upstream.strip()
    return mapping


def _when(ts: int | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if ts else "never"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def _db(args: argparse.Namespace):
    return open_db(args.db or default_path())


# -- commands -------------------------------------------------------------------------

def _client_timeouts(args: argparse.Namespace):
    from rest_bridge.http_server import ClientTimeouts

    if not hasattr(args, "keepalive_timeout"):  # `st-ai grpc` has no HTTP clients
        return ClientTimeouts()
    return ClientTimeouts(header=args.client_header_timeout, body=args.client_body_timeout,
                          keepalive=args.keepalive_timeout, send=args.client_send_timeout)


def _config(args: argparse.Namespace):
    from server import gateway
    from server.billing.group_commit import CommitDelay
    from server.video_tasks import VideoConfig

    video = VideoConfig(poll_interval=args.video_poll_interval, timeout=args.video_timeout,
                        retention=args.video_retention,
                        max_video_bytes=args.video_max_bytes, download_timeout=args.video_download_timeout)
    return gateway.Config(db_path=args.db or default_path(), host=args.host,
                          http_port=getattr(args, "http_port", 8080), grpc_port=args.grpc_port,
                          max_body_bytes=getattr(args, "max_body_bytes", 32 * 1024 * 1024),
                          resilience=cli_resilience.config(args),
                          assets_dir=args.assets_dir,
                          public_url=args.public_url, video=video, demo=getattr(args, "demo", False),
                          client_timeouts=_client_timeouts(args), unpriced=args.unpriced,
                          trusted_bridges=getattr(args, "trusted_bridge", ()),
                          trusted_proxies=getattr(args, "trusted_proxy", ()),
                          admin_key=cli_admin.admin_key_from_env(), webhooks=cli_webhooks.config(args),
                          dispatch=getattr(args, "dispatch", "in-process"), loop=args.loop,
                          metrics_port=getattr(args, "metrics_port", None), metrics_auth=args.metrics_auth,
                          responses_retention=args.responses_retention,
                          commit_delay=CommitDelay(args.commit_delay_ms / 1000))


def cmd_serve(args: argparse.Namespace) -> None:
    from server import gateway, workers

    if args.workers > 1:
        workers.run(_config(args), args.workers, args.log_format, args.worker_start_timeout)
    else:
        gateway.run(gateway.serve(_config(args)), args.log_format, args.loop)


def cmd_grpc(args: argparse.Namespace) -> None:
    from server import gateway

    gateway.run(gateway.serve_grpc(_config(args)), args.log_format, args.loop)


def cmd_bridge(args: argparse.Namespace) -> None:
    from server import gateway

    gateway.run(gateway.serve_bridge(args.grpc_target, args.host, args.http_port, args.max_body_bytes,
                                     _client_timeouts(args), args.trusted_proxy, args.shutdown_grace),
                args.log_format, args.loop)


_LIMIT_FLAGS = (("rpm", "--rpm"), ("tpm", "--tpm"), ("max_concurrency", "--max-concurrency"))


def _limit_changes(args: argparse.Namespace, clearable: bool) -> dict:
    """The rate limits and address rules given on the command line, checked (TokenError
    before anything is written); a limit not given is left out."""
    changes = {name: token_rules.parse_limit(getattr(args, name), flag, clearable)
               for name, flag in _LIMIT_FLAGS if getattr(args, name) is not None}
    if args.allow_ip is not None:
        changes["allow_ip"] = token_rules.parse_allow_ip(args.allow_ip, clearable)
    return changes


def _limits_text(token: token_store.Token) -> str:
    limits = token.limits
    shown = [f"{label} {value}" for label, value in (("rpm", limits.rpm), ("tpm", limits.tpm),
                                                     ("concurrency", limits.max_concurrency)) if value is not None]
    return ", ".join(shown) or "none"


def _allow_ip_text(token: token_store.Token) -> str:
    return ",".join(str(n) for n in token.allow_ip) if token.allow_ip is not None else "any"


def cmd_token_create(args: argparse.Namespace) -> None:
    import time

    expires_at = int(time.time()) + args.expires_in if args.expires_in else None
    token, key = admin_tokens.create(_db(args), audit.CLI, args.name, args.models, expires_at, args.quota,
                                     _limit_changes(args, clearable=False))
    print(f"created token '{token.name}' (models: {', '.join(sorted(token.models)) if token.models else 'all'};"
          f" expires: {_when(token.expires_at)}; quota: {_amount(token.quota)}; limits: {_limits_text(token)};"
          f" allow-ip: {_allow_ip_text(token)})")
    print("the key is shown only this once; st-ai keeps only its hash:")
    print(key)


def cmd_token_list(args: argparse.Namespace) -> None:
    rows = [[t.name, t.key_hint, "enabled" if t.enabled else "disabled", _when(t.expires_at),
             ",".join(sorted(t.models)) if t.models else "(all)", _limits_text(t), _allow_ip_text(t),
             _when(t.created_at)]
            for t in token_store.all_tokens(_db(args))]
    _table(rows, ["NAME", "KEY", "STATUS", "EXPIRES", "MODELS", "LIMITS", "ALLOW IP", "CREATED"])


def cmd_token_enable(args: argparse.Namespace, enabled: bool) -> None:
    token = admin_tokens.set_enabled(_db(args), audit.CLI, args.name, enabled)
    print(f"token '{token.name}' {'enabled' if enabled else 'disabled'}")


def _amount(micros: int | None) -> str:
    return "unlimited" if micros is None else money.format_amount(micros)


def parse_amount(text: str) -> int:
    try:
        return money.parse_amount(text)
    except money.MoneyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_quota(text: str) -> int | None:
    """An amount, or "none" for unlimited."""
    return None if text.strip().lower() in ("none", "unlimited") else parse_amount(text)


def cmd_token_update(args: argparse.Namespace) -> None:
    db = _db(args)
    changes = cli_admin.token_changes(args, _UNSET)
    changes = dataclasses.replace(changes, limits=_limit_changes(args, clearable=True),
                                  **cli_webhooks.token_changes(args))
    token, secret = admin_tokens.change(db, audit.CLI, args.name, changes)
    status = quota_store.status(db, token.name)
    print(f"token '{status.name}': quota {_amount(status.quota)}, used {_amount(status.used)}, "
          f"remaining {_amount(status.remaining)}; limits: {_limits_text(token)}; allow-ip: {_allow_ip_text(token)}")
    cli_webhooks.print_secret(secret)  # alone on the last line


def cmd_token_show(args: argparse.Namespace) -> None:
    db = _db(args)
    shown = admin_tokens.view(db, admin_tokens.get(db, args.name))  # as the Admin API shows it
    if args.json:
        print(json.dumps(shown, indent=2))
        return
    for key in ("name", "key_hint", "enabled", "models", "quota", "used", "reserved", "remaining",
                "rpm", "tpm", "max_concurrency", "allow_ip", "webhook_url", "has_webhook_secret"):
        value = shown[key]
        if value is None and key in ("quota", "remaining", "rpm", "tpm", "max_concurrency"):
            value = "unlimited"
        if key == "allow_ip":
            value = ",".join(value) if value is not None else "any"
        print(f"{key}: {value}")


def cmd_token_delete(args: argparse.Namespace) -> None:
    admin_tokens.delete(_db(args), audit.CLI, args.name)
    print(f"token '{args.name}' deleted")


def cmd_channel_add(args: argparse.Namespace) -> None:
    from server.providers.registry import discover

    specs = discover()
    new = channel_rules.check(channel_rules.NewChannel(  # before the database is opened: a refusal creates no file
        name=args.name, type=args.type, models=args.models, base_url=args.base_url, key=args.key,
        no_key=args.no_key, model_map=args.model_map or {}, priority=args.priority, weight=args.weight,
        timeouts=cli_admin.channel_timeouts(args), api_version=args.api_version or None,
        native_apis=None if args.native_apis in (None, channel_rules.DEFAULT) else args.native_apis), specs)
    channel = admin_channels.create(_db(args), audit.CLI, new, specs)
    keyless = " (no upstream key)" if new.no_key else ""
    print(f"added channel '{channel.name}' ({specs[channel.type].label}) serving {', '.join(channel.models)}{keyless}")


def cmd_channel_list(args: argparse.Namespace) -> None:
    from server.providers.registry import discover

    specs = discover()
    rows = []
    db = _db(args)
    health, now = channel_health.load_all(db), time.time()
    for c in channel_store.all_channels(db):
        label = specs[c.type].label if c.type in specs else f"{c.type} (unknown type)"
        mapping = ",".join(f"{k}={v}" for k, v in c.model_map.items()) or "-"
        rows.append([c.name, label, c.base_url or "-", ",".join(c.models), mapping, c.key_hint,
                     str(c.priority), str(c.weight), cli_admin.timeouts_text(c.timeouts),
                     c.api_version or "default", cli_admin.native_apis_cell(c),
                     channel_state.line(c, health.get(c.id), now)])
    _table(rows, ["NAME", "TYPE", "BASE URL", "MODELS", "MODEL MAP", "KEY", "PRIORITY", "WEIGHT",
                  "TIMEOUTS (connect/first byte/idle/total)", "API VERSION", "NATIVE APIS", "STATE"])


def cmd_channel_enable(args: argparse.Namespace, enabled: bool) -> None:
    channel = admin_channels.set_enabled(_db(args), audit.CLI, args.name, enabled)
    print(f"channel '{channel.name}' {'enabled' if enabled else 'disabled'}")


def cmd_channel_delete(args: argparse.Namespace) -> None:
    admin_channels.delete(_db(args), audit.CLI, args.name)
    print(f"channel '{args.name}' deleted")


# -- parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="st-ai", description=__doc__)
    parser.add_argument("--db", help=f"SQLite database (default: $ST_AI_DB or ./{os.path.basename(default_path())})")
    sub = parser.add_subparsers(dest="command", required=True)

    def db_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", default=argparse.SUPPRESS, help="SQLite database (default: $ST_AI_DB or ./st-ai.db)")

    serve = sub.add_parser("serve", help="run the gRPC server and the REST bridge in one process")
    grpc_ = sub.add_parser("grpc", help="run the gRPC server alone")
    bridge = sub.add_parser("bridge", help="run the REST bridge alone, in front of a gRPC server")
    for p in (serve, grpc_, bridge):
        p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        p.add_argument("--log-format", choices=("text", "json"), default="text",
                       help="log lines, one access line per request among them, as text or JSON lines "
                            "(default text)")
        p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                       help="the event loop: uvloop (the `uvloop` extra) or asyncio's own; auto (the "
                            "default): uvloop when it is installed")
    for p in (serve, bridge):
        p.add_argument("--http-port", type=parse_port, default=8080)
        p.add_argument("--max-body-bytes", type=parse_size, default=32 * 1024 * 1024,
                       help="largest request body the REST bridge accepts (default 32 MiB)")
        # nginx's client_header_timeout, client_body_timeout and keepalive_timeout
        p.add_argument("--client-header-timeout", type=parse_seconds, default=60.0, metavar="S",
                       help="a client must send a whole request header within S seconds (default 60)")
        p.add_argument("--client-body-timeout", type=parse_seconds, default=60.0, metavar="S",
                       help="at most S seconds between two reads of a request body (default 60)")
        p.add_argument("--keepalive-timeout", type=parse_seconds, default=75.0, metavar="S",
                       help="an idle keep-alive connection is closed after S seconds (default 75)")
        p.add_argument("--client-send-timeout", type=parse_seconds, default=60.0, metavar="S",
                       help="a client that takes none of its answer for S seconds is disconnected (default 60)")
    for p in (serve, grpc_):
        db_option(p)
        p.add_argument("--grpc-port", type=parse_port, default=50051)
        cli_resilience.add_serve_options(p, parse_seconds)
        p.add_argument("--commit-delay-ms", type=parse_commit_delay, default=2.0, metavar="MS",
                       help="the longest a reservation or settlement waits, while the process is busy, "
                            "for those of other open requests to share its commit (0: never; default 2)")
        p.add_argument("--unpriced", choices=("allow", "deny"), default="allow",
                       help="a model without a price (st-ai price list): served at zero cost with one "
                            "warning per model (allow, the default), or refused with 403 (deny)")
        p.add_argument("--assets-dir", default=os.environ.get("ST_AI_ASSETS_DIR", "st-ai-assets"),
                       help="where finished videos and served images are kept "
                            "(default: $ST_AI_ASSETS_DIR or ./st-ai-assets)")
        # defaults from the environment stay strings: argparse parses them with `type`
        # when the option is not given, so a bad value there is refused like a bad option
        p.add_argument("--video-poll-interval", type=parse_poll_interval,
                       default=os.environ.get("ST_AI_VIDEO_POLL_INTERVAL", "5"),
                       help="seconds between polls of a video task (default: $ST_AI_VIDEO_POLL_INTERVAL or 5)")
        p.add_argument("--video-timeout", type=parse_seconds,
                       default=os.environ.get("ST_AI_VIDEO_TIMEOUT", "3600"),
                       help="a video task unfinished after this many seconds fails "
                            "(default: $ST_AI_VIDEO_TIMEOUT or 3600)")
        p.add_argument("--video-retention", type=parse_duration,
                       default=os.environ.get("ST_AI_VIDEO_RETENTION", "7d"),
                       help="how long finished videos are kept, e.g. 48h (default: $ST_AI_VIDEO_RETENTION or 7d)")
        p.add_argument("--video-max-bytes", type=parse_video_size, default=2 * 1024**3,
                       help="a provider's video larger than this fails its task (default 2 GiB)")
        p.add_argument("--video-download-timeout", type=parse_seconds,
                       default=os.environ.get("ST_AI_VIDEO_DOWNLOAD_TIMEOUT", "1800"),
                       help="longest a download from a provider's file URL may take, in seconds (default: "
                            "$ST_AI_VIDEO_DOWNLOAD_TIMEOUT or 1800; connecting and each read: 15 s and 60 s)")
        cli_webhooks.add_serve_options(p)
        p.add_argument("--responses-retention", type=parse_responses_retention, default="30d", metavar="DURATION",
                       help="how long a stored Responses API response is kept, e.g. 7d, or 'forever' "
                            "(default 30d, as OpenAI keeps them)")
        p.add_argument("--metrics-auth", choices=("none", "admin"), default="none",
                       help="who may read GET /metrics: anyone who reaches the port (none, the default, "
                            "as Prometheus scrapes), or only with the admin key as a Bearer token (admin)")
        p.add_argument("--public-url", type=_refusing(url_rules.check_public_url),
                       default=os.environ.get("ST_AI_PUBLIC_URL"),
                       help="the REST bridge's address as clients see it, for image URLs st-ai hands out "
                            "(default: http://HOST:HTTP_PORT)")
    for p in (serve, bridge):
        p.add_argument("--trusted-proxy", type=parse_networks, default=(), metavar="CIDR,...",
                       help="reverse proxies in front of the bridge whose X-Forwarded-For gives the client's address "
                            "(default: none; the connection's address is the client's)")
    grpc_.add_argument("--trusted-bridge", type=parse_networks, default=(), metavar="CIDR,...",
                       help="addresses of separate `st-ai bridge` processes, believed when they name their HTTP "
                            "client's address (default: none)")
    serve.add_argument("--dispatch", choices=("in-process", "grpc"), default="in-process",
                       help="how the REST bridge calls the services: in the same process (default), or over "
                            "gRPC on a private Unix socket (the older way, kept for comparison)")
    grpc_.add_argument("--metrics-port", type=parse_port, default=None,
                       help="also serve GET /metrics (Prometheus) over HTTP on this port (default: none)")
    serve.add_argument("--demo", action="store_true",
                       help="create a simulator channel and a demo token on first start")
    serve.add_argument("--workers", type=parse_workers, default=1, metavar="N",
                       help="worker processes sharing the ports and the database (default 1; "
                            "about one per core)")
    serve.add_argument("--worker-start-timeout", type=parse_seconds, default=60.0, metavar="S",
                       help="with --workers: a worker not ready S seconds after it started is stuck, "
                            "killed and started again (default 60)")
    serve.set_defaults(func=cmd_serve)
    grpc_.set_defaults(func=cmd_grpc)
    bridge.add_argument("--grpc-target", required=True, type=_refusing(url_rules.check_grpc_target),
                        help="HOST:PORT (or unix:PATH) of the gRPC server")
    cli_resilience.add_shutdown_grace(bridge, parse_seconds)
    bridge.set_defaults(func=cmd_bridge)

    token = sub.add_parser("token", help="client tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="create a token; prints its key on the last line")
    create.add_argument("--name", required=True, type=parse_name)
    create.add_argument("--models", type=parse_models, help="comma-separated models it may use (default: all)")
    create.add_argument("--expires-in", type=parse_duration,
                        help="a whole number and a unit (s, m, h, d, w), e.g. 30d, 12h, 90m (default: never)")
    create.add_argument("--quota", type=parse_amount, metavar="AMOUNT",
                        help=f"most it may spend in all, in {money.CURRENCY} (default: unlimited)")
    create.set_defaults(func=cmd_token_create)
    update = token.add_parser("update", help="change a token's name, models, expiry, quota, rate limits "
                                             "or address rules")
    update.add_argument("name")
    cli_admin.add_token_update_options(update, parse_name, parse_models, parse_duration)
    update.add_argument("--quota", type=parse_quota, default=_UNSET, metavar="AMOUNT|none",
                        help="set the quota (none: unlimited)")
    update.add_argument("--add-quota", type=parse_amount, metavar="AMOUNT", help="add to the quota")
    cli_webhooks.add_token_options(update)
    for p, clear in ((create, ""), (update, "|none")):
        p.add_argument("--rpm", metavar=f"N{clear}", help="most requests a minute (default: no limit)")
        p.add_argument("--tpm", metavar=f"N{clear}",
                       help="most tokens a minute, counted at their worst case and corrected after (default: no limit)")
        p.add_argument("--max-concurrency", metavar=f"N{clear}", help="most requests in flight at once (default: no limit)")
        p.add_argument("--allow-ip", metavar=f"CIDR,...{clear}",
                       help="the only client addresses it may be used from, e.g. 203.0.113.7,10.0.0.0/8 (default: any)")
    update.set_defaults(func=cmd_token_update)
    show = token.add_parser("show", help="a token's settings, quota, used and remaining")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_token_show)
    token.add_parser("list", help="list tokens (keys are never shown)").set_defaults(func=cmd_token_list)
    for action, func in (("disable", lambda a: cmd_token_enable(a, False)),
                         ("enable", lambda a: cmd_token_enable(a, True)), ("delete", cmd_token_delete)):
        p = token.add_parser(action, help=f"{action} a token")
        p.add_argument("name")
        p.set_defaults(func=func)

    channel = sub.add_parser("channel", help="upstream channels").add_subparsers(dest="action", required=True)
    add = channel.add_parser("add", help="add a channel")
    add.add_argument("--name", required=True)
    add.add_argument("--type", required=True,
                     help="openai (any OpenAI-compatible API), kling, runway, veo, seedance, wan, hailuo or simulator")
    add.add_argument("--base-url", help="the API's base URL, e.g. https://api.openai.com/v1")
    add.add_argument("--key", help="the upstream API key, for kling ACCESS_KEY:SECRET_KEY "
                                   "(stored for use, never printed)")
    add.add_argument("--no-key", action="store_true",
                     help="an OpenAI-compatible server that takes no key (e.g. a local vLLM or Ollama)")
    add.add_argument("--models", type=parse_list, required=True, help="comma-separated public model names")
    add.add_argument("--model-map", type=parse_model_map, help="public=upstream,... renames sent upstream")
    add.add_argument("--priority", type=parse_priority, default=0, help="higher is tried first (default 0)")
    cli_admin.add_routing_options(add, parse_weight, parse_timeout, default_weight=1)
    cli_admin.add_api_version_option(add)
    cli_admin.add_native_apis_option(add)
    add.set_defaults(func=cmd_channel_add)
    channel.add_parser("list", help="list channels (keys are masked)").set_defaults(func=cmd_channel_list)
    for action, func in (("disable", lambda a: cmd_channel_enable(a, False)),
                         ("enable", lambda a: cmd_channel_enable(a, True)), ("delete", cmd_channel_delete)):
        p = channel.add_parser(action, help=f"{action} a channel")
        p.add_argument("name")
        p.set_defaults(func=func)

    price = cli_prices.add_commands(sub, _db, _table)
    usage = cli_usage.add_commands(sub, _db, _table)
    admin_parsers = cli_admin.add_commands(sub, token, channel, _db, _table)
    # `st-ai token list --db X` as well as `st-ai --db X token list`, for every command
    # that opens the database (the bridge has none)
    for sub_parser in (*token.choices.values(), *channel.choices.values(), *price.choices.values(), *usage,
                       *admin_parsers):
        db_option(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    # grpcio's classic polling (not its EventEngine) costs 10-18% less CPU per relayed
    # request in grpcio 1.85 (scripts/bench.py --grpc-experiments); must precede `import grpc`.
    os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_client,-event_engine_listener")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (token_store.TokenError, channel_store.ChannelError, AdminError) as exc:
        sys.exit(f"st-ai: {exc}")
    except sqlite3.Error as exc:  # e.g. --db names a file that cannot be opened
        sys.exit(f"st-ai: database {getattr(args, 'db', None) or default_path()}: {exc}")


if __name__ == "__main__":
    main()
