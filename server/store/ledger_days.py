"""What the usage reports and the pruner share: UTC days of ledger rows, exact sums of video
seconds, and the names of tokens and channels, deleted ones included.

Days are UTC calendar days, named `YYYY-MM-DD`. A ledger row's day is computed from its
`ts` (epoch seconds, REAL) with integer arithmetic, so a row a microsecond before midnight
is never rounded into the next day (SQLite's date functions round to the millisecond).
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

DAY_SECONDS = 86_400

# the UTC day of a ledger row; CAST truncates, and the correction undoes a quotient that
# floating point rounded up to the next whole day
_DAY_NUMBER = "(CAST(ts / 86400 AS INTEGER) - (CAST(ts / 86400 AS INTEGER) * 86400 > ts))"
LEDGER_DAY = f"date({_DAY_NUMBER} * 86400, 'unixepoch')"


def day_of(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d")


def midnight_before(moment: dt.datetime) -> dt.datetime:
    """The UTC midnight that starts the day `moment` falls in."""
    utc = moment.astimezone(dt.timezone.utc)
    return dt.datetime(utc.year, utc.month, utc.day, tzinfo=dt.timezone.utc)


def midnight_after(moment: dt.datetime) -> dt.datetime:
    """`moment` itself when it is a UTC midnight, else the next one."""
    start = midnight_before(moment)
    return start if start == moment else start + dt.timedelta(days=1)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"ledger video_seconds {text!r} is not a decimal") from None
    if not value.is_finite():
        raise ValueError(f"ledger video_seconds {text!r} is not a finite decimal")
    return value


def _text(total: Decimal) -> str:
    return format(total.normalize(), "f") if total else "0"


def add_seconds(*texts: str | None) -> str:
    """Exact sum of decimal texts ("5", "0.1"), as the shortest decimal text."""
    return _text(sum((_decimal(t) for t in texts if t is not None), Decimal(0)))


class _SecondsSum:
    """SQLite aggregate `seconds_sum(text)`: exact, where SUM() would go through floats."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, text: str | None) -> None:
        if text is not None:
            self.total += _decimal(str(text))

    def finalize(self) -> str:
        return _text(self.total)


def register(conn: sqlite3.Connection) -> None:
    """Make `seconds_sum` available on `conn` (per connection; cheap to repeat)."""
    conn.create_aggregate("seconds_sum", 1, _SecondsSum)


@dataclass(frozen=True)
class Named:
    id: int | None
    name: str | None  # None: deleted before st-ai remembered names
    deleted: bool


def names(conn: sqlite3.Connection, kind: str) -> dict[int, Named]:
    """Every id of `kind` ("token" or "channel") st-ai knows a name for, live or deleted."""
    table = {"token": "tokens", "channel": "channels"}[kind]
    known = {id_: Named(id_, name, True) for id_, name in
             conn.execute("SELECT id, name FROM deleted_names WHERE kind = ?", [kind])}
    known.update({id_: Named(id_, name, False) for id_, name in conn.execute(f"SELECT id, name FROM {table}")})
    return known


def ids_named(conn: sqlite3.Connection, kind: str, name: str) -> list[int]:
    """The ids that carry or carried `name` (a name can be reused after a delete)."""
    return sorted(n.id for n in names(conn, kind).values() if n.name == name)
