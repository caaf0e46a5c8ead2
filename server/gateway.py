"""Starting and stopping st-ai: the shared core (database thread, catalog, usage,
upstream HTTP client, providers, relay), the gRPC server and the REST bridge, all on
one event loop."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from typing import AsyncIterator

import aiohttp
from aiohttp import web

from rest_bridge.app import DEFAULT_MAX_BODY_BYTES, build_app
from rest_bridge.http_server import BridgeRunner, ClientTimeouts
from server import memory
from server.assets import AssetStore
from server.catalog import Catalog
from server.grpc_server import build_server
from server.image_relay import ImageRelay
from server.providers.interface import Upstream
from server.providers.registry import Registry
from server.providers.simulator.media import thumbnail_from_mp4
from server.relay import DEFAULT_UPSTREAM_TIMEOUT, ChatRelay
from server.store.db import DbWorker
from server.usage import UsageRecorder
from server.video_poller import VideoPoller
from server.video_tasks import VideoConfig, VideoTasks, process_owner

log = logging.getLogger("st_ai")


@dataclass
class Config:
    db_path: str
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 50051
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    catalog_refresh: float = 0.25
    assets_dir: str = "st-ai-assets"
    public_url: str | None = None  # where clients reach the REST bridge, for URLs st-ai hands out
    video: VideoConfig = field(default_factory=VideoConfig)
    client_timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)


@dataclass
class Core:
    catalog: Catalog
    relay: ChatRelay
    images: ImageRelay
    videos: VideoTasks
    assets: AssetStore
    worker: DbWorker
    tasks: list[asyncio.Task] = field(default_factory=list)


@contextlib.asynccontextmanager
async def open_core(config: Config, public_url: str) -> AsyncIterator[Core]:
    worker = await asyncio.to_thread(DbWorker, config.db_path)
    catalog = Catalog(worker, config.catalog_refresh)
    await catalog.load()
    usage = UsageRecorder(worker)
    assets = await asyncio.to_thread(AssetStore, config.assets_dir)
    # One pooled client for every upstream: connections are reused, never set up per request.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=256,
                                                                keepalive_timeout=60))
    registry = Registry.build(Upstream(http, assets, public_url))
    owner = process_owner()
    videos = VideoTasks(catalog, registry, worker, assets, config.video, owner)
    poller = VideoPoller(catalog, registry, worker, assets, config.video, owner, thumbnail_from_mp4)
    core = Core(catalog, ChatRelay(catalog, registry, usage, config.upstream_timeout),
                ImageRelay(catalog, registry, usage), videos, assets, worker)
    core.tasks = [asyncio.create_task(catalog.watch(), name="catalog-watch"),
                  asyncio.create_task(usage.run(), name="usage-writer"),
                  asyncio.create_task(poller.run(), name="video-poller")]
    try:
        yield core
    finally:
        for task in core.tasks:
            task.cancel()
        await asyncio.gather(*core.tasks, return_exceptions=True)
        await http.close()
        await asyncio.to_thread(worker.close)


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _listen(host: str, port: int) -> socket.socket:
    """Bind the HTTP port early, so the real port (for --http-port 0) is known before
    the core starts and URLs st-ai hands out can name it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, reuse_port=False)


async def _start_bridge(grpc_target: str, sock: socket.socket, max_body_bytes: int,
                        timeouts: ClientTimeouts) -> web.AppRunner:
    runner = BridgeRunner(build_app(grpc_target, max_body_bytes=max_body_bytes), timeouts=timeouts,
                          handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def _public_url(config: Config, http_port: int) -> str:
    if config.public_url:
        return config.public_url.rstrip("/")
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    return f"http://{_grpc_host(host)}:{http_port}"


def _announce(line: str) -> None:
    print(line, flush=True)


async def serve(config: Config) -> None:
    """gRPC and REST in one process; the bridge reaches gRPC over a private Unix socket."""
    socket_dir = tempfile.mkdtemp(prefix="st-ai-")
    socket_target = f"unix:{os.path.join(socket_dir, 'grpc.sock')}"
    sock = _listen(config.host, config.http_port)
    http_port = sock.getsockname()[1]
    async with open_core(config, _public_url(config, http_port)) as core:
        server, health = await build_server(core, [socket_target])
        grpc_port = server.add_insecure_port(f"{_grpc_host(config.host)}:{config.grpc_port}")
        if grpc_port == 0:
            raise OSError(f"cannot listen for gRPC on {config.host}:{config.grpc_port}")
        await server.start()
        runner = await _start_bridge(socket_target, sock, config.max_body_bytes, config.client_timeouts)
        _announce(f"st-ai ready: REST http://{config.host}:{http_port}/v1  gRPC {config.host}:{grpc_port}"
                  f"  db {config.db_path}")
        try:
            await _wait_for_signal()
        finally:
            log.info("shutting down")
            await health.enter_graceful_shutdown()
            await runner.cleanup()
            await server.stop(grace=5)
            with contextlib.suppress(OSError):
                os.unlink(socket_target[len("unix:"):])
                os.rmdir(socket_dir)


async def serve_grpc(config: Config) -> None:
    async with open_core(config, _public_url(config, config.http_port)) as core:
        server, health = await build_server(core, [])
        port = server.add_insecure_port(f"{_grpc_host(config.host)}:{config.grpc_port}")
        if port == 0:
            raise OSError(f"cannot listen for gRPC on {config.host}:{config.grpc_port}")
        await server.start()
        _announce(f"st-ai gRPC ready: {config.host}:{port}  db {config.db_path}")
        try:
            await _wait_for_signal()
        finally:
            await health.enter_graceful_shutdown()
            await server.stop(grace=5)


async def serve_bridge(grpc_target: str, host: str, port: int, max_body_bytes: int,
                       timeouts: ClientTimeouts = ClientTimeouts()) -> None:
    sock = _listen(host, port)
    runner = await _start_bridge(grpc_target, sock, max_body_bytes, timeouts)
    _announce(f"st-ai REST bridge ready: http://{host}:{sock.getsockname()[1]}/v1 -> gRPC {grpc_target}")
    try:
        await _wait_for_signal()
    finally:
        await runner.cleanup()


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run(coro) -> None:
    logging.basicConfig(level=os.environ.get("ST_AI_LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    memory.tune_malloc()
    try:
        asyncio.run(coro)
    except OSError as exc:
        sys.exit(f"st-ai: {exc}")
