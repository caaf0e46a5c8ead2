#!/usr/bin/env python
"""Instructions per request: a measure of st-ai's cost that a busy or shared host does not move.

    python scripts/bench_instructions.py [--requests N] [--concurrency C] [--paths rest,stream,grpc]
                                         [--chunks N]

CPU milliseconds per request (scripts/bench.py) move by 20-30% between runs on a shared
machine; instruction counts move by well under 1%, so they tell a change's effect apart from
the host's mood. Each process runs under valgrind's callgrind (`apt-get install valgrind`)
with instrumentation off until it is warmed up, then counts every instruction its threads
execute while N requests go through at concurrency C, on 127.0.0.1:

  * scripts/bench_upstream.py, the fixed-answer upstream (not counted);
  * the floor: scripts/bench_rest_floor.py, a bare aiohttp relay (aiohttp server in, one
    pooled aiohttp client out, no checks, no books), the least any aiohttp-based gateway
    could cost; the ratio to it is this script's "direct" reference;
  * `st-ai serve` on a fresh database with every feature on, as scripts/bench.py sets it up:
    priced model, a token with a quota and requests, tokens and concurrency limits, metrics.

It prints, per path, the instructions per request (millions) of the event-loop thread, of
the other threads (the database thread, grpc's), their sum and its ratio to the floor. Every
request must succeed (exit 1 otherwise); no speed is asserted. Valgrind makes everything
about 50 times slower: the defaults take about a minute per path.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

import bench_checks
from bench_proc import ROOT, SCRIPTS, Processes, free_port, start_upstream
from bench_upstream import MODEL, UPSTREAM_KEY

PROMPT = "Say hello"
CALL_TIMEOUT = 120.0  # seconds: one request under valgrind, at worst
START_TIMEOUT = 120.0  # seconds: a process starting under valgrind


def _callgrind(out: Path, argv: list[str]) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={out}", *argv]


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], capture_output=True, timeout=60, check=False)


def _thread_totals(out: Path) -> dict[int, int]:
    """Instructions per thread (1 = the main thread, which runs the event loop) of the
    dump taken after the measured requests."""
    totals: dict[int, int] = {}
    for path in out.parent.glob(out.name + ".*-*"):
        match = re.search(r"\.(\d+)-(\d+)$", path.name)
        if not match:
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                totals[int(match.group(2))] = int(line.split()[1])
                break
    return totals


# -- load -------------------------------------------------------------------------------------

async def _rest(base: str, key: str, stream: bool, requests: int, concurrency: int) -> int:
    """Sends `requests` chat requests; returns how many failed."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16,
                       **({"stream": True} if stream else {})})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    failed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT)) as session:
        async def caller(count: int) -> None:
            nonlocal failed
            for _ in range(count):
                async with session.post(base + "/chat/completions", data=body, headers=headers) as answer:
                    data = await answer.read()
                    if answer.status != 200 or (stream and b"data: [DONE]" not in data):
                        failed += 1
        await asyncio.gather(*(caller(requests // concurrency + (i < requests % concurrency))
                               for i in range(concurrency)))
    return failed


async def _grpc(target: str, key: str, requests: int, concurrency: int) -> int:
    import grpc
    from st_ai.v1 import chat_pb2, chat_pb2_grpc
    request = chat_pb2.ChatCompletionRequest(model=MODEL, messages=[chat_pb2.ChatMessage(role="user", text=PROMPT)],
                                             max_tokens=16)
    failed = 0
    async with grpc.aio.insecure_channel(target) as channel:
        stub = chat_pb2_grpc.ChatStub(channel)

        async def caller(count: int) -> None:
            nonlocal failed
            for _ in range(count):
                try:
                    answer = await stub.CreateChatCompletion(request, metadata=(("authorization", f"Bearer {key}"),),
                                                             timeout=CALL_TIMEOUT)
                    failed += len(answer.choices) != 1
                except grpc.aio.AioRpcError:
                    failed += 1
        await asyncio.gather(*(caller(requests // concurrency + (i < requests % concurrency))
                               for i in range(concurrency)))
    return failed


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    async def probe() -> bool:
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                async with session.get(url) as answer:
                    return answer.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[-1]!r} exited under valgrind ({proc.returncode})")
        if asyncio.run(probe()):
            return
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} within {START_TIMEOUT:.0f} s")


def measure(proc: subprocess.Popen, out: Path, send, requests: int, concurrency: int) -> tuple[dict[int, int], int]:
    """Warm up, count the instructions of `requests` requests, return them by thread and the
    number of failed requests (warm-up included)."""
    failed = asyncio.run(send(max(2 * concurrency, requests // 4), concurrency))
    _control("-z", str(proc.pid))
    _control("-i", "on", str(proc.pid))
    failed += asyncio.run(send(requests, concurrency))
    _control("-d", str(proc.pid))
    deadline = time.monotonic() + 60
    while not _thread_totals(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # every thread's file written, not only the first
    return _thread_totals(out), failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests counted per path (default 300)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--paths", default="rest,stream,grpc",
                        help="comma-separated: rest (whole answers), stream (streams of --chunks chunks), grpc "
                             "(whole answers)")
    parser.add_argument("--chunks", type=int, default=20,
                        help="SSE chunks per stream (default 20); two runs with different counts give the cost per chunk")
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    if not paths or any(p not in ("rest", "stream", "grpc") for p in paths):
        parser.error("--paths takes rest, stream and grpc")
    if args.requests < 1 or args.concurrency < 1 or args.chunks < 1:
        parser.error("--requests, --concurrency and --chunks are at least 1")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("bench_instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    sys.path.insert(0, str(ROOT / "generated"))
    tmp = Path(tempfile.mkdtemp(prefix="st-ai-instructions-"))
    procs = Processes()
    rows: list[tuple[str, dict[int, int], int]] = []
    failures = 0
    try:
        _, upstream = start_upstream(procs, tmp, None, args.chunks)
        db = tmp / "st-ai.db"
        bench_checks.add_channel(db, upstream, UPSTREAM_KEY, [MODEL])
        bench_checks.price_model(db, MODEL)
        key = bench_checks.add_token(db, "bench", bare=False)

        floor_port = free_port()
        floor_out = tmp / "floor.cg"
        floor = procs.start(_callgrind(floor_out, [sys.executable, str(SCRIPTS / "bench_rest_floor.py"), upstream,
                                                   "--port", str(floor_port)]), tmp / "floor.log", None)
        floor_base = f"http://127.0.0.1:{floor_port}"
        _wait_healthy(floor_base + "/healthz", floor)

        http_port, grpc_port = free_port(), free_port()
        gateway_out = tmp / "serve.cg"
        gateway = procs.start(_callgrind(gateway_out, [
            sys.executable, "-m", "server.cli", "serve", "--db", str(db), "--host", "127.0.0.1",
            "--http-port", str(http_port), "--grpc-port", str(grpc_port)]), tmp / "serve.log", None,
            env={"ST_AI_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
        base = f"http://127.0.0.1:{http_port}"
        _wait_healthy(base + "/healthz", gateway)

        for path in paths:
            stream = path == "stream"
            if path != "grpc":
                totals, failed = measure(floor, floor_out, lambda n, c, s=stream: _rest(floor_base + "/v1", "-", s, n, c),
                                         args.requests, args.concurrency)
                rows.append((f"floor relay {'stream' if stream else 'unary'}", totals, failed))
                _clear(floor_out)
                failures += failed
            if path == "grpc":
                send = lambda n, c: _grpc(f"127.0.0.1:{grpc_port}", key, n, c)  # noqa: E731
            else:
                send = lambda n, c, s=stream: _rest(base + "/v1", key, s, n, c)  # noqa: E731
            totals, failed = measure(gateway, gateway_out, send, args.requests, args.concurrency)
            rows.append((f"st-ai {'gRPC unary' if path == 'grpc' else 'REST ' + ('stream' if stream else 'unary')}",
                         totals, failed))
            _clear(gateway_out)
            failures += failed
    finally:
        for proc in list(procs.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)  # its final dump would only take time
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(rows, args.requests, args.concurrency))
    if failures:
        print(f"FAILED: {failures} request(s) did not succeed")
        return 1
    return 0


def _clear(out: Path) -> None:
    for path in out.parent.glob(out.name + ".*-*"):
        path.unlink()


def report(rows: list[tuple[str, dict[int, int], int]], requests: int, concurrency: int) -> str:
    loop = "uvloop" if _has_uvloop() else "asyncio"  # what `serve --loop auto` runs on
    lines = [f"st-ai instructions per request (valgrind callgrind; {requests} requests at concurrency "
             f"{concurrency} per path; event loop: {loop})", "",
             f"{'path':<22} {'M instr/req':>11} {'loop thread':>11} {'other threads':>13} {'x floor':>8} {'failed':>6}",
             f"{'-' * 22} {'-' * 11} {'-' * 11} {'-' * 13} {'-' * 8} {'-' * 6}"]
    floors: dict[str, float] = {}
    for name, totals, failed in rows:
        total = sum(totals.values()) / requests / 1e6
        main_thread = totals.get(1, 0) / requests / 1e6
        mode = "stream" if "stream" in name else "unary"
        if name.startswith("floor"):
            floors[mode] = total
        ratio = f"{total / floors[mode]:.2f}" if mode in floors and not name.startswith("floor") else "-"
        lines.append(f"{name:<22} {total:>11.3f} {main_thread:>11.3f} {total - main_thread:>13.3f} {ratio:>8} {failed:>6}")
    lines += ["", "  'loop thread' = the main thread, which runs the event loop; 'other threads' = the database",
              "  thread and grpc's; 'x floor' = total / the bare aiohttp relay's for the same kind of request",
              "  (gRPC against the REST floor). Counts are the processes' own user-space instructions: the",
              "  kernel's work for their system calls is not in them."]
    return "\n".join(lines)


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


if __name__ == "__main__":
    sys.exit(main())
