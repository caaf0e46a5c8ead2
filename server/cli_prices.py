"""`st-ai price set|list|delete`: the operator's prices, over st-ai's dated defaults."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Callable

from server.admin import audit
from server.admin import prices as admin_prices
from server.admin.errors import AdminError
from server.billing import money
from server.billing import price_view as view
from server.billing import prices as price_rules
from server.store import prices as price_store

OpenDb = Callable[[argparse.Namespace], object]
PrintTable = Callable[[list[list[str]], list[str]], None]


def _argument(parse):
    """A money or price-key parser as an argparse type: a refusal is argparse's one line."""
    def check(text: str):
        try:
            return parse(text)
        except (money.MoneyError, price_rules.PriceError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return check


def _keyed_amount(key_of, default_key: str | None = None):
    """KEY=AMOUNT (or AMOUNT alone, when `default_key`) as (key, micro-units)."""
    def parse(text: str) -> tuple[str, int]:
        key, sep, amount = text.rpartition("=")
        if not sep:
            if default_key is None:
                raise price_rules.PriceError(f"{text!r} is not KEY=AMOUNT, e.g. 1024x1024:hd=0.08")
            key = default_key
        return key_of(key), money.parse_amount(amount)
    return _argument(parse)


def _one_line_refusals(command):
    @functools.wraps(command)
    def run(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except (price_rules.PriceError, money.MoneyError, AdminError) as exc:
            sys.exit(f"st-ai: {exc}")
    return run


@_one_line_refusals
def cmd_set(args: argparse.Namespace, open_db: OpenDb) -> None:
    changes = price_rules.PriceChanges(
        input=args.input, cached_input=args.cached_input, output=args.output, cache_write=args.cache_write,
        per_image=dict(args.per_image or []), per_second=dict(args.per_second or []), per_request=args.per_request)
    price = admin_prices.set_price(open_db(args), audit.CLI, args.model, changes)
    print(f"price of '{price.model}' set ({money.CURRENCY}): {view.price_summary(price)}")


def cmd_list(args: argparse.Namespace, open_db: OpenDb, table: PrintTable) -> None:
    prices = price_store.effective_prices(open_db(args)).values()
    if args.json:
        print(json.dumps([view.price_json(p) for p in prices], indent=2))
        return
    print(f"token prices per 1M tokens, in {money.CURRENCY}")
    table([view.price_row(p) for p in prices], view.PRICE_HEADER)


@_one_line_refusals
def cmd_delete(args: argparse.Namespace, open_db: OpenDb) -> None:
    fallback = admin_prices.delete_price(open_db(args), audit.CLI, args.model)
    print(f"operator price of '{args.model}' deleted"
          + (" (st-ai's default price applies again)" if fallback else " (the model is now unpriced)"))


def add_commands(sub: argparse._SubParsersAction, open_db: OpenDb, table: PrintTable) -> argparse._SubParsersAction:
    """Adds `price set|list|delete` to the `st-ai` parser; returns their subparsers."""
    price = sub.add_parser("price", help="model prices (the operator's over st-ai's defaults)"
                           ).add_subparsers(dest="action", required=True)
    amount = _argument(money.parse_amount)
    set_ = price.add_parser("set", help="set a model's prices; merges with what it already has",
                            description="Amounts are decimals in the operator's currency (USD by default); "
                                        "token prices are per 1M tokens.")
    set_.add_argument("model")
    set_.add_argument("--input", type=amount, metavar="X", help="per 1M prompt tokens not cached")
    set_.add_argument("--cached-input", type=amount, metavar="X",
                      help="per 1M cached prompt tokens (default: the input price)")
    set_.add_argument("--output", type=amount, metavar="X", help="per 1M completion tokens")
    set_.add_argument("--cache-write", type=amount, metavar="X",
                      help="per 1M tokens written to a prompt cache (default: the input price)")
    set_.add_argument("--per-image", type=_keyed_amount(price_rules.image_key), action="append",
                      metavar="SIZE[:QUALITY]=X",
                      help="per image, e.g. 1024x1024:hd=0.08; a size alone prices any quality (repeatable)")
    set_.add_argument("--per-second", type=_keyed_amount(price_rules.resolution_key, price_rules.DEFAULT_RESOLUTION),
                      action="append", metavar="[RESOLUTION=]X",
                      help="per second of video; RESOLUTION is WIDTHxHEIGHT (either orientation) or the "
                           "short side as 720p; without one, any resolution (repeatable)")
    set_.add_argument("--per-request", type=amount, metavar="X", help="per request, added to the rest")
    set_.set_defaults(func=functools.partial(cmd_set, open_db=open_db))
    list_ = price.add_parser("list", help="effective prices, with where each comes from")
    list_.add_argument("--json", action="store_true", help="a JSON list, amounts as decimal strings")
    list_.set_defaults(func=functools.partial(cmd_list, open_db=open_db, table=table))
    delete = price.add_parser("delete", help="remove the operator's price of a model")
    delete.add_argument("model")
    delete.set_defaults(func=functools.partial(cmd_delete, open_db=open_db))
    return price
