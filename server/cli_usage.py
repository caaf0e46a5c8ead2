"""`st-ai usage [filters] [--by ...] [--json]` and `st-ai usage prune --before DATE`."""
from __future__ import annotations

import argparse
import functools
import json
from typing import Callable

from server.billing import money
from server.store import usage_prune
from server.store import usage_report as reports

OpenDb = Callable[[argparse.Namespace], object]
PrintTable = Callable[[list[list[str]], list[str]], None]

_HEADERS = {"token": "TOKEN", "model": "MODEL", "channel": "CHANNEL", "day": "DAY (UTC)", "api": "API"}
_COLUMNS = [("requests", "REQUESTS"), ("errors", "ERRORS"), ("prompt_tokens", "PROMPT"),
            ("cached_tokens", "CACHED"), ("cache_write_tokens", "CACHE WRITE"), ("completion_tokens", "COMPLETION"), ("images", "IMAGES"),
            ("video_seconds", "VIDEO S"), ("cost", f"COST ({money.CURRENCY})")]
DATE_HELP = "YYYY-MM-DD (UTC midnight) or an ISO-8601 time with its offset, e.g. 2026-01-31T18:00:00+01:00"


def _argument(parse):
    """A report parser as an argparse type: a refusal is argparse's one line."""
    def check(text: str):
        try:
            return parse(text)
        except reports.UsageQueryError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return check


def _key_cell(group: dict, key: str) -> str:
    if key not in ("token", "channel"):
        return "-" if group[key] is None else str(group[key])
    name, id_ = group[key], group[f"{key}_id"]
    if id_ is None:
        return "-"
    shown = name if name is not None else f"#{id_}"
    return f"{shown} (deleted)" if group[f"{key}_deleted"] else shown


def cmd_usage(args: argparse.Namespace, open_db: OpenDb, table: PrintTable, parser: argparse.ArgumentParser) -> None:
    try:
        by = reports.parse_by(args.by or [])
        query = reports.UsageQuery(token=args.token, model=args.model, channel=args.channel,
                                   since=args.since, until=args.until, by=by)
        groups = reports.report(open_db(args), query)
    except reports.UsageQueryError as exc:
        parser.error(str(exc))
    if args.json:
        print(json.dumps(groups, indent=2))
        return
    table([[*(_key_cell(g, k) for k in by), *(str(g[c]) for c, _ in _COLUMNS)] for g in groups],
          [*(_HEADERS[k] for k in by), *(h for _, h in _COLUMNS)])


def cmd_prune(args: argparse.Namespace, open_db: OpenDb) -> None:
    pruned = usage_prune.prune(open_db(args), args.before)
    limit = pruned.before.strftime("%Y-%m-%d")
    if not pruned.rows:
        print(f"nothing to fold: the ledger has no rows before {limit} 00:00 UTC")
        return
    days = sorted(pruned.days)
    span = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    print(f"folded {pruned.rows} ledger rows of {len(days)} day{'s' * (len(days) != 1)} ({span}, UTC) into "
          f"daily totals and deleted them (whole days before {limit} 00:00 UTC)")


def add_commands(sub: argparse._SubParsersAction, open_db: OpenDb, table: PrintTable) -> list[argparse.ArgumentParser]:
    """Adds `usage` and `usage prune` to the `st-ai` parser; returns the parsers that open
    the database."""
    when = _argument(reports.parse_when)
    usage = sub.add_parser("usage", help="spend, requests, errors and tokens from the ledger",
                           description="Reports on every client request st-ai booked, days in UTC. "
                                       f"DATE: {DATE_HELP}. --since is inclusive, --until exclusive.")
    usage.add_argument("--token", metavar="NAME", help="only this token (a deleted token's name too)")
    usage.add_argument("--model", metavar="MODEL", help="only this public model")
    usage.add_argument("--channel", metavar="NAME", help="only this channel (a deleted channel's name too)")
    usage.add_argument("--since", type=when, metavar="DATE", help="from this time on (inclusive)")
    usage.add_argument("--until", type=when, metavar="DATE", help="before this time (exclusive)")
    usage.add_argument("--by", action="append", metavar="token|model|channel|day|api",
                       help="one row per group; repeat it or use commas for several (default: one total row)")
    usage.add_argument("--json", action="store_true", help="a JSON list, one object per group")
    usage.set_defaults(func=functools.partial(cmd_usage, open_db=open_db, table=table, parser=usage))
    actions = usage.add_subparsers(dest="action", metavar="{prune}")
    prune = actions.add_parser(
        "prune", help="fold ledger rows of whole UTC days before DATE into daily totals",
        description="Folds ledger rows of every whole UTC day before DATE into daily totals (which reports "
                    "read too) and deletes them, in small batches, safe while st-ai runs. A DATE inside a day "
                    "prunes up to that day's midnight; today is never pruned. Tokens' used is not changed.")
    prune.add_argument("--before", type=when, required=True, metavar="DATE", help=DATE_HELP)
    prune.set_defaults(func=functools.partial(cmd_prune, open_db=open_db))
    return [usage, prune]
