"""Changes to an existing channel's settings. Plain SQL that does not commit: the
caller's transaction (an audited admin change) commits it with its audit row. The
settings are checked before, by server/channel_rules.py, as a new channel's are."""
from __future__ import annotations

import json
import sqlite3

from server.store.channels import Timeouts, native_apis_column, timeout_columns


def replace_settings(conn: sqlite3.Connection, channel_id: int, *, base_url: str, key: str,
                     models: list[str], model_map: dict[str, str], priority: int, weight: int = 1,
                     timeouts: Timeouts = Timeouts(), api_version: str | None = None,
                     native_apis: frozenset[str] | None = None) -> None:
    columns = {**timeout_columns(timeouts), "api_version": api_version,
               "native_apis": native_apis_column(native_apis)}
    conn.execute("UPDATE channels SET base_url = ?, key = ?, models = ?, model_map = ?, priority = ?, weight = ?, "
                 + ", ".join(f"{c} = ?" for c in columns) + " WHERE id = ?",
                 [base_url.rstrip("/"), key, json.dumps(list(dict.fromkeys(models))), json.dumps(model_map),
                  priority, weight, *columns.values(), channel_id])
