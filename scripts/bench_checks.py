"""What scripts/bench.py and scripts/soak.py switch on in st-ai, and the checks, after a run,
that it was on and did its work: a fast gateway that books nothing proves nothing.

"Every feature on" is a token with a quota (far more than a run spends) and requests,
tokens and concurrency limits (far above what a run sends), a model with a price, so that
every request reserves, is checked against the limits, is settled at its cost and booked;
metrics (always on in `st-ai serve`), scraped once at the end; Server-Timing on every REST
answer (checked by the load generator). `bare` is a token without quota or limits on an
unpriced model; st-ai still books its requests at zero cost (the ledger cannot be
switched off).

After a run, `ledger_check` reads the database (once the gateway has stopped, so every
settlement is written) and `metrics_check` a scrape of GET /metrics, and each says in one
line whether what they hold matches what the load generator sent.
"""
from __future__ import annotations

import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench_upstream import COMPLETION_TOKENS, PROMPT_TOKENS

PRICE_INPUT = 1_000_000    # micro-units per 1M prompt tokens: one micro-unit a token
PRICE_OUTPUT = 2_000_000   # two a completion token
QUOTA = 10**12             # micro-units (a million): no run comes near it
RPM = TPM = 1_000_000_000  # the most st-ai accepts: counted, never reached
MAX_CONCURRENCY = 100_000


def plain_cost() -> int:
    return (PROMPT_TOKENS * PRICE_INPUT + COMPLETION_TOKENS * PRICE_OUTPUT) // 1_000_000


def stream_cost(chunks: int) -> int:
    return (PROMPT_TOKENS * PRICE_INPUT + chunks * PRICE_OUTPUT) // 1_000_000


def _open(db_path: Path):
    from server.store.db import open_db
    return open_db(str(db_path))


def add_channel(db_path: Path, upstream_url: str, upstream_key: str, models: list[str]) -> None:
    from server.store import channels as channel_store
    db = _open(db_path)
    try:
        channel_store.add(db, "bench-upstream", "openai", upstream_url, upstream_key, models)
    finally:
        db.close()


def price_model(db_path: Path, model: str) -> None:
    from server.billing.prices import PriceChanges
    from server.store import prices as price_store
    db = _open(db_path)
    try:
        price_store.set_price(db, model, PriceChanges(input=PRICE_INPUT, output=PRICE_OUTPUT))
    finally:
        db.close()


def add_token(db_path: Path, name: str, bare: bool) -> str:
    """A token with every limit on (or none, `bare`); returns its key."""
    from server.store import tokens as token_store
    from server.store.rate_limits import Limits
    db = _open(db_path)
    try:
        if bare:
            _, key = token_store.create(db, name)
        else:
            _, key = token_store.create(db, name, quota=QUOTA,
                                        limits=Limits(rpm=RPM, tpm=TPM, max_concurrency=MAX_CONCURRENCY))
    finally:
        db.close()
    return key


@dataclass(frozen=True)
class Check:
    ok: bool
    line: str


def ledger_check(db_path: Path, token: str, sent: int, answered: int, chunks: int, priced: bool,
                 cancelled: int = 0) -> Check:
    """The token's ledger against what was sent with it: one row per request sent, a 200 for
    each whole answer the client saw, a 499 (or a 200, had the stream just ended) for each
    stream it left, each priced answer charged its exact cost, the token's `used` equal to
    the ledger's sum, and nothing left reserved or in flight. A stream the client left is
    charged in full too, since st-ai reads the upstream's usage to its end; only if that
    usage is more than 3 s away does st-ai bill its own count (`estimate`), at a cost that
    must then be above zero."""
    db = _open(db_path)
    try:
        token_id, used = db.execute("SELECT id, used FROM tokens WHERE name = ?", [token]).fetchone()
        rows, total = db.execute("SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM ledger WHERE token_id = ?",
                                 [token_id]).fetchone()
        ok_plain, ok_stream, cut, counted_cost = db.execute(
            "SELECT COALESCE(SUM(status = 200 AND NOT stream AND NOT estimate), 0), "
            "COALESCE(SUM(status = 200 AND stream AND NOT estimate), 0), "
            "COALESCE(SUM(status = 499 AND stream AND NOT estimate), 0), "
            "COALESCE(SUM(CASE WHEN NOT estimate THEN cost ELSE 0 END), 0) FROM ledger WHERE token_id = ?",
            [token_id]).fetchone()
        estimated, estimated_cut, estimated_free = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(status = 499 AND stream), 0), COALESCE(SUM(cost <= 0), 0) "
            "FROM ledger WHERE token_id = ? AND estimate", [token_id]).fetchone()
        statuses = dict(db.execute("SELECT status, COUNT(*) FROM ledger WHERE token_id = ? GROUP BY status",
                                   [token_id]).fetchall())
        reserved = db.execute("SELECT COUNT(*) FROM reservations WHERE token_id = ?", [token_id]).fetchone()[0]
        in_flight = db.execute("SELECT COUNT(*) FROM inflight WHERE token_id = ?", [token_id]).fetchone()[0]
    finally:
        db.close()
    streams = ok_stream + cut
    expected = ok_plain * plain_cost() + streams * stream_cost(chunks) if priced else 0
    problems = []
    if rows != sent:
        problems.append(f"{rows} rows for {sent} requests sent")
    whole = statuses.get(200, 0)
    if whole + statuses.get(499, 0) != answered + cancelled or whole < answered:
        problems.append(f"{whole} rows of status 200 and {statuses.get(499, 0)} of 499 for {answered} whole answers "
                        f"and {cancelled} streams left by their client (statuses: {statuses})")
    if counted_cost != expected:
        problems.append(f"the upstream-counted rows cost {counted_cost}, the price says {expected}")
    if used != total:
        problems.append(f"the token's used is {used}, its ledger's costs {total}")
    if estimated != estimated_cut or (priced and estimated_free):
        problems.append(f"{estimated} rows counted by st-ai ({estimated - estimated_cut} of them not a stream its "
                        f"client left, {estimated_free} at zero cost)")
    if reserved or in_flight:
        problems.append(f"{reserved} reservations and {in_flight} concurrency slots left")
    summary = (f"{rows} rows for {sent} requests sent ({ok_plain} whole answers, {ok_stream} streams"
               + (f", {cut} streams cut" if cancelled else "") + f"); costs {total} micro-units = token used {used}"
               + (f", of which {counted_cost} = {ok_plain} x {plain_cost()} + {streams} x {stream_cost(chunks)}"
                  if priced else " (unpriced)")
               + (f" and {total - counted_cost} for {estimated} cut streams st-ai counted itself (the upstream's "
                  "usage was more than 3 s away)" if estimated else "")
               + "; nothing left reserved")
    return Check(not problems, summary if not problems else "; ".join(problems))


def scrape(http_url: str, timeout: float = 5.0) -> dict[str, float]:
    """GET /metrics: each sample's value, keyed by `name{label="value",...}`, and each
    metric family's sum under its bare sample name."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{http_url}/metrics", timeout=timeout) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


def _sum_where(samples: dict[str, float], name: str, label: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(name + "{") and label in k)


def metrics_check(http_url: str, sent: int, answered: int, streams: int, settle_for: float = 3.0) -> Check:
    """One scrape's request counters against what the load generator sent this gateway:
    requests by status, the streams' time-to-first-token count, ledger rows written.
    A client may see its answer a moment before the counters move, so it scrapes again for
    up to `settle_for` seconds while they are short."""
    deadline = time.monotonic() + settle_for
    while True:
        samples = scrape(http_url)
        requests = samples.get("st_ai_requests_total", 0.0)
        ok = _sum_where(samples, "st_ai_requests_total", 'status="200"')
        first_tokens = samples.get("st_ai_time_to_first_token_seconds_count", 0.0)
        rows = samples.get("st_ai_ledger_rows_written_total", 0.0)
        matched = requests == sent and ok == answered and first_tokens == streams and rows == sent
        if matched or time.monotonic() >= deadline or requests > sent:
            break
        time.sleep(0.1)
    line = (f"st_ai_requests_total {requests:.0f} for {sent} sent ({ok:.0f} status 200 for {answered} whole "
            f"answers); time-to-first-token count {first_tokens:.0f} for {streams} streams; "
            f"ledger rows written {rows:.0f}")
    return Check(matched, line)
