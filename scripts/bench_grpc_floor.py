#!/usr/bin/env python
"""The gRPC floor of scripts/bench.py: a bare grpc.aio server of st-ai's Chat service, run as a
process of its own:

    python scripts/bench_grpc_floor.py --port-file PATH [--chunks 20]

Whatever it is asked, it answers the bench upstream's fixed completion, or its chunks one
message each, all built once at start: no checks, no upstream call, no books, no logs. It
runs on the event loop and grpcio engine st-ai runs on (uvloop when installed, grpcio's
classic polling engine), and sends the `server-timing` metadata the load generator checks
for, as st-ai does. Its CPU per call is the least any grpc.aio server of this API costs on
the machine: the floor under st-ai's gRPC rows, as the direct call is under its REST rows.
It writes its port to --port-file once listening, and stops on SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "generated")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

TIMING = (("server-timing", "upstream;dur=0"),)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_client,-event_engine_listener")  # as `st-ai` sets it
    from server import event_loop
    event_loop.run(_serve(args.chunks, args.port_file))


async def _serve(chunks: int, port_file: str) -> None:
    import grpc
    import orjson
    from bench_upstream import _answers
    from server.codec import codec_for
    from st_ai.v1 import chat_pb2, chat_pb2_grpc

    completion, events, _ = _answers(chunks)
    answer = codec_for(chat_pb2.ChatCompletion).to_message(orjson.loads(completion))
    chunk_codec = codec_for(chat_pb2.ChatCompletionChunk)
    messages = [chunk_codec.to_message(orjson.loads(event.removeprefix(b"data: "))) for event in events]

    class Chat(chat_pb2_grpc.ChatServicer):
        async def CreateChatCompletion(self, request, context):
            context.set_trailing_metadata(TIMING)
            return answer

        async def StreamChatCompletion(self, request, context):
            await context.send_initial_metadata(TIMING)
            for message in messages:
                yield message

    server = grpc.aio.server()
    chat_pb2_grpc.add_ChatServicer_to_server(Chat(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)
    await stop.wait()
    await server.stop(0)


if __name__ == "__main__":
    main()
