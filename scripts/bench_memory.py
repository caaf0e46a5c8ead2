#!/usr/bin/env python
"""How much memory st-ai holds for large and for many requests, and whether it gives it back.

    python scripts/bench_memory.py [--body-mb 30] [--concurrency 4] [--many 2000] [--settle 60]

It starts, on 127.0.0.1: scripts/bench.py's fast OpenAI-compatible upstream, and
`st-ai serve` on a fresh temporary database with two channels, `bench-model` (that
upstream, an `openai` channel) and `bench-sim` (the built-in simulator). Then, for each
channel, it sends --concurrency chat requests of --body-mb MB each at once over REST,
then --many small requests (32 in flight), and reads the gateway's VmRSS from /proc
every 20 ms. It prints RSS at the baseline, the peak during each phase, the peak's
growth per MB of body in flight, and the RSS after each phase once it has settled (or
after --settle seconds), and whether that is back near the baseline. It prints figures;
it never asserts. Everything it starts is stopped at exit and its files removed.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (scripts/bench.py: its upstream, process handling and /proc readings)

SIM_MODEL = "bench-sim"
NEAR_BASELINE_MB = 40.0  # "back near the baseline": within this much of it


class RssSampler:
    """VmRSS of one process, sampled on a thread; peak() since the last reset."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self._pid, self._every = pid, every
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._peak = max(self._peak, bench.memory_mb(self._pid)[0])

    def now(self) -> float:
        return bench.memory_mb(self._pid)[0]

    def reset(self) -> None:
        self._peak = self.now()

    def peak(self) -> float:
        return max(self._peak, self.now())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1)


async def _large(base_url: str, key: str, model: str, body_mb: int, concurrency: int) -> list[int]:
    import aiohttp

    word = b"memory "
    content = word * (body_mb * 1024 * 1024 // len(word))
    body = b'{"model":"' + model.encode() + b'","max_tokens":16,"messages":[{"role":"user","content":"' \
        + content + b'"}]}'
    del content
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one() -> int:
            async with session.post(f"{base_url}/chat/completions", data=body, headers=headers) as response:
                await response.read()
                return response.status
        return await asyncio.gather(*(one() for _ in range(concurrency)))


async def _many(base_url: str, key: str, model: str, count: int, in_flight: int = 32) -> dict[int, int]:
    import aiohttp

    body = {"model": model, "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
            "max_tokens": 16}
    headers = {"Authorization": f"Bearer {key}"}
    statuses: dict[int, int] = {}
    queue = iter(range(count))
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def worker() -> None:
            for _ in queue:
                async with session.post(f"{base_url}/chat/completions", json=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return statuses


def _settle(sampler: RssSampler, baseline: float, limit: float) -> tuple[float, float]:
    """RSS once back near the baseline (or at the limit), and the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        rss = sampler.now()
        if rss <= baseline + NEAR_BASELINE_MB:
            return rss, time.monotonic() - started
        time.sleep(0.25)
    return sampler.now(), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--body-mb", type=int, default=30, help="size of each large body, MB (default 30)")
    parser.add_argument("--concurrency", type=int, default=4, help="large bodies at once (default 4)")
    parser.add_argument("--many", type=int, default=2000, help="small requests per channel (default 2000)")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="longest wait for RSS to come back, seconds (default 60)")
    args = parser.parse_args()
    bench.refuse_careless(parser, args, ("body_mb", "concurrency", "many"), ("settle",))

    tmp = Path(tempfile.mkdtemp(prefix="st-ai-bench-memory-"))
    procs = bench.Processes()
    try:
        _, upstream_url = bench.start_upstream(procs, tmp, None, 20)
        db_path = tmp / "st-ai.db"
        key = bench.make_db(db_path, upstream_url)
        from server.store import channels as channel_store
        from server.store.db import open_db
        db = open_db(str(db_path))
        channel_store.add(db, "bench-sim", "simulator", "", "", [SIM_MODEL])
        db.close()
        gateway, base_url, _, log = bench.start_gateway(procs, tmp, db_path, None, "memory",
                                                        env={"ST_AI_LOG_LEVEL": "WARNING"})
        sampler = RssSampler(gateway.pid)
        # one small request per channel first: what every gateway holds once it has served
        for model in (bench.MODEL, SIM_MODEL):
            asyncio.run(_many(base_url, key, model, 32, 4))
        time.sleep(1)
        baseline = sampler.now()
        print(f"st-ai serve, pid {gateway.pid}; bodies {args.concurrency} x {args.body_mb} MB at once; "
              f"{args.many} small requests (32 in flight)")
        print(f"baseline RSS after warm-up: {baseline:.0f} MB\n")
        print(f"{'channel':<10} {'phase':<22} {'status':<14} {'peak MB':>8} {'growth/MB in flight':>20} "
              f"{'after MB':>9} {'settled in':>11}  back near baseline (+{NEAR_BASELINE_MB:.0f} MB)?")
        for model, label in ((bench.MODEL, "openai"), (SIM_MODEL, "simulator")):
            sampler.reset()
            started = time.monotonic()
            statuses = asyncio.run(_large(base_url, key, model, args.body_mb, args.concurrency))
            took = time.monotonic() - started
            peak = sampler.peak()
            after, settled = _settle(sampler, baseline, args.settle)
            in_flight = args.body_mb * args.concurrency
            print(f"{label:<10} {f'{args.concurrency} x {args.body_mb} MB ({took:.1f} s)':<22} "
                  f"{','.join(map(str, sorted(set(statuses)))):<14} {peak:>8.0f} "
                  f"{(peak - baseline) / in_flight:>20.2f} {after:>9.0f} {settled:>10.1f}s  "
                  f"{'yes' if after <= baseline + NEAR_BASELINE_MB else 'NO'}")
            sampler.reset()
            started = time.monotonic()
            counts = asyncio.run(_many(base_url, key, model, args.many))
            took = time.monotonic() - started
            peak = sampler.peak()
            after, settled = _settle(sampler, baseline, args.settle)
            print(f"{label:<10} {f'{args.many} small ({took:.1f} s)':<22} "
                  f"{','.join(f'{k}x{v}' for k, v in sorted(counts.items())):<14} {peak:>8.0f} {'':>20} "
                  f"{after:>9.0f} {settled:>10.1f}s  "
                  f"{'yes' if after <= baseline + NEAR_BASELINE_MB else 'NO'}")
        cpu = bench.cpu_seconds(gateway.pid)
        print(f"\ngateway CPU time in all: {cpu:.1f} s; its high-water mark (VmHWM): "
              f"{bench.memory_mb(gateway.pid)[1]:.0f} MB")
        sampler.stop()
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
