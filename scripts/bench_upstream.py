#!/usr/bin/env python
"""The fast local OpenAI-compatible upstream of scripts/bench.py and scripts/soak.py, run as
a process of its own:

    python scripts/bench_upstream.py --port-file PATH [--chunks 20] [--chunk-delay 0]

POST /v1/chat/completions answers a fixed completion, or SSE chunks when `stream` is true
(plus a usage chunk when stream_options.include_usage is set), with fixed usage so the
bench can say what st-ai must have booked; GET /healthz answers `{"status":"ok"}`, as
st-ai's does (the wrk phases idle on it). It writes its port to --port-file once listening,
and stops on SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal

MODEL = "bench-model"
UPSTREAM_KEY = "sk-bench-upstream-key"  # what the gateways under test are given as the key to it
PROMPT_TOKENS = 11      # the usage every answer reports
COMPLETION_TOKENS = 9   # a whole answer's; a stream's is one per chunk
HEALTHZ = b'{"status":"ok"}'


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="seconds between two SSE events (0: as fast as possible)")
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.chunks, args.chunk_delay, args.port_file))


def _answers(chunks: int) -> tuple[bytes, list[bytes], bytes]:
    import orjson

    completion = orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant",
                                              "content": "Hello! This is a fixed benchmark answer.",
                                              "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS,
                  "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0}},
        "service_tier": "default", "system_fingerprint": "fp_bench"})
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": MODEL, "system_fingerprint": "fp_bench"}
    events = []
    for i in range(chunks):
        delta = {"role": "assistant", "content": f"tok{i} "} if i == 0 else {"content": f"tok{i} "}
        events.append(b"data: " + orjson.dumps(base | {"choices": [{
            "index": 0, "delta": delta, "logprobs": None,
            "finish_reason": "stop" if i == chunks - 1 else None}]}) + b"\n\n")
    usage_event = b"data: " + orjson.dumps(base | {"choices": [], "usage": {
        "prompt_tokens": PROMPT_TOKENS, "completion_tokens": chunks,
        "total_tokens": PROMPT_TOKENS + chunks}}) + b"\n\n"
    return completion, events, usage_event


async def _serve(chunks: int, chunk_delay: float, port_file: str) -> None:
    import orjson
    from aiohttp import web

    completion, events, usage_event = _answers(chunks)
    done = b"data: [DONE]\n\n"
    sse_headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/healthz":
            return web.Response(body=HEALTHZ, content_type="application/json")
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
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(usage_event)
        await response.write(done)
        await response.write_eof()
        return response

    # aiohttp's low-level server: no router or middlewares, no access log.
    server = web.Server(handle, access_log=None)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server, "127.0.0.1", 0, backlog=1024)
    port = listener.sockets[0].getsockname()[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    await server.shutdown(1)


if __name__ == "__main__":
    main()
