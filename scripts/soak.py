#!/usr/bin/env python
"""Soak st-ai, every feature on: a fixed rate of plain, streamed and cancelled chat requests
for a bounded time, watching the gateway's memory, file descriptors and asyncio tasks.

    python scripts/soak.py [--minutes 10] [--rate 50] [--every 10] [--workers 1] [--keep]

It starts, on 127.0.0.1, scripts/bench.py's fast upstream (its SSE events paced by
`--chunk-delay`, so a stream lasts long enough to be left in the middle) and
`st-ai serve` on a fresh database with what bench.py switches on (scripts/bench_checks.py:
a priced model, a token with a quota and rate limits, metrics). Then, from this process,
it sends `--rate` requests a second on a fixed schedule: 40% whole answers, 40% streams
read to the end, 20% streams the client leaves after their first event (the connection
closed, or the gRPC call cancelled); one request in four goes over gRPC, the rest over
REST. Every `--every` seconds it prints the time, the requests done by kind, errors, the
gateway's RSS (the largest worker's), its open file descriptors (/proc/PID/fd, all its
processes) and its asyncio tasks (the `st_ai_asyncio_tasks` gauge of GET /metrics, "n/a"
when the gateway has none).

At the end it stops the load (waiting for what is in flight), stops the gateway, checks
the ledger (one row per request sent, each at its exact price, the token's spent quota
equal to the ledger's sum) and gives a verdict on the samples after warm-up (the first
20% of the run, at most a minute): RSS flat within 10%, open file descriptors and tasks
not growing (the lowest of the last third of the samples no higher than the highest of
the first third). The exit status is 0 when the verdict and the ledger check pass, 1
otherwise. Every loop is bounded by the run's deadline and every request by a timeout;
everything it starts is stopped at exit.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench_checks
from bench import MODEL, UPSTREAM_KEY
from bench_loadgen import Calls, rest_body
from bench_proc import Processes, family_memory_mb, family_open_fds, logged_problems, start_gateway, start_upstream

MIX = (("plain", 4), ("stream", 4), ("cancelled", 2))  # of every 10 requests
GRPC_EVERY = 4  # one request in four over gRPC
TASKS_GAUGE = "st_ai_asyncio_tasks"
RSS_FLAT = 0.10
REQUEST_TIMEOUT = 15.0


@dataclass
class Sample:
    elapsed: float
    rss_mb: float
    fds: int
    tasks: float | None


@dataclass
class Tally:
    done: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind, _ in MIX})
    sent: int = 0
    errors: int = 0
    skipped: int = 0  # not sent: too many still in flight (the gateway fell behind)
    error_sample: list[str] = field(default_factory=list)

    def failed(self, what: str) -> None:
        self.errors += 1
        if len(self.error_sample) < 3:
            self.error_sample.append(what[:300])


def kinds() -> list[str]:
    return [kind for kind, weight in MIX for _ in range(weight)]


class Load:
    """The three kinds of request over both transports, on one session and one gRPC channel."""

    def __init__(self, base_url: str, grpc_target: str, key: str, chunks: int) -> None:
        self.calls = Calls({"chunks": chunks, "request_timeout": REQUEST_TIMEOUT, "concurrency": 64})
        self.base_url, self.grpc_target, self.key = base_url, grpc_target, key
        self.rest = {False: self.calls.rest(base_url, key, MODEL, False),
                     True: self.calls.rest(base_url, key, MODEL, True)}
        self.grpc = {False: self.calls.grpc_call(grpc_target, key, MODEL, False),
                     True: self.calls.grpc_call(grpc_target, key, MODEL, True)}

    async def one(self, kind: str, over_grpc: bool) -> bool:
        """Send one request of `kind`; True when it went as it should (a whole answer, or a
        stream left after its first event)."""
        if kind == "cancelled":
            return await (self._leave_grpc() if over_grpc else self._leave_rest())
        call = (self.grpc if over_grpc else self.rest)[kind == "stream"]
        _, _, whole, timed = await call(0)
        return whole and timed

    async def _leave_rest(self) -> bool:
        async with self.calls.session.post(f"{self.base_url}/chat/completions", data=rest_body(MODEL, True),
                                           headers={"Authorization": f"Bearer {self.key}",
                                                    "Content-Type": "application/json"}) as resp:
            async for part in resp.content.iter_any():
                if b"data:" in part:
                    resp.close()  # the connection goes, as a client that leaves
                    return resp.status == 200
        return False

    async def _leave_grpc(self) -> bool:
        pb2 = self.calls.chat_pb2
        request = pb2.ChatCompletionRequest(model=MODEL, messages=[pb2.ChatMessage(role="user", text="Soak")],
                                            max_tokens=64)
        call = self.calls.stub(self.grpc_target, 0).StreamChatCompletion(
            request, metadata=(("authorization", f"Bearer {self.key}"),), timeout=REQUEST_TIMEOUT)
        first = await call.read()
        call.cancel()
        return first is not None and first is not self.calls.grpc.aio.EOF


async def tasks_gauge(session, http_url: str) -> float | None:
    """The gateway's asyncio tasks from GET /metrics (all workers' summed), None when absent."""
    from prometheus_client.parser import text_string_to_metric_families
    try:
        async with session.get(f"{http_url}/metrics") as resp:
            text = await resp.text()
    except Exception:  # a failed scrape is a missing figure, not the soak's end
        return None
    values = [s.value for family in text_string_to_metric_families(text) for s in family.samples
              if s.name == TASKS_GAUGE]
    return sum(values) if values else None


def sample(gateway_pid: int, elapsed: float, tasks: float | None) -> Sample:
    return Sample(elapsed, family_memory_mb(gateway_pid)[0], family_open_fds(gateway_pid), tasks)


def print_sample(s: Sample, tally: Tally) -> None:
    done = "  ".join(f"{kind} {n}" for kind, n in tally.done.items())
    tasks = "n/a" if s.tasks is None else f"{s.tasks:.0f}"
    print(f"{s.elapsed:7.0f} s  {done}  errors {tally.errors}  RSS {s.rss_mb:6.1f} MB  fds {s.fds}  tasks {tasks}",
          flush=True)


async def soak(args, base_url: str, grpc_target: str, key: str, gateway_pid: int) -> tuple[Tally, list[Sample]]:
    http_url = base_url.removesuffix("/v1")
    load = Load(base_url, grpc_target, key, args.chunks)
    tally = Tally()
    samples: list[Sample] = []
    in_flight: set[asyncio.Task] = set()
    plan = kinds()
    duration = args.minutes * 60
    every = args.every or max(1.0, min(10.0, duration / 6))
    most_in_flight = max(64, int(args.rate * REQUEST_TIMEOUT))

    async def send(index: int) -> None:
        kind = plan[index % len(plan)]
        over_grpc = index % GRPC_EVERY == GRPC_EVERY - 1
        try:
            if await asyncio.wait_for(load.one(kind, over_grpc), REQUEST_TIMEOUT + 5):
                tally.done[kind] += 1
            else:
                tally.failed(f"{kind} over {'gRPC' if over_grpc else 'REST'}: not a whole answer")
        except Exception as exc:  # counted, not fatal: the soak reports errors
            tally.failed(f"{kind} over {'gRPC' if over_grpc else 'REST'}: {type(exc).__name__}: {exc}")

    start = time.monotonic()
    end = start + duration
    next_sample = start + every
    index = 0
    print(f"{'elapsed':>9}  requests done by kind, errors, gateway RSS, open fds, asyncio tasks", flush=True)
    try:
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(sample(gateway_pid, now - start, await tasks_gauge(load.calls.session, http_url)))
                print_sample(samples[-1], tally)
                next_sample += every
            at = start + index / args.rate
            if at >= end:
                break
            await asyncio.sleep(max(0.0, min(at, next_sample) - time.monotonic()))
            if time.monotonic() < at:
                continue
            if len(in_flight) >= most_in_flight:
                tally.skipped += 1
            else:
                task = asyncio.create_task(send(index))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                tally.sent += 1
            index += 1
        if in_flight:
            await asyncio.wait(in_flight, timeout=REQUEST_TIMEOUT + 10)
        samples.append(sample(gateway_pid, time.monotonic() - start, await tasks_gauge(load.calls.session, http_url)))
        print_sample(samples[-1], tally)
    finally:
        for task in in_flight:
            task.cancel()
        await load.calls.close()
    return tally, samples


@dataclass(frozen=True)
class Verdict:
    ok: bool
    lines: list[str]


def verdict(samples: list[Sample], warmup: float) -> Verdict:
    after = [s for s in samples if s.elapsed >= warmup]
    if len(after) < 3:
        return Verdict(False, [f"too few samples after the {warmup:.0f} s warm-up ({len(after)}) to judge: "
                               "run longer or sample more often (--every)"])
    lines, ok = [], True
    base, peak = after[0].rss_mb, max(s.rss_mb for s in after)
    growth = (peak - base) / base if base else 0.0
    flat = growth <= RSS_FLAT
    ok &= flat
    lines.append(f"RSS {base:.1f} MB after warm-up, at most {peak:.1f} MB, {after[-1].rss_mb:.1f} MB at the end "
                 f"({growth * 100:+.1f}%): {'flat' if flat else 'NOT flat'} within {RSS_FLAT * 100:.0f}%")
    third = max(1, len(after) // 3)
    for what, values in (("open fds", [s.fds for s in after]),
                         ("asyncio tasks", [s.tasks for s in after])):
        if any(v is None for v in values):
            lines.append(f"{what}: n/a (the gateway's GET /metrics has no {TASKS_GAUGE})")
            continue
        first, last = max(values[:third]), min(values[-third:])
        growing = last > first
        ok &= not growing
        lines.append(f"{what}: at most {first:.0f} early, at least {last:.0f} late: "
                     f"{'GROWING' if growing else 'not growing'}")
    return Verdict(ok, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--rate", type=float, default=50.0, help="requests a second (default 50)")
    parser.add_argument("--every", type=float, default=None,
                        help="seconds between two samples (default 10, less for short runs)")
    parser.add_argument("--chunks", type=int, default=20, help="SSE chunks per streamed answer (default 20)")
    parser.add_argument("--chunk-delay", type=float, default=0.005,
                        help="the upstream's pause between two SSE events, seconds (default 0.005)")
    parser.add_argument("--workers", type=int, default=1, help="st-ai serve --workers N (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, db)")
    args = parser.parse_args()
    if not 0 < args.minutes <= 24 * 60 or not 0 < args.rate <= 10_000:
        parser.error("--minutes is above 0 and at most a day; --rate above 0 and at most 10000")

    tmp = Path(tempfile.mkdtemp(prefix="st-ai-soak-"))
    procs = Processes()
    exit_code = 1
    try:
        _, upstream_url = start_upstream(procs, tmp, None, args.chunks, args.chunk_delay)
        db_path = tmp / "soak.db"
        bench_checks.add_channel(db_path, upstream_url, UPSTREAM_KEY, [MODEL])
        bench_checks.price_model(db_path, MODEL)
        key = bench_checks.add_token(db_path, "soak", bare=False)
        env = {"GRPC_EXPERIMENTS": "-event_engine_client,-event_engine_listener"}
        gateway, base_url, grpc_target, log = start_gateway(procs, tmp, db_path, None, "soak", env,
                                                            workers=args.workers)
        print(f"st-ai soak: {args.minutes:g} min at {args.rate:g} requests/s "
              f"({', '.join(f'{w * 10}% {k}' for k, w in MIX)}; one in {GRPC_EVERY} over gRPC), "
              f"gateway pid {gateway.pid}, {args.workers} worker(s)", flush=True)
        tally, samples = asyncio.run(soak(args, base_url, grpc_target, key, gateway.pid))
        procs.stop(gateway)  # SIGTERM: it drains, and every settlement is in the ledger
        answered = tally.done["plain"] + tally.done["stream"]
        ledger = bench_checks.ledger_check(db_path, "soak", tally.sent, answered, args.chunks, priced=True,
                                           cancelled=tally.done["cancelled"])
        judged = verdict(samples, min(60.0, args.minutes * 60 * 0.2))
        print(f"\nsent {tally.sent} ({tally.skipped} not sent: too many in flight), errors {tally.errors}"
              + (f", e.g. {tally.error_sample[0]}" if tally.error_sample else ""))
        print(f"ledger: {'OK' if ledger.ok else 'FAILED'}: {ledger.line}")
        for line in judged.lines:
            print(f"  {line}")
        notes = logged_problems(log)
        if notes:
            print(f"  the gateway logged {len(notes)} warning(s) or error(s), e.g.: {notes[0][:300]}")
        passed = judged.ok and ledger.ok and not tally.errors
        print(f"verdict: {'PASS' if passed else 'FAIL'}")
        exit_code = 0 if passed else 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        exit_code = 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(exit_code)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
