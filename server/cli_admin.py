"""The CLI's commands beside the Admin API's: `token update`'s settings, `token rotate`,
`channel update|test`, `video list|show`, `audit` and `admin-key rotate`. Each calls the
same operation the Admin API does (server/admin/), as actor `cli`."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
from typing import Callable

from server import channel_rules
from server.admin import api, audit, channel_test, keys
from server.admin import channels as admin_channels
from server.admin import tokens as admin_tokens
from server.admin import videos as admin_videos
from server.store.channels import Channel, Timeouts
from server.store.token_edits import KEEP

OpenDb = Callable[[argparse.Namespace], object]
PrintTable = Callable[[list[list[str]], list[str]], None]


def admin_key_from_env() -> str | None:
    """ST_AI_ADMIN_KEY, checked; a bad one stops `serve`/`grpc` with one line."""
    value = os.environ.get(keys.ENV)
    if not value:
        return None
    try:
        return keys.check_env_key(value)
    except ValueError as exc:
        raise SystemExit(f"st-ai: {exc}") from None


def add_token_update_options(update: argparse.ArgumentParser, parse_name, parse_models, parse_duration) -> None:
    update.add_argument("--new-name", type=parse_name, metavar="NAME", help="rename the token")
    models = update.add_mutually_exclusive_group()
    models.add_argument("--models", type=parse_models, help="comma-separated models it may use (replaces the list)")
    models.add_argument("--all-models", action="store_true", help="let it use every model")
    expiry = update.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=parse_duration, help="expire this long from now, e.g. 30d")
    expiry.add_argument("--never-expires", action="store_true", help="never expire")


def token_changes(args: argparse.Namespace, unset: object) -> admin_tokens.TokenChanges:
    models = args.models if args.models is not None else (None if args.all_models else KEEP)
    expires_at = (admin_tokens.expiry(args.expires_in) if args.expires_in is not None
                  else None if args.never_expires else KEEP)
    return admin_tokens.TokenChanges(new_name=args.new_name, models=models, expires_at=expires_at,
                                     quota=KEEP if args.quota is unset else args.quota, add_quota=args.add_quota)


def cmd_token_rotate(args: argparse.Namespace, open_db: OpenDb) -> None:
    token, key = admin_tokens.rotate(open_db(args), audit.CLI, args.name)
    print(f"token '{token.name}' has a new key; the old one no longer works")
    print("the key is shown only this once; st-ai keeps only its hash:")
    print(key)


def add_routing_options(p: argparse.ArgumentParser, parse_weight, parse_timeout, default_weight: int | None,
                        unset: object = None) -> None:
    """--weight and --timeout-* of `channel add` (defaults: 1 and the gateway's) and
    `channel update` (`unset`: left as they are; "default": back to the gateway's)."""
    p.add_argument("--weight", type=parse_weight, default=default_weight, metavar="W",
                   help="share of its priority's requests, relative to the other channels' weights; "
                        "0: only when they are unusable (default 1)")
    for name in admin_channels.TIMEOUT_NAMES:
        flag = name.replace("_", "-")
        p.add_argument(f"--timeout-{flag}", type=parse_timeout, default=unset, metavar="S",
                       help=f"seconds (the {flag.replace('-', ' ')} limit), or 'default' for st-ai serve's "
                            f"--timeout-{flag}")


def add_api_version_option(p: argparse.ArgumentParser) -> None:
    """--api-version of `channel add` and `channel update` (absent: add takes the
    provider's current version, update leaves it as it is)."""
    p.add_argument("--api-version", type=channel_rules.api_version_given, metavar="V",
                   help="the upstream API version the channel calls (e.g. 2024-10-21 for azure, 2023-06-01 for "
                        "anthropic); 'default' for the provider's current one")


def _native_apis_arg(text: str) -> frozenset[str] | str:
    try:
        return channel_rules.native_apis_given(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--native-apis: ")) from None


def add_native_apis_option(p: argparse.ArgumentParser) -> None:
    """--native-apis of `channel add` and `channel update` (absent: add takes the type's
    default, update leaves it as it is)."""
    p.add_argument("--native-apis", type=_native_apis_arg, metavar="APIS",
                   help="the client APIs the upstream speaks itself, passed through rather than translated: "
                        "a comma list of chat, responses, messages; 'none'; or 'default' for the type's own "
                        "(openai, azure: chat; anthropic: messages; others: none)")


def channel_timeouts(args: argparse.Namespace) -> Timeouts:
    return Timeouts(*(getattr(args, f"timeout_{name}") for name in admin_channels.TIMEOUT_NAMES))


def timeouts_text(timeouts: Timeouts) -> str:
    return "/".join("default" if getattr(timeouts, name) is None else f"{getattr(timeouts, name):g}s"
                    for name in admin_channels.TIMEOUT_NAMES)


def cmd_channel_update(args: argparse.Namespace, open_db: OpenDb) -> None:
    from server.providers.registry import discover

    timeouts = {name: getattr(args, f"timeout_{name}") for name in admin_channels.TIMEOUT_NAMES
                if getattr(args, f"timeout_{name}") is not KEEP}
    changes = admin_channels.ChannelChanges(base_url=args.base_url, key=args.key, no_key=args.no_key,
                                            models=args.models, model_map=args.model_map, priority=args.priority,
                                            weight=args.weight, timeouts=timeouts, api_version=args.api_version,
                                            native_apis=args.native_apis)
    channel = admin_channels.update(open_db(args), audit.CLI, args.name, changes, discover())
    print(f"channel '{channel.name}' updated: serving {', '.join(channel.models)}, priority {channel.priority}, "
          f"weight {channel.weight}, timeouts {timeouts_text(channel.timeouts)}, "
          f"API version {channel.api_version or 'default'}, native APIs {native_apis_cell(channel)}")


def native_apis_cell(channel: Channel) -> str:
    shown = channel_rules.native_apis_text(channel.native_apis)
    return f"{shown} (default)" if channel.native_apis_chosen is None else shown


def cmd_channel_test(args: argparse.Namespace, open_db: OpenDb) -> None:
    db = open_db(args)
    channel = admin_channels.get(db, args.name)
    result = channel_test.record(db, audit.CLI, channel, asyncio.run(channel_test.run_alone(channel, args.model)))
    if args.json:
        print(json.dumps(result.view(), indent=2))
    elif result.ok:
        again = "; it was disabled by st-ai and is enabled again" if result.reenabled else ""
        print(f"channel '{channel.name}' ({result.model}): ok in {result.latency_ms} ms{again}")
    else:
        print(f"channel '{channel.name}' ({result.model}): failed after {result.latency_ms} ms: {result.error}")
    if not result.ok:
        raise SystemExit(1)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "-"


def cmd_video_list(args: argparse.Namespace, open_db: OpenDb, table: PrintTable) -> None:
    body = {"token": args.token, "status": args.status, "limit": args.limit, "after": args.after,
            "include_deleted": args.include_deleted}
    page = admin_videos.list_tasks(open_db(args), {k: v for k, v in body.items() if v is not None})
    if args.json:
        print(json.dumps(page, indent=2))
        return
    table([[v["video"]["id"], v["token"] or "(deleted)", v["video"]["model"], v["video"]["status"],
            v["channel"], _when(v["video"]["created_at"]), "yes" if v["deleted"] else ""]
           for v in page["data"]], ["ID", "TOKEN", "MODEL", "STATUS", "CHANNEL", "CREATED", "DELETED"])


def cmd_video_show(args: argparse.Namespace, open_db: OpenDb) -> None:
    print(json.dumps(admin_videos.get_task(open_db(args), {"video_id": args.video_id}), indent=2))


def cmd_video_delete(args: argparse.Namespace) -> None:
    from server.store.db import default_path

    deleted = asyncio.run(admin_videos.delete_alone(args.db or default_path(), args.assets_dir, audit.CLI,
                                                    args.video_id))
    print(f"video task {deleted['id']} deleted")


def cmd_audit(args: argparse.Namespace, open_db: OpenDb, table: PrintTable) -> None:
    body = {"limit": args.limit, "operation": args.operation, "target": args.target}
    page = api.list_audit_events(open_db(args), {k: v for k, v in body.items() if v is not None})
    if args.json:
        print(json.dumps(page["data"], indent=2))
        return
    table([[_when(e["time"]), e["actor"], e["operation"], e["target"] or "-", e["request_id"] or "-",
            json.dumps(e["summary"], sort_keys=True)] for e in page["data"]],
          ["TIME", "ACTOR", "OPERATION", "TARGET", "REQUEST ID", "SUMMARY"])


def cmd_admin_key_rotate(args: argparse.Namespace, open_db: OpenDb) -> None:
    key = keys.rotate(open_db(args), audit.CLI)
    if os.environ.get(keys.ENV):
        print(f"note: {keys.ENV} is set; a server started with it accepts that key, not this one")
    print("new admin key (the previous one no longer works); it is shown only this once:")
    print(key)


def _limit(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def add_commands(sub: argparse._SubParsersAction, token: argparse._SubParsersAction,
                 channel: argparse._SubParsersAction, open_db: OpenDb, table: PrintTable) -> list:
    """Adds the commands; returns the parsers outside `token` and `channel` (each takes --db)."""
    from server.cli import parse_list, parse_model_map, parse_priority, parse_timeout, parse_weight

    rotate = token.add_parser("rotate", help="give a token a new key (printed once); the old one stops working")
    rotate.add_argument("name")
    rotate.set_defaults(func=functools.partial(cmd_token_rotate, open_db=open_db))

    update = channel.add_parser("update", help="change a channel's base URL, key, models, renames, priority, "
                                               "weight, timeouts or API version")
    update.add_argument("name")
    update.add_argument("--base-url")
    update.add_argument("--key", help="a new upstream key (stored for use, never printed)")
    update.add_argument("--no-key", action="store_true", help="the upstream takes no key")
    update.add_argument("--models", type=parse_list, help="comma-separated public model names (replaces the list)")
    update.add_argument("--model-map", type=parse_model_map, help="public=upstream,... (replaces the renames)")
    update.add_argument("--priority", type=parse_priority)
    add_routing_options(update, parse_weight, parse_timeout, default_weight=None, unset=KEEP)
    add_api_version_option(update)
    add_native_apis_option(update)
    update.set_defaults(func=functools.partial(cmd_channel_update, open_db=open_db))

    test = channel.add_parser("test", help="send one minimal request through a channel (billed to no token); "
                                           "exits 0 when it answered, 1 when not; an answer enables again a "
                                           "channel st-ai had disabled")
    test.add_argument("name")
    test.add_argument("--model", help="one of the channel's models (default: its first)")
    test.add_argument("--json", action="store_true")
    test.set_defaults(func=functools.partial(cmd_channel_test, open_db=open_db))

    video = sub.add_parser("video", help="video tasks of every token").add_subparsers(dest="action", required=True)
    list_ = video.add_parser("list", help="newest first")
    list_.add_argument("--token")
    list_.add_argument("--status", choices=admin_videos.STATUSES)
    list_.add_argument("--after", help="a video id: the page after it")
    list_.add_argument("--limit", type=_limit, default=20)
    list_.add_argument("--include-deleted", action="store_true")
    list_.add_argument("--json", action="store_true")
    list_.set_defaults(func=functools.partial(cmd_video_list, open_db=open_db, table=table))
    show = video.add_parser("show", help="one task, as JSON")
    show.add_argument("video_id")
    show.set_defaults(func=functools.partial(cmd_video_show, open_db=open_db))
    delete = video.add_parser("delete", help="delete a task as its client would (files removed, provider told)")
    delete.add_argument("video_id")
    delete.add_argument("--assets-dir", default=os.environ.get("ST_AI_ASSETS_DIR", "st-ai-assets"),
                        help="the server's --assets-dir (default: $ST_AI_ASSETS_DIR or ./st-ai-assets)")
    delete.set_defaults(func=cmd_video_delete)

    audit_ = sub.add_parser("audit", help="admin changes (Admin API and CLI), newest first")
    audit_.add_argument("--limit", type=_limit, default=50)
    audit_.add_argument("--operation", help="e.g. token.create, channel.update, price.set")
    audit_.add_argument("--target", help="a token, channel, model or video id")
    audit_.add_argument("--json", action="store_true")
    audit_.set_defaults(func=functools.partial(cmd_audit, open_db=open_db, table=table))

    admin_key = sub.add_parser("admin-key", help="the Admin API's key").add_subparsers(dest="action", required=True)
    new = admin_key.add_parser("rotate", help="make a new admin key (printed once); the old one stops working")
    new.set_defaults(func=functools.partial(cmd_admin_key_rotate, open_db=open_db))
    return [list_, show, delete, audit_, new]  # the token and channel ones are in their groups
