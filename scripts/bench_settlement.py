#!/usr/bin/env python
"""What booking money costs: priced, quota-limited chat through st-ai against the same
chat unpriced on an unlimited token, and both against a direct call to the upstream.

    python scripts/bench_settlement.py [--requests N] [--concurrency C] [--no-pin-core]

Every request st-ai answers is booked durably before its last byte is sent (its ledger
row, group-committed with the others in flight). A priced request on a token with a quota
also reserves its worst case before going upstream (group-committed too) and its
settlement moves the token's `used`. The ledger cannot be turned off, so the unpriced,
unlimited gateway is the baseline: it still commits every request's ledger row, but
reserves nothing and moves no money.

It reuses scripts/bench.py's upstream, load generator and process handling: the same fast
local upstream on 127.0.0.1, the gateways pinned to one core and the upstream plus the load
generator to another (when two cores are usable). Two gateways run side by side, each on a
fresh database, their phases alternating: "unpriced" (no price for the model, a token
without quota) and "priced" (input and output prices, a token with a quota far above what
the run spends).
It prints a table and never asserts; every phase is capped in requests and wall time.

Then, in this process, the booking alone on its database thread (no HTTP, no gRPC): each
request's reservation and its settlement's commit, one after another and 2,000 at once, for
an unlimited and a quota-limited token, with settlements group-committed as st-ai does and,
for comparison, committed one transaction each.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: upstream, load generator, processes)

QUOTA = "1000000"  # USD, far above what a run spends: every request reserves and settles


def make_db(db_path: Path, upstream_url: str, priced: bool) -> str:
    for path in (str(bench.ROOT), str(bench.ROOT / "generated")):
        if path not in sys.path:
            sys.path.insert(0, path)
    from server.billing.money import parse_amount
    from server.billing.prices import PriceChanges
    from server.store import channels as channel_store
    from server.store import prices as price_store
    from server.store import tokens as token_store
    from server.store.db import open_db

    db = open_db(str(db_path))
    try:
        channel_store.add(db, "bench-upstream", "openai", upstream_url, bench.UPSTREAM_KEY, [bench.MODEL])
        if priced:  # gpt-4o-mini's prices: $0.15 / $0.60 per 1M tokens
            price_store.set_price(db, bench.MODEL, PriceChanges(input=parse_amount("0.15"),
                                                                output=parse_amount("0.60")))
        _, key = token_store.create(db, "bench", quota=parse_amount(QUOTA) if priced else None)
    finally:
        db.close()
    return key


def ledger_summary(db_path: Path) -> str:
    from server.store.db import open_db

    db = open_db(str(db_path))
    try:
        rows, cost = db.execute("SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM ledger").fetchone()
        used = db.execute("SELECT COALESCE(SUM(used), 0) FROM tokens").fetchone()[0]
        left = db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0]
    finally:
        db.close()
    return f"{rows} ledger rows, cost {cost} micro-units, tokens' used {used}, reservations left {left}"


async def _booking(db_path: Path, quota: int | None, grouped: bool, sequential: int, at_once: int) -> tuple[float, float]:
    """(ms per request one at a time, requests per second `at_once` together) of reserving
    and then committing the settlement, on st-ai's database thread."""
    from server.billing.group_commit import GroupCommit
    from server.store import quota as quota_store
    from server.store import tokens as token_store
    from server.store.db import DbWorker, open_db
    from server.store.quota import LedgerRow, Settlement

    db = open_db(str(db_path))
    try:
        token, _ = token_store.create(db, f"booking-{quota}-{grouped}", quota=quota)
    finally:
        db.close()
    worker = await asyncio.to_thread(DbWorker, str(db_path))
    writer = GroupCommit(worker)
    running = asyncio.create_task(writer.run())

    async def one() -> None:
        # grouped, the reservation shares the group's transaction as it does in the gateway
        if grouped:
            reservation = (await writer.reserve(token, 1_000, 0, "bench", time.time())).reservation_id
        else:
            reservation = await worker.run(quota_store.reserve, token.id, 1_000, "bench")
        settlement = Settlement(reservation, LedgerRow(time.time(), None, token.id, bench.MODEL, bench.MODEL, None,
                                                       "chat", 200, cost=20 if quota else 0, prompt_tokens=11,
                                                       completion_tokens=9))
        if grouped:
            await writer.commit(settlement)
        else:
            await worker.run(quota_store.settle_many, [settlement])

    try:
        started = time.perf_counter()
        for _ in range(sequential):
            await one()
        one_by_one = (time.perf_counter() - started) / sequential * 1000
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(at_once)))
        return one_by_one, at_once / (time.perf_counter() - started)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await asyncio.to_thread(worker.close)


def print_booking(tmp: Path) -> None:
    for path in (str(bench.ROOT), str(bench.ROOT / "generated")):
        if path not in sys.path:
            sys.path.insert(0, path)
    print("\nbooking alone (reserve, then settle), on the database thread:")
    print("  token            settlements        ms/request one at a time   requests/s 2,000 at once")
    for quota, token in ((None, "unlimited"), (10**15, "quota-limited")):
        for grouped in (True, False):
            one_by_one, together = asyncio.run(_booking(tmp / "booking.db", quota, grouped, 500, 2000))
            print(f"  {token:<16} {'group-committed' if grouped else 'one commit each':<18} "
                  f"{one_by_one:>10.3f}                 {together:>10.0f}")


def print_table(rows: list[dict], concurrency: int) -> None:
    by = {(r["path"], r["stream"]): r for r in rows}
    header = ["path", "mode", f"req/s@{concurrency}", "x direct", "x unpriced", "p50 ms", "p99 ms",
              "+p50 ms vs direct", "+p50 ms vs unpriced", f"p50 ms@{concurrency}", "TTFT50 ms", "errors"]
    table = []
    for r in rows:
        direct, unpriced = by.get(("direct", r["stream"])), by.get(("st-ai unpriced", r["stream"]))

        def ratio(base: dict | None) -> str:
            return f"{r['rps'] / base['rps']:.2f}" if base and base is not r and base["rps"] else "-"

        def added(base: dict | None) -> str:
            if not base or base is r or not r["p50"] or not base["p50"]:
                return "-"
            return f"{(r['p50'] - base['p50']) * 1000:+.2f}"

        table.append([r["path"], "stream" if r["stream"] else "unary",
                      f"{r['rps']:.0f}" + ("*" if r["capped"] else ""), ratio(direct),
                      ratio(unpriced) if r["path"] == "st-ai priced" else "-",
                      bench._ms(r["p50"]), bench._ms(r["p99"]), added(direct),
                      added(unpriced) if r["path"] == "st-ai priced" else "-",
                      bench._ms(r["p50_c"]), bench._ms(r["ttft50"]), str(r["errors"])])
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("""  columns: 'x direct' / 'x unpriced' = throughput over theirs; p50/p99 at concurrency 1;
  '+p50' = added to theirs at concurrency 1; 'p50 ms@C' = median latency at full concurrency;
  '*' = a phase hit its wall-clock cap.""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="unary requests per throughput phase")
    parser.add_argument("--stream-requests", type=int, default=None, help="streams per phase (default requests/4)")
    parser.add_argument("--latency-requests", type=int, default=500, help="sequential requests for p50/p99")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--chunks", type=int, default=20, help="SSE chunks per streamed answer")
    parser.add_argument("--phase-cap", type=float, default=12.0, help="wall-clock cap of one phase, seconds")
    parser.add_argument("--pin-core", dest="pin_core", action="store_true", default=True)
    parser.add_argument("--no-pin-core", dest="pin_core", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, dbs)")
    args = parser.parse_args()
    bench.refuse_careless(parser, args, ("requests", "stream_requests", "latency_requests", "concurrency", "chunks"),
                          ("phase_cap",))
    stream_requests = args.stream_requests or max(args.concurrency * 4, args.requests // 4)
    cores = sorted(os.sched_getaffinity(0))
    gw_core, lg_core = (cores[0], cores[1]) if args.pin_core and len(cores) >= 2 else (None, None)

    tmp = Path(tempfile.mkdtemp(prefix="st-ai-bench-settlement-"))
    procs = bench.Processes()
    started = time.monotonic()
    try:
        upstream, upstream_url = bench.start_upstream(procs, tmp, lg_core, args.chunks)
        print(f"st-ai settlement bench: concurrency {args.concurrency}, {args.requests} unary / "
              f"{stream_requests} streamed per phase, {args.latency_requests} at concurrency 1; "
              + (f"gateway on core {gw_core}, upstream + load on core {lg_core}" if gw_core is not None
                 else "not pinned"), file=sys.stderr)
        base = {"key": "", "chunks": args.chunks, "concurrency": args.concurrency, "requests": args.requests,
                "stream_requests": stream_requests, "latency_requests": args.latency_requests,
                "latency_stream_requests": max(50, args.latency_requests // 2), "phase_cap": args.phase_cap,
                "request_timeout": 10.0, "upstream_pid": upstream.pid}
        # Both gateways run at once (an idle one costs nothing) and their phases alternate,
        # so a busy moment on the machine does not fall on one of them only.
        gateways, scenarios = [], []
        for index, (name, priced) in enumerate((("st-ai unpriced", False), ("st-ai priced", True))):
            db_path = tmp / f"{'priced' if priced else 'unpriced'}.db"
            key = make_db(db_path, upstream_url, priced)
            gateway, base_url, _, _ = bench.start_gateway(procs, tmp, db_path, gw_core, f"v{index}",
                                                          {"GRPC_EXPERIMENTS": bench.EE_OFF})
            gateways.append((name, gateway, db_path, base_url, key))
        for stream in (False, True):
            mode = "stream" if stream else "unary"
            scenarios.append({"label": f"direct {mode}", "path": "direct", "transport": "rest",
                              "target": upstream_url, "auth": bench.UPSTREAM_KEY, "stream": stream})
            for name, _, _, base_url, key in gateways:
                scenarios.append({"label": f"{name} {mode}", "path": name, "transport": "rest",
                                  "target": base_url, "auth": key, "stream": stream})
        config = base | {"gateway_pid": None, "scenarios": scenarios}
        rows = bench.run_loadgen(procs, tmp, lg_core, config, len(scenarios) * args.phase_cap * 3 + 30)
        summaries = []
        for name, gateway, db_path, _, _ in gateways:
            procs.stop(gateway)  # SIGTERM: what it settled is all in the ledger
            summaries.append(f"  {name}: {ledger_summary(db_path)}")
        order = {"direct": 0, "st-ai unpriced": 1, "st-ai priced": 2}
        rows.sort(key=lambda r: (r["stream"], order[r["path"]]))
        print()
        print_table(rows, args.concurrency)
        print("\n".join(["", *summaries]))
        print_booking(tmp)
        print(f"\n(total {time.monotonic() - started:.0f} s)")
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
