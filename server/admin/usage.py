"""The Admin API's usage query: `st-ai usage --json`'s report (server/store/usage_report.py)
from a request's filters, refused with the report's own one-line messages."""
from __future__ import annotations

import sqlite_utils

from server.billing import money
from server.store import usage_report as reports


def query(body: dict) -> reports.UsageQuery:
    """UsageQueryError (a 400) for a bad date or an unknown grouping. A filter given empty
    (`?since=`) is refused as the CLI refuses `--since ""`, not taken as absent."""
    def when(key: str):
        return reports.parse_when(body[key]) if key in body else None

    return reports.UsageQuery(token=body.get("token"), model=body.get("model"), channel=body.get("channel"),
                              since=when("since"), until=when("until"), by=reports.parse_by(body.get("by") or []))


def report(db: sqlite_utils.Database, body: dict) -> dict:
    return {"object": "list", "data": reports.report(db, query(body)), "currency": money.CURRENCY}
