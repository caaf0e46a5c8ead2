"""The `st-ai` command: run the gateway, manage tokens and channels, read usage."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sqlite3
import sys

from server.store import channels as channel_store
from server.store import tokens as token_store
from server.store import usage as usage_store
from server.store.db import default_path, open_db

_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 12h, 90m or 3600s")
    return int(match.group(1)) * _UNITS[match.group(2)]


def _env_float(name: str, fallback: float):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if value <= 0:
            raise argparse.ArgumentTypeError("must be more than 0")
        return value
    return parse


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds above 0")
    return value


def _env_default(name: str, fallback: float) -> float:
    try:
        return float(os.environ.get(name, fallback))
    except ValueError:
        sys.exit(f"st-ai: ${name} must be a number of seconds")


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


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
                          keepalive=args.keepalive_timeout)


def _config(args: argparse.Namespace):
    from server import gateway
    from server.video_tasks import VideoConfig

    video = VideoConfig(poll_interval=args.video_poll_interval, timeout=args.video_timeout,
                        retention=args.video_retention)
    return gateway.Config(db_path=args.db or default_path(), host=args.host,
                          http_port=getattr(args, "http_port", 8080), grpc_port=args.grpc_port,
                          max_body_bytes=getattr(args, "max_body_bytes", 32 * 1024 * 1024),
                          upstream_timeout=args.upstream_timeout, assets_dir=args.assets_dir,
                          public_url=args.public_url, video=video, client_timeouts=_client_timeouts(args))


def cmd_serve(args: argparse.Namespace) -> None:
    from server import gateway
    from server.demo import ensure_demo

    config = _config(args)
    if args.demo:
        db = open_db(config.db_path)
        for line in ensure_demo(db):
            print(line, flush=True)
        db.close()
    gateway.run(gateway.serve(config))


def cmd_grpc(args: argparse.Namespace) -> None:
    from server import gateway

    gateway.run(gateway.serve_grpc(_config(args)))


def cmd_bridge(args: argparse.Namespace) -> None:
    from server import gateway

    gateway.run(gateway.serve_bridge(args.grpc_target, args.host, args.http_port, args.max_body_bytes,
                                     _client_timeouts(args)))


def cmd_token_create(args: argparse.Namespace) -> None:
    import time

    expires_at = int(time.time()) + args.expires_in if args.expires_in else None
    token, key = token_store.create(_db(args), args.name, args.models, expires_at)
    print(f"created token '{token.name}' (models: {', '.join(sorted(token.models)) if token.models else 'all'};"
          f" expires: {_when(token.expires_at)})")
    print("the key is shown only this once; st-ai keeps only its hash:")
    print(key)


def cmd_token_list(args: argparse.Namespace) -> None:
    rows = [[t.name, t.key_hint, "enabled" if t.enabled else "disabled", _when(t.expires_at),
             ",".join(sorted(t.models)) if t.models else "(all)", _when(t.created_at)]
            for t in token_store.all_tokens(_db(args))]
    _table(rows, ["NAME", "KEY", "STATUS", "EXPIRES", "MODELS", "CREATED"])


def cmd_token_enable(args: argparse.Namespace, enabled: bool) -> None:
    token = token_store.set_enabled(_db(args), args.name, enabled)
    print(f"token '{token.name}' {'enabled' if enabled else 'disabled'}")


def cmd_token_delete(args: argparse.Namespace) -> None:
    token_store.delete(_db(args), args.name)
    print(f"token '{args.name}' deleted")


def cmd_channel_add(args: argparse.Namespace) -> None:
    from server.providers.registry import discover

    specs = discover()
    spec = specs.get(args.type)
    if spec is None:
        raise channel_store.ChannelError(f"unknown channel type {args.type!r}; known: {', '.join(sorted(specs))}")
    base_url = args.base_url or spec.default_base_url or ""
    if spec.type != "simulator" and not base_url:
        raise channel_store.ChannelError("this channel type needs --base-url")
    if spec.key_format == "ACCESS_KEY:SECRET_KEY" and len((args.key or "").split(":")) != 2:
        raise channel_store.ChannelError(f"a {spec.type} channel's --key is ACCESS_KEY:SECRET_KEY")
    channel = channel_store.add(_db(args), args.name, args.type, base_url, args.key or "", args.models,
                                args.model_map, args.priority)
    print(f"added channel '{channel.name}' ({spec.label}) serving {', '.join(channel.models)}")


def cmd_channel_list(args: argparse.Namespace) -> None:
    from server.providers.registry import discover

    specs = discover()
    rows = []
    for c in channel_store.all_channels(_db(args)):
        label = specs[c.type].label if c.type in specs else f"{c.type} (unknown type)"
        mapping = ",".join(f"{k}={v}" for k, v in c.model_map.items()) or "-"
        rows.append([c.name, label, c.base_url or "-", ",".join(c.models), mapping, c.key_hint,
                     str(c.priority), "enabled" if c.enabled else "disabled"])
    _table(rows, ["NAME", "TYPE", "BASE URL", "MODELS", "MODEL MAP", "KEY", "PRIORITY", "STATUS"])


def cmd_channel_enable(args: argparse.Namespace, enabled: bool) -> None:
    channel = channel_store.set_enabled(_db(args), args.name, enabled)
    print(f"channel '{channel.name}' {'enabled' if enabled else 'disabled'}")


def cmd_channel_delete(args: argparse.Namespace) -> None:
    channel_store.delete(_db(args), args.name)
    print(f"channel '{args.name}' deleted")


def cmd_usage(args: argparse.Namespace) -> None:
    rows = [[r["token"], r["model"], str(r["requests"]), str(r["errors"]), str(r["prompt_tokens"]),
             str(r["completion_tokens"]), str(r["total_tokens"])]
            for r in usage_store.summary(_db(args), args.token)]
    _table(rows, ["TOKEN", "MODEL", "REQUESTS", "ERRORS", "PROMPT", "COMPLETION", "TOTAL"])


# -- parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="st-ai", description=__doc__)
    parser.add_argument("--db", help=f"SQLite database (default: $ST_AI_DB or ./{os.path.basename(default_path())})")
    sub = parser.add_subparsers(dest="command", required=True)

    def db_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", default=argparse.SUPPRESS, help="SQLite database (default: $ST_AI_DB or ./st-ai.db)")

    serve = sub.add_parser("serve", help="run the gRPC server and the REST bridge in one process")
    grpc_ = sub.add_parser("grpc", help="run the gRPC server alone")
    bridge = sub.add_parser("bridge", help="run the REST bridge alone, in front of a gRPC server")
    for p in (serve, grpc_, bridge):
        p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    for p in (serve, bridge):
        p.add_argument("--http-port", type=int, default=8080)
        p.add_argument("--max-body-bytes", type=int, default=32 * 1024 * 1024,
                       help="largest request body the REST bridge accepts (default 32 MiB)")
        # nginx's client_header_timeout, client_body_timeout and keepalive_timeout
        p.add_argument("--client-header-timeout", type=positive_seconds, default=60.0, metavar="S",
                       help="a client must send a whole request header within S seconds (default 60)")
        p.add_argument("--client-body-timeout", type=positive_seconds, default=60.0, metavar="S",
                       help="at most S seconds between two reads of a request body (default 60)")
        p.add_argument("--keepalive-timeout", type=positive_seconds, default=75.0, metavar="S",
                       help="an idle keep-alive connection is closed after S seconds (default 75)")
    for p in (serve, grpc_):
        db_option(p)
        p.add_argument("--grpc-port", type=int, default=50051)
        p.add_argument("--upstream-timeout", type=float, default=600.0,
                       help="longest an upstream call may take, in seconds (default 600)")
        p.add_argument("--assets-dir", default=os.environ.get("ST_AI_ASSETS_DIR", "st-ai-assets"),
                       help="where finished videos and served images are kept "
                            "(default: $ST_AI_ASSETS_DIR or ./st-ai-assets)")
        p.add_argument("--video-poll-interval", type=_env_float("ST_AI_VIDEO_POLL_INTERVAL", 5.0),
                       default=_env_default("ST_AI_VIDEO_POLL_INTERVAL", 5.0),
                       help="seconds between polls of a video task (default: $ST_AI_VIDEO_POLL_INTERVAL or 5)")
        p.add_argument("--video-timeout", type=_env_float("ST_AI_VIDEO_TIMEOUT", 3600.0),
                       default=_env_default("ST_AI_VIDEO_TIMEOUT", 3600.0),
                       help="a video task unfinished after this many seconds fails "
                            "(default: $ST_AI_VIDEO_TIMEOUT or 3600)")
        p.add_argument("--video-retention", type=parse_duration,
                       default=parse_duration(os.environ.get("ST_AI_VIDEO_RETENTION", "7d")),
                       help="how long finished videos are kept, e.g. 48h (default: $ST_AI_VIDEO_RETENTION or 7d)")
        p.add_argument("--public-url", default=os.environ.get("ST_AI_PUBLIC_URL"),
                       help="the REST bridge's address as clients see it, for image URLs st-ai hands out "
                            "(default: http://HOST:HTTP_PORT)")
    serve.add_argument("--demo", action="store_true",
                       help="create a simulator channel and a demo token on first start")
    serve.set_defaults(func=cmd_serve)
    grpc_.set_defaults(func=cmd_grpc)
    bridge.add_argument("--grpc-target", required=True, help="HOST:PORT (or unix:PATH) of the gRPC server")
    bridge.set_defaults(func=cmd_bridge)

    token = sub.add_parser("token", help="client tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="create a token; prints its key on the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--models", type=parse_list, help="comma-separated models it may use (default: all)")
    create.add_argument("--expires-in", type=parse_duration, help="e.g. 30d, 12h, 90m")
    create.set_defaults(func=cmd_token_create)
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
                     help="openai (any OpenAI-compatible API), kling, runway or simulator")
    add.add_argument("--base-url", help="the API's base URL, e.g. https://api.openai.com/v1")
    add.add_argument("--key", help="the upstream API key, for kling ACCESS_KEY:SECRET_KEY "
                                   "(stored for use, never printed)")
    add.add_argument("--models", type=parse_list, required=True, help="comma-separated public model names")
    add.add_argument("--model-map", type=parse_model_map, help="public=upstream,... renames sent upstream")
    add.add_argument("--priority", type=int, default=0, help="higher is tried first (default 0)")
    add.set_defaults(func=cmd_channel_add)
    channel.add_parser("list", help="list channels (keys are masked)").set_defaults(func=cmd_channel_list)
    for action, func in (("disable", lambda a: cmd_channel_enable(a, False)),
                         ("enable", lambda a: cmd_channel_enable(a, True)), ("delete", cmd_channel_delete)):
        p = channel.add_parser(action, help=f"{action} a channel")
        p.add_argument("name")
        p.set_defaults(func=func)

    usage = sub.add_parser("usage", help="requests and tokens used, per token and model")
    usage.add_argument("--token", help="only this token")
    usage.set_defaults(func=cmd_usage)
    # `st-ai token list --db X` as well as `st-ai --db X token list`, for every command
    # that opens the database (the bridge has none)
    for sub_parser in (*token.choices.values(), *channel.choices.values(), usage):
        db_option(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    # grpcio's classic polling (not its EventEngine) costs 10-18% less CPU per relayed
    # request in grpcio 1.85 (scripts/bench.py --grpc-experiments); must precede `import grpc`.
    os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_client,-event_engine_listener")
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (token_store.TokenError, channel_store.ChannelError) as exc:
        sys.exit(f"st-ai: {exc}")
    except sqlite3.Error as exc:  # e.g. --db names a file that cannot be opened
        sys.exit(f"st-ai: database {getattr(args, 'db', None) or default_path()}: {exc}")


if __name__ == "__main__":
    main()
