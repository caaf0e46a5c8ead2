"""scripts/bench.py's load generator, run as a process of its own (pinned to the core the
gateway does not use):

    python scripts/bench_loadgen.py CONFIG.json OUT.json

For each scenario of the config (direct to the upstream, or through st-ai's REST bridge or
gRPC service; whole answers or streams) it runs a warm-up, a latency phase at concurrency 1
and a throughput phase at the configured concurrency, reading the gateway's and its own
CPU time around the throughput phase. REST throughput phases run through wrk when the
config asks for it (scripts/bench_wrk.py), everything else through one pooled aiohttp
session and grpc.aio channels: one channel, or one per concurrent caller (each with its
own connection) when the gateway has several workers, so the kernel spreads them.

Every request it sends is counted, and every answer checked (a whole body, a
Server-Timing header or metadata), so the conductor can hold the gateway's ledger and
metrics against what was sent. Every loop is bounded by a request count or a deadline and
every call by a timeout.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import bench_wrk
from bench_proc import busy_seconds, cpu_seconds, family, family_memory_mb

perf = time.perf_counter
PROMPT = "Say hello to the benchmark."


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the conductor's to handle
    config = json.loads(Path(argv[0]).read_text())
    results = asyncio.run(run(config, Path(argv[0]).parent))
    Path(argv[1]).write_text(json.dumps(results))


def _member_cpu(pid: int) -> dict[int, float]:
    readings = {}
    for member in family(pid):
        try:
            readings[member] = cpu_seconds(member)
        except OSError:  # a worker that just ended
            continue
    return readings


class Calls:
    """One request of each kind: each call returns (latency, ttft or None, whole answer,
    Server-Timing present)."""

    def __init__(self, config: dict) -> None:
        import aiohttp
        import grpc
        from st_ai.v1 import chat_pb2, chat_pb2_grpc

        self.chat_pb2, self.chat_pb2_grpc, self.grpc = chat_pb2, chat_pb2_grpc, grpc
        self.chunks = config["chunks"]
        self.timeout = config["request_timeout"]
        self.grpc_channels = max(1, config.get("grpc_channels", 1))
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config["concurrency"] + 8, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=self.timeout))
        self.channels: dict[tuple[str, int], object] = {}

    async def close(self) -> None:
        await self.session.close()
        for channel in self.channels.values():
            await channel.close()

    def stub(self, target: str, caller: int):
        index = caller % self.grpc_channels
        if (target, index) not in self.channels:
            # the global subchannel pool would put every channel on one connection
            options = [("grpc.use_local_subchannel_pool", 1)] if self.grpc_channels > 1 else []
            self.channels[(target, index)] = self.grpc.aio.insecure_channel(target, options=options)
        return self.chat_pb2_grpc.ChatStub(self.channels[(target, index)])

    def rest(self, base_url: str, auth: str, model: str, stream: bool, extra_headers: dict | None = None,
             at_least: bool = False):
        """`at_least`: a stream may have more events than the upstream sent (a gateway that
        splits the finish reason into a chunk of its own), never fewer."""
        url = f"{base_url}/chat/completions"
        headers = {"Authorization": f"Bearer {auth}", "Content-Type": "application/json", **(extra_headers or {})}
        payload = rest_body(model, stream)
        expected_events = self.chunks + 1  # the content chunks and [DONE]; no usage chunk was asked for
        session = self.session

        async def plain(caller: int):
            t0 = perf()
            async with session.post(url, data=payload, headers=headers) as resp:
                data = await resp.read()
            return (perf() - t0, None, resp.status == 200 and b'"choices"' in data,
                    "Server-Timing" in resp.headers)

        async def streamed(caller: int):
            t0 = perf()
            ttft = None
            parts = []
            async with session.post(url, data=payload, headers=headers) as resp:
                async for part in resp.content.iter_any():
                    if ttft is None and b"data:" in part:
                        ttft = perf() - t0
                    parts.append(part)
            data = b"".join(parts)
            events = data.count(b"data: ")
            ok = (resp.status == 200 and (events == expected_events or (at_least and events > expected_events))
                  and b"data: [DONE]" in data and b'"error"' not in data)
            return perf() - t0, ttft, ok, "Server-Timing" in resp.headers

        return streamed if stream else plain

    def grpc_call(self, target: str, auth: str, model: str, stream: bool):
        request = self.chat_pb2.ChatCompletionRequest(
            model=model, messages=[self.chat_pb2.ChatMessage(role="user", text=PROMPT)], max_tokens=64)
        metadata = (("authorization", f"Bearer {auth}"),)
        timeout, chunks = self.timeout, self.chunks

        async def plain(caller: int):
            t0 = perf()
            call = self.stub(target, caller).CreateChatCompletion(request, metadata=metadata, timeout=timeout)
            answer = await call
            latency = perf() - t0
            timed = any(k == "server-timing" for k, _ in await call.trailing_metadata())
            return latency, None, len(answer.choices) == 1, timed

        async def streamed(caller: int):
            t0 = perf()
            ttft = None
            count = 0
            call = self.stub(target, caller).StreamChatCompletion(request, metadata=metadata, timeout=timeout)
            async for _ in call:
                if ttft is None:
                    ttft = perf() - t0
                count += 1
            latency = perf() - t0
            timed = any(k == "server-timing" for k, _ in await call.initial_metadata())
            return latency, ttft, count == chunks, timed

        return streamed if stream else plain


def rest_body(model: str, stream: bool) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64}
    return json.dumps(body | {"stream": True} if stream else body).encode()


async def phase(call, total: int, workers: int, cap: float) -> dict:
    """Run `call` `total` times with `workers` in flight, stopping at the wall-clock cap."""
    latencies: list[float] = []
    ttfts: list[float] = []
    counts = {"issued": 0, "errors": 0, "no_timing": 0}
    deadline = perf() + cap
    error_sample: list[str] = []

    async def worker(caller: int):
        while counts["issued"] < total and perf() < deadline:
            counts["issued"] += 1
            try:
                latency, ttft, ok, timed = await call(caller)
            except Exception as exc:  # counted, not fatal: the bench reports errors
                counts["errors"] += 1
                if len(error_sample) < 3:
                    error_sample.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            if not timed:
                counts["no_timing"] += 1
            if not ok:
                counts["errors"] += 1
                continue
            latencies.append(latency)
            if ttft is not None:
                ttfts.append(ttft)

    t0 = perf()
    await asyncio.gather(*(worker(i) for i in range(workers)))
    return {"elapsed": perf() - t0, "latencies": latencies, "ttfts": ttfts, **counts,
            "answered": len(latencies), "capped": counts["issued"] < total, "error_sample": error_sample}


class Readings:
    """The gateway's, the client side's and the machine's CPU time around a throughput phase."""

    def __init__(self, gateway_pid: int | None, upstream_pid: int) -> None:
        self.gateway_pid, self.upstream_pid = gateway_pid, upstream_pid
        self.gw = _member_cpu(gateway_pid) if gateway_pid else {}
        self.up = cpu_seconds(upstream_pid)
        self.me = time.process_time()
        self.busy = busy_seconds()

    def since(self, earlier: "Readings", children_cpu: float = 0.0) -> dict:
        gw = {pid: cpu - earlier.gw.get(pid, 0.0) for pid, cpu in self.gw.items()}
        client = self.up - earlier.up + self.me - earlier.me + children_cpu
        gw_total = sum(gw.values())
        return {"gw": gw_total, "client": client, "other": max(0.0, self.busy - earlier.busy - gw_total - client),
                "workers": [cpu for pid, cpu in sorted(gw.items()) if pid != self.gateway_pid]}


async def run(config: dict, workdir: Path) -> list[dict]:
    calls = Calls(config)
    concurrency = config["concurrency"]
    gateway_pid = config.get("gateway_pid")
    upstream_pid = config["upstream_pid"]
    use_wrk = config.get("loadgen") == "wrk"
    results = []
    try:
        for scenario in config["scenarios"]:
            stream = scenario["stream"]
            model = scenario.get("model", config.get("model", "bench-model"))
            if scenario["transport"] == "grpc":
                call = calls.grpc_call(scenario["target"], scenario["auth"], model, stream)
            else:
                call = calls.rest(scenario["target"], scenario["auth"], model, stream, scenario.get("headers"),
                                  scenario.get("at_least", False))
            n = config["stream_requests"] if stream else config["requests"]
            n1 = config["latency_stream_requests"] if stream else config["latency_requests"]
            cap = config["phase_cap"]
            print(f"  {scenario['label']:<34}", end="", file=sys.stderr, flush=True)
            warm = await phase(call, max(concurrency * 4, n // 10), concurrency, cap / 2)
            lat = await phase(call, n1, 1, cap)
            measure_gw = bool(gateway_pid) and scenario["path"] != "direct"  # idle while direct runs
            before = Readings(gateway_pid if measure_gw else None, upstream_pid)
            if use_wrk and scenario["transport"] == "rest":
                thr, after, wall = await _wrk_phase(config, scenario, model, stream, workdir, gateway_pid,
                                                    measure_gw, upstream_pid, before)
            else:
                thr = await phase(call, n, concurrency, cap)
                thr["cpu_n"] = thr["answered"]
                after = Readings(gateway_pid if measure_gw else None, upstream_pid).since(before)
                wall = thr["elapsed"]
            rss = family_memory_mb(gateway_pid) if measure_gw else (None, None)
            ok = thr["answered"]
            split = after["workers"]
            row = {
                **scenario,
                "tool": "wrk" if use_wrk and scenario["transport"] == "rest" else "python",
                "rps": thr.get("rps", ok / wall if wall > 0 else 0.0),
                "p50": _pct(lat["latencies"], 50), "p99": _pct(lat["latencies"], 99),
                "ttft50": _pct(lat["ttfts"], 50) if stream else None,
                "ttft50_c": _pct(thr["ttfts"], 50) if stream else None,
                "p50_c": _pct(thr["latencies"], 50),
                "latency_n": len(lat["latencies"]), "throughput_n": ok,
                "errors": lat["errors"] + thr["errors"] + warm["errors"],
                "error_sample": warm["error_sample"] + lat["error_sample"] + thr["error_sample"],
                "capped": lat["capped"] or thr["capped"],
                "sent": warm["issued"] + lat["issued"] + thr["issued"],
                "answered": warm["answered"] + lat["answered"] + thr["answered"],
                "no_timing": warm["no_timing"] + lat["no_timing"] + thr["no_timing"],
                "gw_cpu_ms": after["gw"] * 1000 / thr["cpu_n"] if measure_gw and thr["cpu_n"] else None,
                "gw_util": after["gw"] / wall if measure_gw and wall > 0 else None,
                "core1_util": after["client"] / wall if wall > 0 else None,
                "other_util": after["other"] / wall if wall > 0 else None,
                "worker_split": [cpu / sum(split) for cpu in split] if len(split) > 1 and sum(split) > 0 else None,
                "rss": rss[0], "hwm": rss[1],
            }
            results.append(row)
            print(f"{row['rps']:8.0f} req/s  p50 {_ms(row['p50'])} ms  errors {row['errors']}  ({row['tool']})",
                  file=sys.stderr, flush=True)
    finally:
        await calls.close()
    return results


async def _wrk_phase(config: dict, scenario: dict, model: str, stream: bool, workdir: Path,
                     gateway_pid: int | None, measure_gw: bool, upstream_pid: int,
                     before: Readings) -> tuple[dict, dict, float]:
    """A throughput phase through wrk; the CPU readings end at its deadline, when it stops
    sending booked requests (what it then sends, /healthz until the last answer, is not
    counted)."""
    at_deadline: list[Readings] = []
    result = await bench_wrk.run(
        scenario["target"], scenario["auth"], rest_body(model, stream), config["chunks"] + 1 if stream else 0,
        config["concurrency"], config["wrk_seconds"], workdir, config["request_timeout"],
        on_deadline=lambda: at_deadline.append(Readings(gateway_pid if measure_gw else None, upstream_pid)),
        headers=scenario.get("headers"), idle=tuple(scenario.get("idle", bench_wrk.IDLE)),
        at_least=scenario.get("at_least", False))
    after = at_deadline[0].since(before, children_cpu=result["cpu"])
    span = result["last_answered"] - result["first_sent"]
    answered = result["answered"] - result["bad"]
    socket_errors = result["connect"] + result["read"] + result["write"] + result["timeout"]
    thr = {"issued": result["sent"], "answered": answered, "errors": result["bad"] + socket_errors,
           "no_timing": result["no_timing"], "latencies": [], "ttfts": [], "capped": False,
           "error_sample": ([f"wrk: {result['bad']} bad answers, {socket_errors} socket errors"]
                            if result["bad"] or socket_errors else []),
           "rps": answered / span if span > 0 else 0.0,
           "cpu_n": result["sent"]}  # the booked requests sent in the window the CPU readings span
    return thr, after, result["window"]


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


if __name__ == "__main__":
    main(sys.argv[1:])
