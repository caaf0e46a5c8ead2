#!/usr/bin/env python
"""Benchmark st-ai's overhead against a fast local OpenAI-compatible upstream.

    python scripts/bench.py [--requests N] [--concurrency C] [--no-pin-core] [--grpc-experiments]
                            [--compare-dispatch] [--workers 1|2]

It starts, each in its own process and all on 127.0.0.1:
  * a minimal aiohttp upstream answering POST /v1/chat/completions with a fixed
    completion, or with SSE chunks (20 by default) when `stream` is true (plus a usage
    chunk when stream_options.include_usage is set);
  * `python -m server.cli serve` on a fresh temporary database holding one channel
    pointing at that upstream and one token;
  * a load generator (one pooled aiohttp session, one grpc.aio channel).

With --pin-core (the default, when at least two cores are usable) the gateway runs on
core 0 and the upstream plus the load generator on core 1, so the gateway's figures
are those of one core. With --workers N (`st-ai serve --workers N`) the gateway gets
cores 0..N-1 when more than N cores are usable, and nothing is pinned otherwise; its
CPU time is that of the parent and all its workers, its RSS the largest worker's.

For each of: direct to the upstream, through st-ai's REST bridge, through st-ai's gRPC
service, non-streaming and streaming, it measures throughput at concurrency C, p50/p99
latency at concurrency 1, time to first token of streams (p50), the gateway's CPU time
per request (/proc/PID/stat utime+stime) and its memory (/proc/PID/status VmRSS and
VmHWM). It prints a table and the targets; it never asserts. Every loop is bounded by a
request count and a wall-clock cap; everything it starts is stopped at exit and its
temporary files removed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
UPSTREAM_KEY = "sk-bench-upstream-key"
READY = re.compile(r"st-ai ready: REST (http://\S+)/v1\s+gRPC (\S+)")
EE_OFF = "-event_engine_client,-event_engine_listener"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets, printed for reference only.
TARGET_REST_RPS = 2000
TARGET_ADDED_P50_MS = 0.6
TARGET_RSS_MB = 100


# -- /proc readings -----------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_seconds() -> float:
    """CPU time all processes on the machine have used (/proc/stat), in seconds."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def family(pid: int) -> list[int]:
    """`pid` and its children (the workers of `serve --workers`), from /proc/*/stat."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def family_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in family(pid):
        try:
            total += cpu_seconds(member)
        except OSError:  # a worker that just ended
            continue
    return total


def family_memory_mb(pid: int) -> tuple[float, float]:
    """The largest (VmRSS, VmHWM) among `pid` and its workers: the target is per worker."""
    readings = []
    for member in family(pid):
        try:
            readings.append(memory_mb(member))
        except OSError:
            continue
    return max(r[0] for r in readings), max(r[1] for r in readings)


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    rss = hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return rss, hwm


# -- the upstream (its own process) ---------------------------------------------------------

def upstream_main(argv: list[str]) -> None:
    import asyncio

    import orjson
    from aiohttp import web

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)

    completion = orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant",
                                              "content": "Hello! This is a fixed benchmark answer.",
                                              "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 9, "total_tokens": 20,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_bench"})
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": MODEL, "system_fingerprint": "fp_bench"}
    events = []
    for i in range(args.chunks):
        delta = {"role": "assistant", "content": f"tok{i} "} if i == 0 else {"content": f"tok{i} "}
        events.append(b"data: " + orjson.dumps(base | {"choices": [{
            "index": 0, "delta": delta, "logprobs": None,
            "finish_reason": "stop" if i == args.chunks - 1 else None}]}) + b"\n\n")
    usage_event = b"data: " + orjson.dumps(base | {"choices": [], "usage": {
        "prompt_tokens": 11, "completion_tokens": args.chunks, "total_tokens": 11 + args.chunks}}) + b"\n\n"
    done = b"data: [DONE]\n\n"
    sse_headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return web.Response(status=404)
        # the low-level server's read() stops at 1 MiB; bench_memory.py sends 30 MB bodies
        body = orjson.loads(await request.content.read())
        if not body.get("stream"):
            return web.Response(body=completion, content_type="application/json")
        response = web.StreamResponse(headers=sse_headers)
        await response.prepare(request)
        for event in events:  # one write (one send) per event, as a real service streams
            await response.write(event)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(usage_event)
        await response.write(done)
        await response.write_eof()
        return response

    async def serve() -> None:
        # aiohttp's low-level server: no router or middlewares, no access log.
        server = web.Server(handle, access_log=None)
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(server, "127.0.0.1", 0, backlog=1024)
        port = listener.sockets[0].getsockname()[1]
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, args.port_file)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        listener.close()
        await server.shutdown(1)

    asyncio.run(serve())


# -- the load generator (its own process) -----------------------------------------------------

def loadgen_main(argv: list[str]) -> None:
    import asyncio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the conductor's to handle
    config = json.loads(Path(argv[0]).read_text())
    results = asyncio.run(_loadgen(config))
    Path(argv[1]).write_text(json.dumps(results))


async def _loadgen(config: dict) -> list[dict]:
    import asyncio

    import aiohttp
    import grpc
    from st_ai.v1 import chat_pb2, chat_pb2_grpc

    perf = time.perf_counter
    key = config["key"]
    chunks = config["chunks"]
    concurrency = config["concurrency"]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
            "max_tokens": 64}
    rest_plain = json.dumps(body).encode()
    rest_stream = json.dumps(body | {"stream": True}).encode()
    grpc_request = chat_pb2.ChatCompletionRequest(
        model=MODEL, messages=[chat_pb2.ChatMessage(role="user", text="Say hello to the benchmark.")],
        max_tokens=64)
    timeout = config["request_timeout"]
    metadata = (("authorization", f"Bearer {key}"),)
    http_timeout = aiohttp.ClientTimeout(total=timeout)
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency + 8, keepalive_timeout=60),
        timeout=http_timeout)
    channels: dict[str, grpc.aio.Channel] = {}

    def stub_for(target: str):
        if target not in channels:
            channels[target] = grpc.aio.insecure_channel(target)
        return chat_pb2_grpc.ChatStub(channels[target])

    # Each call returns (latency, ttft or None, ok).
    def rest_call(base_url: str, auth: str, stream: bool):
        url = f"{base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {auth}", "Content-Type": "application/json"}
        payload = rest_stream if stream else rest_plain
        expected_events = chunks + 1  # the content chunks and [DONE]; no usage chunk was asked for

        async def plain():
            t0 = perf()
            async with session.post(url, data=payload, headers=headers) as resp:
                data = await resp.read()
            return perf() - t0, None, resp.status == 200 and b'"choices"' in data

        async def streamed():
            t0 = perf()
            ttft = None
            parts = []
            async with session.post(url, data=payload, headers=headers) as resp:
                async for part in resp.content.iter_any():
                    if ttft is None and b"data:" in part:
                        ttft = perf() - t0
                    parts.append(part)
            data = b"".join(parts)
            ok = resp.status == 200 and data.count(b"data: ") == expected_events and b'"error"' not in data
            return perf() - t0, ttft, ok

        return streamed if stream else plain

    def grpc_call(target: str, stream: bool):
        stub = stub_for(target)

        async def plain():
            t0 = perf()
            answer = await stub.CreateChatCompletion(grpc_request, metadata=metadata, timeout=timeout)
            return perf() - t0, None, len(answer.choices) == 1

        async def streamed():
            t0 = perf()
            ttft = None
            count = 0
            async for _ in stub.StreamChatCompletion(grpc_request, metadata=metadata, timeout=timeout):
                if ttft is None:
                    ttft = perf() - t0
                count += 1
            return perf() - t0, ttft, count == chunks

        return streamed if stream else plain

    async def phase(call, total: int, workers: int, cap: float) -> dict:
        """Run `call` `total` times with `workers` in flight, stopping at the wall-clock cap."""
        latencies: list[float] = []
        ttfts: list[float] = []
        errors = 0
        issued = 0
        deadline = perf() + cap
        error_sample: list[str] = []

        async def worker():
            nonlocal issued, errors
            while issued < total and perf() < deadline:
                issued += 1
                try:
                    latency, ttft, ok = await call()
                except Exception as exc:  # counted, not fatal: the bench reports errors
                    errors += 1
                    if len(error_sample) < 3:
                        error_sample.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                if not ok:
                    errors += 1
                    continue
                latencies.append(latency)
                if ttft is not None:
                    ttfts.append(ttft)

        t0 = perf()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return {"elapsed": perf() - t0, "latencies": latencies, "ttfts": ttfts, "errors": errors,
                "issued": issued, "capped": issued < total, "error_sample": error_sample}

    gateway_pid = config.get("gateway_pid")
    upstream_pid = config["upstream_pid"]
    results = []
    try:
        for scenario in config["scenarios"]:
            stream = scenario["stream"]
            if scenario["transport"] == "grpc":
                call = grpc_call(scenario["target"], stream)
            else:
                call = rest_call(scenario["target"], scenario["auth"], stream)
            n = config["stream_requests"] if stream else config["requests"]
            n1 = config["latency_stream_requests"] if stream else config["latency_requests"]
            cap = config["phase_cap"]
            print(f"  {scenario['label']:<34}", end="", file=sys.stderr, flush=True)
            await phase(call, max(concurrency * 4, n // 10), concurrency, cap / 2)  # warm-up
            lat = await phase(call, n1, 1, cap)
            measure_gw = gateway_pid and scenario["path"] != "direct"  # idle while direct runs
            gw_cpu0 = family_cpu_seconds(gateway_pid) if gateway_pid else 0.0
            up_cpu0 = cpu_seconds(upstream_pid)
            me0 = time.process_time()
            busy0 = busy_seconds()
            thr = await phase(call, n, concurrency, cap)
            wall = thr["elapsed"]
            busy = busy_seconds() - busy0
            gw_cpu = family_cpu_seconds(gateway_pid) - gw_cpu0 if gateway_pid else 0.0
            core1_cpu = cpu_seconds(upstream_pid) - up_cpu0 + time.process_time() - me0
            # CPU that processes other than the bench's used meanwhile: a noisy machine
            other = max(0.0, busy - gw_cpu - core1_cpu)
            if not measure_gw:
                gw_cpu = None
            rss = family_memory_mb(gateway_pid) if measure_gw else (None, None)
            ok = len(thr["latencies"])
            row = {
                **scenario,
                "rps": ok / wall if wall > 0 else 0.0,
                "p50": _pct(lat["latencies"], 50), "p99": _pct(lat["latencies"], 99),
                "ttft50": _pct(lat["ttfts"], 50) if stream else None,
                "ttft50_c": _pct(thr["ttfts"], 50) if stream else None,
                "p50_c": _pct(thr["latencies"], 50),
                "latency_n": len(lat["latencies"]), "throughput_n": ok,
                "errors": lat["errors"] + thr["errors"],
                "error_sample": lat["error_sample"] + thr["error_sample"],
                "capped": lat["capped"] or thr["capped"],
                "gw_cpu_ms": gw_cpu * 1000 / ok if gw_cpu is not None and ok else None,
                "gw_util": gw_cpu / wall if gw_cpu is not None and wall > 0 else None,
                "core1_util": core1_cpu / wall if wall > 0 else None,
                "other_util": other / wall if wall > 0 else None,
                "rss": rss[0], "hwm": rss[1],
            }
            results.append(row)
            print(f"{row['rps']:8.0f} req/s  p50 {_ms(row['p50'])} ms  errors {row['errors']}",
                  file=sys.stderr, flush=True)
    finally:
        await session.close()
        for channel in channels.values():
            await channel.close()
    return results


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


# -- the conductor ------------------------------------------------------------------------------

def _child_setup(core: int | set[int] | None):
    """Runs in the child before exec: pin it to `core` (so every thread it ever starts
    inherits that), and have the kernel SIGTERM it should the bench die without cleaning up."""
    def setup() -> None:
        if core is not None:
            os.sched_setaffinity(0, core if isinstance(core, set) else {core})
        try:
            import ctypes
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    return setup


class Processes:
    """Everything the bench started, stopped in reverse order at exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log: Path, core: int | set[int] | None,
              env: dict | None = None) -> subprocess.Popen:
        log_file = open(log, "wb")
        try:
            proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})}, preexec_fn=_child_setup(core))
        finally:
            log_file.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def _wait_for(what: str, check, proc: subprocess.Popen, log: Path, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise RuntimeError(f"{what} did not start:\n{tail}")


def start_upstream(procs: Processes, tmp: Path, core: int | None, chunks: int) -> tuple[subprocess.Popen, str]:
    port_file = tmp / "upstream.port"
    log = tmp / "upstream.log"
    proc = procs.start([sys.executable, str(Path(__file__).resolve()), "_upstream", "--chunks", str(chunks),
                        "--port-file", str(port_file)], log, core)
    port = _wait_for("the upstream", lambda: port_file.exists() and port_file.read_text(), proc, log)
    return proc, f"http://127.0.0.1:{port}/v1"


def start_gateway(procs: Processes, tmp: Path, db_path: Path, core: int | set[int] | None, name: str,
                  env: dict | None = None, extra: tuple[str, ...] = (),
                  workers: int = 1) -> tuple[subprocess.Popen, str, str, Path]:
    log = tmp / f"gateway-{name}.log"
    proc = procs.start([sys.executable, "-m", "server.cli", "serve", "--db", str(db_path), "--host", "127.0.0.1",
                        "--http-port", "0", "--grpc-port", "0", "--workers", str(workers), *extra], log, core,
                       env={"ST_AI_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **(env or {})})

    def ready():
        match = READY.search(log.read_text(errors="replace")) if log.exists() else None
        return match and (match.group(1) + "/v1", match.group(2))

    base_url, grpc_target = _wait_for(f"st-ai ({name})", ready, proc, log)
    return proc, base_url, grpc_target, log


def run_loadgen(procs: Processes, tmp: Path, core: int | None, config: dict, wall_cap: float) -> list[dict]:
    config_path = tmp / "loadgen.json"
    out_path = tmp / "loadgen-out.json"
    config_path.write_text(json.dumps(config))
    out_path.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "_loadgen", str(config_path),
                             str(out_path)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            preexec_fn=_child_setup(core))
    procs.procs.append(proc)
    try:
        proc.wait(wall_cap)
    except subprocess.TimeoutExpired:
        print(f"  load generator exceeded its {wall_cap:.0f} s cap; stopped", file=sys.stderr)
    finally:
        procs.stop(proc)
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"the load generator failed (exit {proc.returncode})")
    return json.loads(out_path.read_text())


def make_db(db_path: Path, upstream_url: str) -> str:
    for path in (str(ROOT), str(ROOT / "generated")):
        if path not in sys.path:
            sys.path.insert(0, path)
    from server.store import channels as channel_store
    from server.store import tokens as token_store
    from server.store.db import open_db

    db = open_db(str(db_path))
    try:
        channel_store.add(db, "bench-upstream", "openai", upstream_url, UPSTREAM_KEY, [MODEL])
        _, key = token_store.create(db, "bench")
    finally:
        db.close()
    return key


def grpc_version() -> str:
    try:
        import grpc
        return grpc.__version__
    except ImportError:
        return "?"


# -- the report ------------------------------------------------------------------------------

def print_table(rows: list[dict], concurrency: int) -> None:
    direct = {r["stream"]: r for r in rows if r["path"] == "direct"}
    header = ["path", "mode", f"req/s@{concurrency}", "x direct", "p50 ms", "p99 ms", "+p50 ms",
              "TTFT50 ms", "+TTFT ms", "gw CPU ms/req", "gw cap req/s", "gw util", "client util",
              "other", "gw RSS MB", "errors"]
    table = []
    for r in rows:
        d = direct.get(r["stream"])
        is_direct = r["path"] == "direct"
        ratio = r["rps"] / d["rps"] if d and d["rps"] and not is_direct else None
        added = (r["p50"] - d["p50"]) * 1000 if d and not is_direct and r["p50"] and d["p50"] else None
        added_ttft = ((r["ttft50"] - d["ttft50"]) * 1000
                      if d and not is_direct and r["ttft50"] and d["ttft50"] else None)
        table.append([
            r["path"], "stream" if r["stream"] else "unary",
            f"{r['rps']:.0f}" + ("*" if r["capped"] else ""),
            f"{ratio:.2f}" if ratio is not None else "-",
            _ms(r["p50"]), _ms(r["p99"]),
            f"{added:+.2f}" if added is not None else "-",
            _ms(r["ttft50"]), f"{added_ttft:+.2f}" if added_ttft is not None else "-",
            f"{r['gw_cpu_ms']:.3f}" if r["gw_cpu_ms"] is not None else "-",
            f"{1000 / r['gw_cpu_ms']:.0f}" if r["gw_cpu_ms"] else "-",
            f"{r['gw_util'] * 100:.0f}%" if r["gw_util"] is not None else "-",
            f"{r['core1_util'] * 100:.0f}%" if r["core1_util"] is not None else "-",
            f"{r['other_util'] * 100:.0f}%" if r["other_util"] is not None else "-",
            f"{r['rss']:.1f}" if r["rss"] is not None else "-",
            str(r["errors"]),
        ])
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def print_targets(rows: list[dict], peaks: dict[str, float]) -> None:
    direct = {r["stream"]: r for r in rows if r["path"] == "direct"}
    print("\ntargets (for reference; nothing is asserted):")
    for r in rows:
        if r["path"] == "direct" or r["stream"]:
            continue
        cap = f"{1000 / r['gw_cpu_ms']:.0f}" if r["gw_cpu_ms"] else "?"
        added = (f"{(r['p50'] - direct[False]['p50']) * 1000:+.2f}"
                 if r["p50"] and direct.get(False) and direct[False]["p50"] else "?")
        print(f"  {r['path']:<20} unary: {r['rps']:.0f} req/s measured, ~{cap} req/s if the gateway's core"
              f" were the limit (target >= {TARGET_REST_RPS} through REST); added p50 {added} ms"
              f" (target <= {TARGET_ADDED_P50_MS})")
    noisy = [r for r in rows if (r["other_util"] or 0) > 0.10]
    if noisy:
        print(f"  NOTE: other processes used up to {max(r['other_util'] for r in noisy) * 100:.0f}% of a core"
              " during some phases: the machine was not quiet, rerun for steadier figures")
    for name, hwm in peaks.items():
        print(f"  gateway {name}: peak RSS (VmHWM) {hwm:.1f} MB (target <= {TARGET_RSS_MB} MB)")
    print("""  columns: 'x direct' = throughput / direct's; '+p50', '+TTFT' = added to direct's at concurrency 1;
  'gw cap' = 1 / gateway CPU per request (what one core could serve); during the throughput phase,
  'gw util' = gateway CPU / wall time, 'client util' = upstream + load generator CPU / wall time
  (near 100% when pinned: the client side, not the gateway, limited req/s), 'other' = CPU used by
  processes outside the bench (more than a few % makes the figures noisy); '*' = a phase hit its cap.""")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_upstream":
        return upstream_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_loadgen":
        return loadgen_main(sys.argv[2:])

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000,
                        help="non-streaming requests in each throughput phase (default 5000)")
    parser.add_argument("--stream-requests", type=int, default=None,
                        help="streams in each throughput phase (default requests/4)")
    parser.add_argument("--latency-requests", type=int, default=1000,
                        help="sequential requests for p50/p99 at concurrency 1 (default 1000)")
    parser.add_argument("--concurrency", type=int, default=32, help="in-flight requests (default 32)")
    parser.add_argument("--chunks", type=int, default=20, help="SSE chunks per streamed answer (default 20)")
    parser.add_argument("--phase-cap", type=float, default=12.0,
                        help="wall-clock cap of one measuring phase, seconds (default 12)")
    parser.add_argument("--pin-core", dest="pin_core", action="store_true", default=True,
                        help="gateway on core 0, upstream and load generator on core 1 (default)")
    parser.add_argument("--no-pin-core", dest="pin_core", action="store_false")
    parser.add_argument("--grpc-experiments", action="store_true",
                        help=f"also run the gateway on grpcio's EventEngine (st-ai's default is "
                             f"GRPC_EXPERIMENTS={EE_OFF}) and compare")
    parser.add_argument("--compare-dispatch", action="store_true",
                        help="also run `serve --dispatch grpc` (the bridge calling its services over a private "
                             "Unix socket) beside the default in-process dispatch")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1,
                        help="st-ai serve --workers N: worker processes sharing the ports (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, db)")
    args = parser.parse_args()
    stream_requests = args.stream_requests or max(args.concurrency * 4, args.requests // 4)

    cores = sorted(os.sched_getaffinity(0))
    gw_core = lg_core = None
    if args.pin_core:
        if len(cores) > args.workers:
            gw_core = cores[0] if args.workers == 1 else set(cores[:args.workers])
            lg_core = cores[args.workers]
        else:
            print(f"{len(cores)} usable core(s) for {args.workers} worker(s) and the load generator: "
                  "not pinning", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="st-ai-bench-"))
    procs = Processes()
    exit_code = 0
    started = time.monotonic()
    try:
        upstream, upstream_url = start_upstream(procs, tmp, lg_core, args.chunks)
        db_path = tmp / "bench.db"
        key = make_db(db_path, upstream_url)
        print(f"st-ai bench: grpcio {grpc_version()}, python {sys.version.split()[0]}, "
              f"concurrency {args.concurrency}, {args.requests} unary / {stream_requests} streamed requests"
              f" per throughput phase, {args.latency_requests} at concurrency 1; "
              + (f"gateway pinned to core(s) {gw_core}, upstream + load generator to core {lg_core}"
                 if gw_core is not None else "not pinned") + f"; {args.workers} worker(s)", file=sys.stderr)
        base_config = {
            "key": key, "chunks": args.chunks, "concurrency": args.concurrency,
            "requests": args.requests, "stream_requests": stream_requests,
            "latency_requests": args.latency_requests,
            "latency_stream_requests": max(50, args.latency_requests // 2),
            "phase_cap": args.phase_cap, "request_timeout": 10.0, "upstream_pid": upstream.pid,
        }
        variants = [("st-ai", "", {"GRPC_EXPERIMENTS": EE_OFF}, ())]
        if args.grpc_experiments:
            # an empty value keeps grpcio's own defaults (st-ai sets it only when unset)
            variants.append(("st-ai[EE on]", " [EE on]", {"GRPC_EXPERIMENTS": ""}, ()))
        if args.compare_dispatch:
            variants.append(("st-ai[grpc hop]", " [grpc hop]", {"GRPC_EXPERIMENTS": EE_OFF}, ("--dispatch", "grpc")))

        rows: list[dict] = []
        peaks: dict[str, float] = {}
        for index, (name, suffix, env, extra) in enumerate(variants):
            gateway, base_url, grpc_target, log = start_gateway(procs, tmp, db_path, gw_core, f"v{index}", env, extra,
                                                                args.workers)
            scenarios = []
            for stream in (False, True):
                if index == 0:
                    scenarios.append({"label": f"direct {'stream' if stream else 'unary'}", "path": "direct",
                                      "transport": "rest", "target": upstream_url, "auth": UPSTREAM_KEY,
                                      "stream": stream})
                scenarios.append({"label": f"{name} REST {'stream' if stream else 'unary'}",
                                  "path": f"st-ai REST{suffix}", "transport": "rest", "target": base_url,
                                  "auth": key, "stream": stream})
                scenarios.append({"label": f"{name} gRPC {'stream' if stream else 'unary'}",
                                  "path": f"st-ai gRPC{suffix}", "transport": "grpc", "target": grpc_target,
                                  "stream": stream})
            config = base_config | {"gateway_pid": gateway.pid, "scenarios": scenarios}
            cap = len(scenarios) * args.phase_cap * 3 + 30
            print(f"running against {name} (pid {gateway.pid}{', ' + env['GRPC_EXPERIMENTS'] if env else ''}):",
                  file=sys.stderr)
            rows.extend(run_loadgen(procs, tmp, lg_core, config, cap))
            peaks[name] = family_memory_mb(gateway.pid)[1]
            procs.stop(gateway)
            text = log.read_text(errors="replace")
            notes = [line for line in text.splitlines() if not READY.search(line) and line.strip()]
            if notes:
                print(f"  {name} logged {len(notes)} line(s), e.g.: {notes[0][:300]}", file=sys.stderr)

        order = {"direct": 0}
        rows.sort(key=lambda r: (r["stream"], order.get(r["path"], 1), r["path"].replace("REST", "A")))
        print()
        print_table(rows, args.concurrency)
        print_targets(rows, peaks)
        for r in rows:
            if r["error_sample"]:
                print(f"  {r['path']} {'stream' if r['stream'] else 'unary'} errors, e.g.: {r['error_sample'][0]}")
        print(f"\n(total {time.monotonic() - started:.0f} s)")
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        exit_code = 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if exit_code:
        sys.exit(exit_code)


if __name__ == "__main__":
    main()
