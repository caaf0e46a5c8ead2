"""The database's schema version and the migrations that bring it forward.

The version lives in SQLite's `PRAGMA user_version`: version N means the first N entries
of `MIGRATIONS` have been applied. Every open (server start, every CLI command) calls
`migrate`, which applies the missing steps in order, each in ONE transaction together
with the version bump, so a crash or a failing step leaves the database at the previous
version, untouched. A database from a newer st-ai is refused, never used.

Before the first versioned release, st-ai created its tables with `CREATE ... IF NOT
EXISTS` and left `user_version` at 0. Step 1 is exactly that schema, frozen here as SQL
and still `IF NOT EXISTS`, so such a database is recognised as version 1 (step 1 only adds
whatever an older release lacked) and a fresh file is built by the same steps.

How to change the schema (the only way a table changes):
  1. Write a function `def _vN_what(conn: sqlite3.Connection) -> None` that runs plain SQL
     on `conn` (ALTER TABLE, CREATE TABLE, UPDATE ...). It must not commit: `migrate` has
     already opened the transaction and commits it with the new version. sqlite-utils
     helpers that wrap themselves in `with db.conn:` (insert, transform) commit, so use SQL;
     `migrate` refuses a step that ends its transaction early.
  2. Append `Migration("what it does", _vN_what)` to `MIGRATIONS`; set `backup=True` if
     it rewrites or drops existing rows or columns (a copy of the database at the old
     version is written beside it first, `<db>.v<old>.bak`). Adding tables, columns or
     indexes needs no copy.
  3. Update the store module that reads the table (e.g. `videos.COLUMNS`) and add a test
     that opens tests/fixtures/release_db.sql and checks the step kept its data.
  A step that adds a column to one of `CATALOG_TABLES` ends with `_catalog_triggers(conn)`,
  so that a change to the new column reaches every process's catalog too
  (tests/test_catalog_changes.py checks that every column is watched).
  Never edit a step that has been released: databases out there are past it.
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from typing import Callable, Sequence

log = logging.getLogger("st-ai.schema")


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[sqlite3.Connection], None]
    backup: bool = False  # copy the database aside first: the step rewrites existing data


class SchemaError(sqlite3.DatabaseError):
    """The database cannot be brought to this st-ai's schema (sqlite3.Error, so every
    command already reports it as one line about the database)."""


_V1_TABLES = """
CREATE TABLE IF NOT EXISTS "tokens" (
   "id" INTEGER PRIMARY KEY,
   "name" TEXT NOT NULL,
   "key_hash" TEXT NOT NULL,
   "key_hint" TEXT,
   "enabled" INTEGER NOT NULL DEFAULT 1,
   "expires_at" INTEGER,
   "models" TEXT,
   "created_at" INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS "idx_tokens_name" ON "tokens" ("name");
CREATE UNIQUE INDEX IF NOT EXISTS "idx_tokens_key_hash" ON "tokens" ("key_hash");
CREATE TABLE IF NOT EXISTS "channels" (
   "id" INTEGER PRIMARY KEY,
   "name" TEXT NOT NULL,
   "type" TEXT NOT NULL,
   "base_url" TEXT,
   "key" TEXT,
   "models" TEXT NOT NULL,
   "model_map" TEXT,
   "enabled" INTEGER NOT NULL DEFAULT 1,
   "priority" INTEGER DEFAULT 0,
   "created_at" INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS "idx_channels_name" ON "channels" ("name");
CREATE TABLE IF NOT EXISTS "usage" (
   "id" INTEGER PRIMARY KEY,
   "ts" INTEGER,
   "token_id" INTEGER,
   "channel_id" INTEGER,
   "model" TEXT,
   "upstream_model" TEXT,
   "kind" TEXT,
   "stream" INTEGER,
   "status" INTEGER,
   "prompt_tokens" INTEGER,
   "completion_tokens" INTEGER,
   "total_tokens" INTEGER,
   "latency_ms" INTEGER
);
CREATE INDEX IF NOT EXISTS "idx_usage_token_id_ts" ON "usage" ("token_id", "ts");
CREATE TABLE IF NOT EXISTS "videos" (
   "id" TEXT PRIMARY KEY,
   "token_id" INTEGER NOT NULL,
   "model" TEXT NOT NULL,
   "channel_id" INTEGER,
   "upstream_model" TEXT,
   "upstream_id" TEXT,
   "request" TEXT,
   "asked" TEXT,
   "status" TEXT NOT NULL,
   "progress" INTEGER DEFAULT 0,
   "error_code" TEXT,
   "error_message" TEXT,
   "created_at" INTEGER NOT NULL,
   "updated_at" INTEGER,
   "completed_at" INTEGER,
   "expires_at" INTEGER,
   "upstream_updated_at" INTEGER,
   "asset_path" TEXT,
   "asset_size" INTEGER,
   "thumbnail_path" TEXT,
   "thumbnail_type" TEXT,
   "cost" REAL,
   "next_poll_at" REAL,
   "attempts" INTEGER DEFAULT 0,
   "failures" INTEGER DEFAULT 0,
   "lease_owner" TEXT,
   "lease_until" REAL,
   "remixed_from" TEXT,
   "deleted" INTEGER DEFAULT 0
);
CREATE INDEX IF NOT EXISTS "idx_videos_token_id_created_at" ON "videos" ("token_id", "created_at");
CREATE INDEX IF NOT EXISTS "idx_videos_status_next_poll_at" ON "videos" ("status", "next_poll_at");
"""


def _v1_tables(conn: sqlite3.Connection) -> None:
    # executescript() would COMMIT first; one statement at a time stays in the transaction
    for statement in _V1_TABLES.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v2_prices(conn: sqlite3.Connection) -> None:
    # the operator's price per public model (server/store/prices.py); amounts in micro-units
    conn.execute("""CREATE TABLE "prices" (
   "model" TEXT PRIMARY KEY,
   "input" INTEGER,
   "cached_input" INTEGER,
   "output" INTEGER,
   "cache_write" INTEGER,
   "per_image" TEXT NOT NULL,
   "per_second" TEXT NOT NULL,
   "per_request" INTEGER,
   "updated_at" INTEGER NOT NULL
)""")


def _v3_quotas_and_ledger(conn: sqlite3.Connection) -> None:
    # server/store/quota.py: a token's quota and settled spend (micro-units; quota NULL is
    # unlimited), the reservations of requests in flight, and one ledger row per request
    conn.execute('ALTER TABLE "tokens" ADD COLUMN "quota" INTEGER')
    conn.execute('ALTER TABLE "tokens" ADD COLUMN "used" INTEGER NOT NULL DEFAULT 0')
    conn.execute("""CREATE TABLE "reservations" (
   "id" INTEGER PRIMARY KEY,
   "token_id" INTEGER NOT NULL,
   "amount" INTEGER NOT NULL,
   "owner" TEXT NOT NULL,
   "created_at" REAL NOT NULL
)""")
    conn.execute('CREATE INDEX "idx_reservations_token_id" ON "reservations" ("token_id")')
    conn.execute("""CREATE TABLE "ledger" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL NOT NULL,
   "request_id" TEXT,
   "token_id" INTEGER NOT NULL,
   "model" TEXT,
   "upstream_model" TEXT,
   "channel_id" INTEGER,
   "kind" TEXT NOT NULL,
   "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
   "cached_tokens" INTEGER NOT NULL DEFAULT 0,
   "completion_tokens" INTEGER NOT NULL DEFAULT 0,
   "images" INTEGER NOT NULL DEFAULT 0,
   "video_seconds" TEXT,
   "cost" INTEGER NOT NULL DEFAULT 0,
   "latency_ms" INTEGER,
   "ttft_ms" INTEGER,
   "status" INTEGER NOT NULL,
   "error_code" TEXT,
   "stream" INTEGER NOT NULL DEFAULT 0,
   "client_address" TEXT,
   "estimate" INTEGER NOT NULL DEFAULT 0
)""")
    conn.execute('CREATE INDEX "idx_ledger_token_id_ts" ON "ledger" ("token_id", "ts")')
    conn.execute('CREATE INDEX "idx_ledger_ts" ON "ledger" ("ts")')


def _v4_rate_limits(conn: sqlite3.Connection) -> None:
    # server/store/rate_limits.py: a token's limits (NULL: none; allow_ip a JSON list of
    # CIDRs), the sliding log of its recent requests and its requests in flight
    for column in ("rpm", "tpm", "max_concurrency"):
        conn.execute(f'ALTER TABLE "tokens" ADD COLUMN "{column}" INTEGER')
    conn.execute('ALTER TABLE "tokens" ADD COLUMN "allow_ip" TEXT')
    conn.execute("""CREATE TABLE "rate_events" (
   "id" INTEGER PRIMARY KEY,
   "token_id" INTEGER NOT NULL,
   "ts" REAL NOT NULL,
   "tokens" INTEGER NOT NULL DEFAULT 0
)""")
    conn.execute('CREATE INDEX "idx_rate_events_token_id_ts" ON "rate_events" ("token_id", "ts")')
    conn.execute("""CREATE TABLE "inflight" (
   "id" INTEGER PRIMARY KEY,
   "token_id" INTEGER NOT NULL,
   "owner" TEXT NOT NULL,
   "created_at" REAL NOT NULL
)""")
    conn.execute('CREATE INDEX "idx_inflight_token_id" ON "inflight" ("token_id")')
def _never_reuse_ids(conn: sqlite3.Connection, table: str) -> None:
    """Rebuild `table` with `AUTOINCREMENT`: SQLite otherwise gives a new row the id of the
    newest deleted one, and the ledger, which names tokens and channels by id, would book a
    deleted token's past spend to the next token created. Generic over the table's current
    SQL, so columns other steps add survive whichever step runs first."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]).fetchone()[0]
    if "AUTOINCREMENT" in sql.upper():
        return
    rebuilt = f"{table}_rebuilt"
    new_sql, found = re.subn(r'("id"|\bid\b)(\s+INTEGER\s+PRIMARY\s+KEY)', r"\1\2 AUTOINCREMENT", sql, count=1,
                             flags=re.IGNORECASE)
    if not found:
        raise SchemaError(f"table {table} has no INTEGER PRIMARY KEY id column")
    new_sql = f'CREATE TABLE "{rebuilt}" ' + new_sql[new_sql.index("("):]
    indexes = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                                          "AND sql IS NOT NULL", [table])]
    columns = ", ".join(f'"{r[1]}"' for r in conn.execute(f'PRAGMA table_info("{table}")'))
    conn.execute(new_sql)
    conn.execute(f'INSERT INTO "{rebuilt}" ({columns}) SELECT {columns} FROM "{table}"')
    conn.execute(f'DROP TABLE "{table}"')
    # legacy rename: leave other steps' triggers and views that name the table as they are
    conn.execute("PRAGMA legacy_alter_table = ON")
    try:
        conn.execute(f'ALTER TABLE "{rebuilt}" RENAME TO "{table}"')
    finally:
        conn.execute("PRAGMA legacy_alter_table = OFF")
    for index in indexes:
        conn.execute(index)
    # ids already gone before this step may still be named by ledger or usage rows
    column = "token_id" if table == "tokens" else "channel_id"
    highest = [conn.execute(f'SELECT MAX("id") FROM "{table}"').fetchone()[0] or 0]
    for (other,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        if column in {r[1] for r in conn.execute(f'PRAGMA table_info("{other}")')}:
            highest.append(conn.execute(f'SELECT MAX("{column}") FROM "{other}"').fetchone()[0] or 0)
    conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", [table])
    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", [table, max(highest)])


def _v8_usage_daily_totals(conn: sqlite3.Connection) -> None:
    # server/store/usage_report.py and usage_prune.py: ledger rows folded into one row per
    # UTC day and token, model, channel and kind; the names of deleted tokens and channels,
    # so reports still name their spend
    for table in ("tokens", "channels"):
        _never_reuse_ids(conn, table)
    conn.execute("""CREATE TABLE "usage_daily" (
   "id" INTEGER PRIMARY KEY,
   "day" TEXT NOT NULL,
   "token_id" INTEGER,
   "model" TEXT,
   "channel_id" INTEGER,
   "kind" TEXT NOT NULL,
   "requests" INTEGER NOT NULL DEFAULT 0,
   "errors" INTEGER NOT NULL DEFAULT 0,
   "prompt_tokens" INTEGER NOT NULL DEFAULT 0,
   "cached_tokens" INTEGER NOT NULL DEFAULT 0,
   "completion_tokens" INTEGER NOT NULL DEFAULT 0,
   "images" INTEGER NOT NULL DEFAULT 0,
   "video_seconds" TEXT NOT NULL DEFAULT '0',
   "cost" INTEGER NOT NULL DEFAULT 0
)""")
    conn.execute('CREATE INDEX "idx_usage_daily_day_key" ON "usage_daily" '
                 '("day", "token_id", "model", "channel_id", "kind")')
    conn.execute("""CREATE TABLE "deleted_names" (
   "kind" TEXT NOT NULL,
   "id" INTEGER NOT NULL,
   "name" TEXT NOT NULL,
   "deleted_at" INTEGER NOT NULL,
   PRIMARY KEY ("kind", "id")
)""")
    for table, kind in (("tokens", "token"), ("channels", "channel")):
        conn.execute(f"""CREATE TRIGGER "{table}_remember_deleted_name" AFTER DELETE ON "{table}" BEGIN
   INSERT OR REPLACE INTO "deleted_names" ("kind", "id", "name", "deleted_at")
   VALUES ('{kind}', old."id", old."name", CAST(strftime('%s', 'now') AS INTEGER));
END""")
def _admin_key_and_audit(conn: sqlite3.Connection) -> None:
    # server/admin/keys.py: the admin key, stored only as its hash (revoked keys stay
    # for the audit's sake); server/admin/audit.py: one row per admin change
    conn.execute("""CREATE TABLE "admin_keys" (
   "id" INTEGER PRIMARY KEY,
   "key_hash" TEXT NOT NULL,
   "key_hint" TEXT NOT NULL,
   "created_at" INTEGER NOT NULL,
   "revoked_at" INTEGER
)""")
    conn.execute("""CREATE TABLE "audit" (
   "id" INTEGER PRIMARY KEY,
   "ts" REAL NOT NULL,
   "actor" TEXT NOT NULL,
   "operation" TEXT NOT NULL,
   "target" TEXT,
   "request_id" TEXT,
   "summary" TEXT NOT NULL
)""")
    conn.execute('CREATE INDEX "idx_audit_operation" ON "audit" ("operation")')
def _v5_attempts_and_usage_history(conn: sqlite3.Connection) -> None:
    # server/store/quota.py: every upstream attempt beside its request's ledger row, and a
    # ledger flag for rows folded from the release's `usage` table
    conn.execute("""CREATE TABLE "attempts" (
   "id" INTEGER PRIMARY KEY,
   "ledger_id" INTEGER NOT NULL REFERENCES "ledger" ("id"),
   "channel_id" INTEGER,
   "upstream_model" TEXT,
   "status" INTEGER NOT NULL,
   "error_code" TEXT,
   "latency_ms" INTEGER
)""")
    conn.execute('CREATE INDEX "idx_attempts_ledger_id" ON "attempts" ("ledger_id")')
    conn.execute('ALTER TABLE "ledger" ADD COLUMN "history" INTEGER NOT NULL DEFAULT 0')
    # The release wrote one `usage` row per upstream attempt and kept no request rows, so
    # which attempts made one request is lost: each old row becomes a ledger row of its own
    # (history = 1, cost 0: that release had no prices and every token's `used` is 0) with
    # its one attempt beside it. Reports over old periods count what the release counted.
    # While the attempts are linked, `history` holds minus the old row's id.
    conn.execute("""INSERT INTO ledger (ts, token_id, model, upstream_model, channel_id, kind,
                                        prompt_tokens, completion_tokens, latency_ms, status, stream, history)
                    SELECT ts, token_id, model, upstream_model, channel_id, COALESCE(kind, 'chat'),
                           COALESCE(prompt_tokens, 0), COALESCE(completion_tokens, 0), latency_ms,
                           COALESCE(status, 200), COALESCE(stream, 0), -id
                    FROM usage WHERE token_id IS NOT NULL ORDER BY id""")
    conn.execute("""INSERT INTO attempts (ledger_id, channel_id, upstream_model, status, latency_ms)
                    SELECT l.id, u.channel_id, u.upstream_model, COALESCE(u.status, 200), u.latency_ms
                    FROM ledger l JOIN usage u ON u.id = -l.history WHERE l.history < 0 ORDER BY l.id""")
    conn.execute("UPDATE ledger SET history = 1 WHERE history < 0")
    # Nothing writes to `usage` any more (video tasks book their ledger row when they
    # settle); the table stays, emptied, so this step rewrites no table's definition.
    conn.execute("DELETE FROM usage WHERE token_id IS NOT NULL")


def _v6_video_billing(conn: sqlite3.Connection) -> None:
    # server/billing/video_billing.py: a video task holds its create's reservation until it
    # settles (reservations.video_id, skipped by the stale sweep); a task is submitted
    # upstream only once the answer carrying its id went out (confirmed; tasks of earlier
    # releases were answered long ago, hence the default); its create's request id, client
    # address and cost are kept for its ledger row; Idempotency-Key per token.
    conn.execute('ALTER TABLE "reservations" ADD COLUMN "video_id" TEXT')
    conn.execute('CREATE INDEX "idx_reservations_video_id" ON "reservations" ("video_id")')
    for column in ('"confirmed" INTEGER NOT NULL DEFAULT 1', '"reservation_id" INTEGER', '"charge" INTEGER',
                   '"request_id" TEXT', '"client_address" TEXT', '"idempotency_key" TEXT',
                   '"request_hash" TEXT'):
        conn.execute(f'ALTER TABLE "videos" ADD COLUMN {column}')
    conn.execute('CREATE UNIQUE INDEX "idx_videos_token_id_idempotency_key" ON "videos" ("token_id", '
                 '"idempotency_key") WHERE "idempotency_key" IS NOT NULL')


def _v9_webhooks(conn: sqlite3.Connection) -> None:
    # server/store/webhook_events.py: a token's webhook URL and signing secret (kept like a
    # channel's upstream key: st-ai must sign with it, so it cannot be only a hash); a
    # task's own callback_url; the outbox of events, written in the transaction that ends
    # the task and sent after it commits (leased per row, retried with backoff)
    conn.execute('ALTER TABLE "tokens" ADD COLUMN "webhook_url" TEXT')
    conn.execute('ALTER TABLE "tokens" ADD COLUMN "webhook_secret" TEXT')
    conn.execute('ALTER TABLE "videos" ADD COLUMN "callback_url" TEXT')
    conn.execute("""CREATE TABLE "webhook_events" (
   "id" TEXT PRIMARY KEY,
   "token_id" INTEGER NOT NULL,
   "video_id" TEXT NOT NULL,
   "type" TEXT NOT NULL,
   "url" TEXT NOT NULL,
   "from_client" INTEGER NOT NULL DEFAULT 0,
   "payload" TEXT NOT NULL,
   "created_at" INTEGER NOT NULL,
   "status" TEXT NOT NULL DEFAULT 'pending',
   "attempts" INTEGER NOT NULL DEFAULT 0,
   "next_at" REAL NOT NULL,
   "lease_owner" TEXT,
   "lease_until" REAL,
   "last_error" TEXT,
   "done_at" REAL
)""")
    conn.execute('CREATE INDEX "idx_webhook_events_status_next_at" ON "webhook_events" ("status", "next_at")')


def _v10_channel_resilience(conn: sqlite3.Connection) -> None:
    # server/core: a channel's weight inside its priority tier, its own timeouts (NULL: the
    # gateway's defaults), why it is disabled and whether st-ai did it (a rejected key,
    # re-enabled by a successful probe); `channel_health` is the circuit breaker's state,
    # shared by every process on the database
    for column in ('"weight" INTEGER NOT NULL DEFAULT 1', '"timeout_connect" REAL', '"timeout_first_byte" REAL',
                   '"timeout_idle" REAL', '"timeout_total" REAL', '"disabled_reason" TEXT',
                   '"auto_disabled" INTEGER NOT NULL DEFAULT 0'):
        conn.execute(f'ALTER TABLE "channels" ADD COLUMN {column}')
    conn.execute("""CREATE TABLE "channel_health" (
   "channel_id" INTEGER PRIMARY KEY,
   "failures" INTEGER NOT NULL DEFAULT 0,
   "cooldowns" INTEGER NOT NULL DEFAULT 0,
   "cooling_until" REAL,
   "trial" INTEGER NOT NULL DEFAULT 0,
   "last_error" TEXT,
   "updated_at" REAL NOT NULL
)""")


def _v11_api_versions_and_cache_writes(conn: sqlite3.Connection) -> None:
    # the API version a channel's upstream is called with (Azure's api-version, Anthropic's
    # anthropic-version, Gemini's path version; NULL: the provider's current default), and
    # the prompt tokens an upstream wrote to its prompt cache, priced at the cache-write price
    conn.execute('ALTER TABLE "channels" ADD COLUMN "api_version" TEXT')
    for table in ("ledger", "usage_daily"):
        conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "cache_write_tokens" INTEGER NOT NULL DEFAULT 0')


def _v12_rate_buckets(conn: sqlite3.Connection) -> None:
    # server/store/rate_limits.py: a token's requests and tokens per second of the clock in
    # place of one row per request, so a check reads at most 61 rows whatever the traffic.
    # The log's rows are folded in (the minute before the upgrade still counts): no row of
    # lasting value is dropped, so the step needs no copy of the database
    conn.execute("""CREATE TABLE "rate_buckets" (
   "token_id" INTEGER NOT NULL,
   "second" INTEGER NOT NULL,
   "requests" INTEGER NOT NULL,
   "tokens" INTEGER NOT NULL,
   "last_ts" REAL NOT NULL,
   PRIMARY KEY ("token_id", "second")
) WITHOUT ROWID""")
    conn.execute('INSERT INTO "rate_buckets" (token_id, second, requests, tokens, last_ts) '
                 'SELECT token_id, CAST(ts AS INTEGER), COUNT(*), SUM(tokens), MAX(ts) FROM "rate_events" '
                 'GROUP BY token_id, CAST(ts AS INTEGER)')
    conn.execute('DROP TABLE "rate_events"')


def _v13_responses_and_apis(conn: sqlite3.Connection) -> None:
    # server/store/responses.py: stored Responses API responses, the token's own (input
    # items: the request's, the earlier turns not repeated; output: the whole response
    # object); which client API a request came in by (NULL: booked before this step); the
    # APIs a channel's upstream speaks natively (NULL: its type's default)
    conn.execute("""CREATE TABLE "responses" (
   "id" TEXT PRIMARY KEY,
   "token_id" INTEGER NOT NULL,
   "created_at" REAL NOT NULL,
   "model" TEXT,
   "status" TEXT NOT NULL,
   "previous_response_id" TEXT,
   "input_items" TEXT NOT NULL,
   "output" TEXT NOT NULL,
   "usage" TEXT,
   "expires_at" REAL
)""")
    conn.execute('CREATE INDEX "idx_responses_expires_at" ON "responses" ("expires_at")')
    for table in ("ledger", "usage_daily"):
        conn.execute(f'ALTER TABLE "{table}" ADD COLUMN "api" TEXT')
    conn.execute('ALTER TABLE "channels" ADD COLUMN "native_apis" TEXT')


# What server/catalog.py's snapshot is made of. A change to one of them (by any process)
# moves `catalog_changes.n`, which every gateway process polls instead of SQLite's
# data_version: that moves with every commit of another process, so each worker of
# `serve --workers N` reloaded the whole catalog four times a second under load, the
# others' ledger rows being commits too. A settlement's `UPDATE tokens SET used = ...`
# names no column the catalog holds, so it moves nothing.
CATALOG_TABLES = ("tokens", "channels", "prices", "channel_health")
TOKENS_NOT_IN_CATALOG = ("used",)


def _catalog_triggers(conn: sqlite3.Connection) -> None:
    """(Re)create the triggers that count changes to the catalog's tables: a step that adds
    a column to one of them calls this again, so that the new column counts too."""
    bump = 'UPDATE "catalog_changes" SET "n" = "n" + 1 WHERE "id" = 1'
    for table in CATALOG_TABLES:
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        watched = [c for c in columns if table != "tokens" or c not in TOKENS_NOT_IN_CATALOG]
        of = ", ".join(f'"{c}"' for c in watched)
        for event in ("INSERT", "DELETE", f"UPDATE OF {of}"):
            name = f"{table}_{event.split()[0].lower()}_moves_catalog"
            conn.execute(f'DROP TRIGGER IF EXISTS "{name}"')
            conn.execute(f'CREATE TRIGGER "{name}" AFTER {event} ON "{table}" BEGIN {bump}; END')


def _v14_catalog_changes(conn: sqlite3.Connection) -> None:
    conn.execute('CREATE TABLE "catalog_changes" ("id" INTEGER PRIMARY KEY CHECK ("id" = 1), '
                 '"n" INTEGER NOT NULL)')
    conn.execute('INSERT INTO "catalog_changes" ("id", "n") VALUES (1, 0)')
    _catalog_triggers(conn)


def _v15_reservation_indexes(conn: sqlite3.Connection) -> None:
    # Every reservation reads the sum its token holds: with the amount in the index that sum
    # is read from the index alone, not from a table row per request in flight. Only a video
    # task's reservation has a video id: chat's (nearly all) no longer write that index.
    conn.execute('DROP INDEX "idx_reservations_token_id"')
    conn.execute('CREATE INDEX "idx_reservations_token_id_amount" ON "reservations" ("token_id", "amount")')
    conn.execute('DROP INDEX "idx_reservations_video_id"')
    conn.execute('CREATE INDEX "idx_reservations_video_id" ON "reservations" ("video_id") '
                 'WHERE "video_id" IS NOT NULL')


MIGRATIONS: tuple[Migration, ...] = (
    Migration("tokens, channels, usage and videos (the schema before versions)", _v1_tables),
    Migration("the operator's model prices", _v2_prices),
    Migration("token quotas, reservations and the request ledger", _v3_quotas_and_ledger),
    Migration("token rate limits and address rules", _v4_rate_limits),
    Migration("upstream attempts beside the ledger; the release's usage rows folded into it",
              _v5_attempts_and_usage_history, backup=True),
    Migration("video tasks hold their reservation, confirmation and Idempotency-Key", _v6_video_billing),
    Migration("the admin key and the audit log of admin changes", _admin_key_and_audit),
    Migration("daily usage totals, remembered names of deleted tokens and channels, ids never reused",
              _v8_usage_daily_totals, backup=True),
    Migration("token webhooks, a task's callback_url and the outbox of webhook events", _v9_webhooks),
    Migration("channel weights, timeouts, disable reasons and circuit-breaker state", _v10_channel_resilience),
    Migration("a channel's upstream API version; prompt-cache writes in the ledger", _v11_api_versions_and_cache_writes),
    Migration("rate-limit counters per token and second instead of one row per request", _v12_rate_buckets),
    Migration("stored responses; the client API in the ledger; the APIs a channel speaks natively",
              _v13_responses_and_apis),
    Migration("a counter of changes to what the gateway's catalog holds (tokens, channels, prices, "
              "channel health)", _v14_catalog_changes),
    Migration("a token's reserved sum read from an index alone; the video reservations' index only over "
              "video tasks", _v15_reservation_indexes),
)
LATEST = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """Bring the database to `len(migrations)`; returns the steps this call applied
    (none when it was current, or when another process migrated it first)."""
    latest = len(migrations)
    current = version(conn)
    _refuse_newer(current, latest)
    # A file with no tables is being built, not migrated: it holds nothing a copy would keep.
    fresh = current == 0 and conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
    applied = []
    while current < latest:
        current, step = _apply_next(conn, migrations, copies=not fresh)
        if step:
            applied.append(step)
            log.info("database schema migrated to version %d: %s", current, step.name)
    return applied


def _apply_next(conn: sqlite3.Connection, migrations: Sequence[Migration],
                copies: bool = True) -> tuple[int, Migration | None]:
    """Apply the one step after the database's version, under the write lock (`copies`:
    a step that rewrites data is preceded by a copy of the database)."""
    # IMMEDIATE takes the write lock now; the version is read again under it, so of two
    # processes opening an old database at once, the second waits and then finds it done.
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = version(conn)
        _refuse_newer(current, len(migrations))
        if current >= len(migrations):
            conn.rollback()
            return current, None
        step = migrations[current]
        if step.backup and copies and current > 0:
            _backup(conn, current)
        try:
            step.apply(conn)
        except Exception as exc:
            raise SchemaError(f"schema migration to version {current + 1} ({step.name}) failed, "
                              f"the database stays at version {current}: {exc}") from exc
        if not conn.in_transaction:
            raise SchemaError(f"schema migration to version {current + 1} ({step.name}) committed "
                              "on its own; a step must leave the transaction to migrate()")
        conn.execute(f"PRAGMA user_version = {current + 1}")
        conn.commit()
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return current + 1, step


def _refuse_newer(current: int, latest: int) -> None:
    if current > latest:
        raise SchemaError(f"schema version {current} was written by a newer st-ai; this st-ai "
                          f"knows versions up to {latest} and will not use it (run the newer st-ai, "
                          "or restore a backup)")


def backup_path(path: str, old_version: int) -> str:
    return f"{path}.v{old_version}.bak"


def _backup(conn: sqlite3.Connection, old_version: int) -> None:
    """Copy the database as it is (taken inside the migration's write lock, so nobody
    changes it meanwhile) to `<db>.v<old>.bak`, written under a temporary name and then
    renamed, so a crash never leaves a half copy under the final name."""
    path = next((file for _, name, file in conn.execute("PRAGMA database_list") if name == "main"), "")
    if not path:  # an in-memory database has nothing to lose on disk
        return
    target, partial = backup_path(path, old_version), backup_path(path, old_version) + ".partial"
    # SQLite will not back up from a connection holding a write transaction; a second
    # connection reads the same committed state, which nobody can change while we hold
    # the lock and before the step has written anything.
    source, copy = sqlite3.connect(path, timeout=10), sqlite3.connect(partial)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    os.replace(partial, target)
    log.info("database copied to %s before migrating from version %d", target, old_version)
