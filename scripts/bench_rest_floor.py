#!/usr/bin/env python
"""The REST floor of scripts/bench.py and scripts/bench_instructions.py: a bare aiohttp relay,
run as a process of its own:

    python scripts/bench_rest_floor.py UPSTREAM_BASE_URL (--port N | --port-file PATH)

It takes POST /v1/chat/completions and sends the body on to UPSTREAM_BASE_URL over one pooled
aiohttp client, with the bench upstream's key, and hands back the answer (a stream chunk by
chunk as it comes): aiohttp server in, aiohttp client out, no checks, no books, no logs. It
runs on the event loop st-ai runs on (uvloop when installed), so its cost is the least any
aiohttp-based gateway of this API costs on the machine, and its latency at concurrency 1 the
least such a gateway adds there: the floor under st-ai's REST rows. GET /healthz answers
when it is up. With --port-file it listens on a free port and writes it there; it stops on
SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# what the load generator checks every answer for, as st-ai sends it
TIMING = {"Server-Timing": "gateway;dur=0, upstream;dur=0"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("upstream", help="the upstream's base URL, e.g. http://127.0.0.1:8000/v1")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int)
    where.add_argument("--port-file")
    args = parser.parse_args(argv)
    from server import event_loop
    event_loop.run(_serve(args.upstream, args.port or 0, args.port_file))


async def _serve(upstream: str, port: int, port_file: str | None) -> None:
    import aiohttp
    from aiohttp import web
    from bench_upstream import UPSTREAM_KEY

    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=256),
                                 cookie_jar=aiohttp.DummyCookieJar())
    headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with http.post(upstream + "/chat/completions", data=body, headers=headers) as answer:
            if answer.content_type != "text/event-stream":
                return web.Response(body=await answer.read(), status=answer.status,
                                    content_type="application/json", headers=TIMING)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **TIMING})
            await response.prepare(request)
            async for data in answer.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", relay)
    # the idle answer scripts/bench_wrk.py tells apart from a booked one, byte for byte
    app.router.add_get("/healthz", lambda _: web.Response(body=b'{"status":"ok"}', content_type="application/json"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if port_file:
        bound = runner.addresses[0][1]
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(bound))
        os.replace(tmp, port_file)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await http.close()


if __name__ == "__main__":
    main()
