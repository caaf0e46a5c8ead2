"""Starting and stopping st-ai: the shared core (database thread, catalog, billing,
upstream HTTP client, providers, relay), the gRPC server and the REST bridge, all on
one event loop."""
from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from typing import AsyncIterator

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from rest_bridge import access_log, draining as bridge_draining, metrics_route
from rest_bridge.app import DEFAULT_MAX_BODY_BYTES, build_app
from rest_bridge.errors import openai_errors
from rest_bridge.http_server import BridgeRunner, ClientTimeouts
from server import (collector, event_loop, helper_threads, logs, memory, metrics, redact, responses_retention,
                    shared_ports, socket_folders, tracing)
from server.admin import keys as admin_keys
from server.admin.keys import AdminAuth
from server.api_client import ApiClient
from server.assets import AssetStore
from server.billing.admission import Admission, release_stale_reservations, sweep_stale_reservations
from server.billing.group_commit import CommitDelay, GroupCommit
from server.billing.video_billing import VideoBilling
from server.catalog import Catalog
from server.core.attempts import AttemptLoop
from server.core.channel_health import ChannelHealth
from server.core.channel_probe import ChannelProbe
from server.core.resilience import Resilience
from server.demo import ensure_demo_at
from server.draining import Drain
from server.embeddings_relay import EmbeddingsRelay
from server.grpc_server import build_server, in_process_channel
from server.image_relay import ImageRelay
from server.metrics_scrape import MetricsScrape
from server.providers.interface import Upstream
from server.providers.registry import Registry
from server.providers.simulator.media import thumbnail_from_mp4
from server.relay import ChatRelay
from server.safe_fetch import FetchLimits, SafeFetch
from server.shutdown import CLOSE_ALLOWANCE, Fronts, StopSignals, shut_down
from server.store import responses as response_store
from server.store.checkpoints import Checkpointer, last_pass, leave_to_background
from server.store.db import DbWorker
from server.url_guard import UrlGuard
from server.callback_urls import CallbackRules
from server.video_poller import VideoPoller, owner_alive
from server.webhook_sender import WebhookConfig, WebhookSender
from server.video_tasks import VideoConfig, VideoTasks, process_owner

log = logging.getLogger("st_ai")


@dataclass
class Config:
    db_path: str
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 50051
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    resilience: Resilience = field(default_factory=Resilience)
    catalog_refresh: float = 0.25
    assets_dir: str = "st-ai-assets"
    public_url: str | None = None  # where clients reach the REST bridge, for URLs st-ai hands out
    video: VideoConfig = field(default_factory=VideoConfig)
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)
    demo: bool = False  # create the demo channel and token, once the ports are bound
    client_timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)
    unpriced: str = "allow"  # a model without a price: served at zero cost, or refused ("deny")
    trusted_bridges: tuple = ()  # `st-ai grpc`: peers that may name their HTTP client's address
    trusted_proxies: tuple = ()  # reverse proxies whose X-Forwarded-For the bridge believes
    admin_key: str | None = None  # ST_AI_ADMIN_KEY; None: the stored one, created on first start
    dispatch: str = "in-process"  # `serve`: how the bridge reaches the services ("grpc": a private socket)
    shared_ports: bool = False  # a worker of `serve --workers`: its parent reserved the ports (server/workers.py)
    metrics_port: int | None = None  # `st-ai grpc`: serve GET /metrics on this HTTP port
    metrics_auth: str = "none"  # "admin": GET /metrics wants the admin key (server/metrics_scrape.py)
    loop: str = "auto"  # the event loop (server/event_loop.py), also for `serve --workers`' workers
    # seconds a stored Responses API response is kept (None: until deleted); server/responses_retention.py
    responses_retention: float | None = response_store.DEFAULT_RETENTION
    commit_delay: CommitDelay = field(default_factory=CommitDelay)  # server/billing/group_commit.py


@dataclass
class Core:
    catalog: Catalog
    relay: ChatRelay
    images: ImageRelay
    videos: VideoTasks
    assets: AssetStore
    worker: DbWorker
    tasks: list[asyncio.Task] = field(default_factory=list)
    admin: AdminAuth = field(default_factory=AdminAuth)
    drain: Drain = field(default_factory=Drain)  # graceful shutdown, shared by both fronts
    health: ChannelHealth | None = None
    embeddings: EmbeddingsRelay | None = None
    responses_retention: float | None = response_store.DEFAULT_RETENTION  # Config's, for the responses route


@contextlib.asynccontextmanager
async def open_core(config: Config, public_url: str,
                    resolver: AbstractResolver | None = None) -> AsyncIterator[Core]:
    """`resolver` names the hosts of URLs providers return (default: the system's)."""
    worker = await asyncio.to_thread(DbWorker, config.db_path)
    checkpointer = Checkpointer(config.db_path, functools.partial(worker.post, last_pass))
    await worker.run(leave_to_background)
    catalog = Catalog(worker, config.catalog_refresh, config.resilience.timeouts)
    await catalog.load()
    assets = await asyncio.to_thread(AssetStore, config.assets_dir)
    # One pooled client for the upstream calls that are not model calls (files, video tasks,
    # webhooks): connections are reused, never set up per request. No cookie jar: a cookie
    # one upstream call was given must not ride on another token's call (nor cost a jar
    # lookup on every request).
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=256,
                                                                keepalive_timeout=60),
                                 cookie_jar=aiohttp.DummyCookieJar())
    files = SafeFetch(http, UrlGuard(resolver), FetchLimits(max_bytes=config.video.max_video_bytes,
                                                            total=config.video.download_timeout))
    calls = ApiClient()  # the model calls' own pooled client (server/api_client/client.py)
    registry = Registry.build(Upstream(http, assets, public_url, files, calls))
    owner = process_owner()
    settlements = GroupCommit(worker, config.commit_delay, company=lambda: admission.open_requests)
    admission = Admission(worker, settlements, owner, catalog, deny_unpriced=config.unpriced == "deny")
    video_billing = VideoBilling(worker, admission)
    callbacks = CallbackRules(UrlGuard(resolver), config.webhooks.allow_callback_hosts)
    webhooks = WebhookSender(worker, http, callbacks, config.webhooks, owner, owner_alive)
    poller = VideoPoller(catalog, registry, worker, assets, config.video, owner, video_billing, thumbnail_from_mp4)
    await release_stale_reservations(worker, owner, config.resilience.timeouts.total)
    health = ChannelHealth(config.resilience, worker, catalog)
    attempts = AttemptLoop(config.resilience, health)
    videos = VideoTasks(catalog, registry, worker, assets, config.video, owner, video_billing, callbacks, attempts)
    core = Core(catalog, ChatRelay(catalog, registry, admission, attempts),
                ImageRelay(catalog, registry, admission, attempts), videos, assets, worker,
                admin=AdminAuth(config.admin_key), health=health,
                embeddings=EmbeddingsRelay(catalog, registry, admission, attempts),
                responses_retention=config.responses_retention)
    settler = asyncio.create_task(settlements.run(), name="settlement-writer")
    core.tasks = [asyncio.create_task(catalog.watch(), name="catalog-watch"),
                  asyncio.create_task(sweep_stale_reservations(worker, owner, config.resilience.timeouts.total),
                                      name="reservation-sweep"),
                  asyncio.create_task(poller.run(), name="video-poller"),
                  asyncio.create_task(webhooks.run(), name="webhook-sender"),
                  asyncio.create_task(health.run(), name="channel-health-writer"),
                  asyncio.create_task(ChannelProbe(catalog, registry, worker, health,
                                                   config.resilience.probe_interval).run(), name="channel-probe"),
                  asyncio.create_task(metrics.sample_every(), name="metrics-sampler"),
                  asyncio.create_task(helper_threads.keep_behind_loop(), name="helper-threads"),
                  asyncio.create_task(responses_retention.sweep_expired(worker), name="responses-sweep")]
    # Every log line of this process is scrubbed of every channel's secrets.
    unscrub_logs = redact.install_log_scrubber(lambda: catalog.snapshot.channels_by_id.values())
    tracing.start_from_environment()
    try:
        yield core
    finally:
        await videos.drain()  # answers that went out are confirmed before the database closes
        await core.relay.finish_draining()  # before the settlement writer stops
        # The poller and the webhook sender give back the leases of what they were working on.
        for task in core.tasks:
            task.cancel()
        await asyncio.gather(*core.tasks, return_exceptions=True)
        settler.cancel()  # last: it writes whatever the others queued, then stops
        await asyncio.gather(settler, return_exceptions=True)
        await http.close()
        await calls.close()
        await asyncio.to_thread(checkpointer.stop)  # first: the last connection closed removes the WAL
        await asyncio.to_thread(worker.close)
        await asyncio.to_thread(tracing.stop)  # sends the spans still queued
        metrics.process_ended()
        unscrub_logs()


def _stop_on_signal() -> StopSignals:
    """Set on SIGINT, SIGTERM or SIGHUP (its terminal closed). Installed before anything
    starts, so a signal during start-up still stops st-ai through its clean-up, not by
    the default abrupt exit."""
    signals = StopSignals()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, signals.received, sig)
    return signals


def _listen(host: str, port: int, what: str = "REST", option: str = "--http-port",
            shared: bool = False) -> socket.socket:
    """Bind a port before anything else starts, so a busy port stops st-ai before it has
    created a file, and the real port (for port 0) is known before the core starts."""
    if shared:  # a worker: the parent checked the port and holds it
        return shared_ports.join(host, port, listen=what == "REST")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        hint = f" (is another st-ai running? choose another with {option})" if exc.errno == errno.EADDRINUSE else ""
        raise OSError(f"cannot listen for {what} on {host}:{port}: {exc.strerror or exc}{hint}") from None


def _bind_grpc(server, host: str, held: socket.socket) -> int:
    """Hand the port `held` since start-up over to the gRPC server: grpc binds its own
    socket, so the placeholder is closed just before."""
    port = held.getsockname()[1]
    held.close()
    try:
        bound = server.add_insecure_port(f"{_grpc_host(host)}:{port}")
    except RuntimeError:  # grpcio raises, rather than returning 0, when the bind fails
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen for gRPC on {host}:{port}: address already in use")
    return bound


async def _start_bridge(grpc_target: str, sock: socket.socket, max_body_bytes: int,
                        timeouts: ClientTimeouts, drain: Drain, trusted_proxies: tuple = (),
                        in_process=None, scrape: MetricsScrape | None = None,
                        cuts_itself: bool = False) -> web.AppRunner:
    """`cuts_itself`: a bridge on its own, with no gRPC side in its process to cut its calls."""
    app = build_app(grpc_target, max_body_bytes=max_body_bytes, trusted_proxies=trusted_proxies,
                    in_process=in_process)
    if scrape is not None:
        app[metrics_route.SCRAPE] = scrape
    bridge_draining.install(app, drain, cuts_itself)
    # The drain (server/shutdown.py) has waited for requests already: closing cuts what is left.
    runner = BridgeRunner(app, timeouts=timeouts, shutdown_timeout=CLOSE_ALLOWANCE,
                          handler_cancellation=True, **access_log.runner_options())
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


def _ready(line: str) -> None:
    """The server has started: its collector is set for serving, its helper threads (grpc's
    among them, started just now) yield to the loop, then it says so."""
    collector.settle_after_start()
    helper_threads.sweep(threading.get_native_id())
    _announce(line)


async def _announce_admin_key(config: Config) -> None:
    """Print the admin key once, when this start created it (ST_AI_ADMIN_KEY unset)."""
    if config.admin_key is None:
        for line in await asyncio.to_thread(admin_keys.ensure_at, config.db_path):
            _announce(line)


async def serve(config: Config) -> None:
    """gRPC and REST in one process; the bridge calls the services in-process, or with
    `dispatch="grpc"` over a private Unix socket."""
    signals = _stop_on_signal()
    sock = _listen(config.host, config.http_port, shared=config.shared_ports)
    grpc_held = _listen(config.host, config.grpc_port, "gRPC", "--grpc-port", shared=config.shared_ports)
    http_port = sock.getsockname()[1]
    if config.demo:
        for line in await asyncio.to_thread(ensure_demo_at, config.db_path, _public_url(config, http_port)):
            _announce(line)
    await _announce_admin_key(config)
    over_grpc = config.dispatch == "grpc"
    async with _private_socket(over_grpc) as socket_target, open_core(config, _public_url(config, http_port)) as core:
        server, health = await build_server(core, [socket_target] if over_grpc else [],
                                            reuse_port=config.shared_ports)
        grpc_port = _bind_grpc(server, config.host, grpc_held)
        await server.start()
        runner = await _start_bridge(socket_target, sock, config.max_body_bytes, config.client_timeouts,
                                     core.drain, config.trusted_proxies,
                                     None if over_grpc else in_process_channel(core, health),
                                     _metrics_scrape(config, core))
        host = _grpc_host(config.host)  # an IPv6 address in brackets, as URLs write it
        _ready(f"st-ai ready: REST http://{host}:{http_port}/v1  gRPC {host}:{grpc_port}"
               f"  db {config.db_path}")
        try:
            await signals.stop.wait()
        finally:
            log.info("shutting down")
            await shut_down(Fronts(core.drain, server, health, runner), config.resilience.shutdown_grace,
                            signals.hurry)


@contextlib.asynccontextmanager
async def _private_socket(wanted: bool = True) -> AsyncIterator[str]:
    """A Unix socket address in a folder of its own, removed on every way out, a failed
    start included ("" when not `wanted`: the bridge dispatches in-process)."""
    await asyncio.to_thread(socket_folders.sweep_stale)  # folders of an st-ai killed outright
    if not wanted:
        yield ""
        return
    with socket_folders.private_socket_folder() as folder:
        yield f"unix:{os.path.join(folder, socket_folders.SOCKET)}"


async def serve_grpc(config: Config) -> None:
    signals = _stop_on_signal()
    grpc_held = _listen(config.host, config.grpc_port, "gRPC", "--grpc-port")
    metrics_held = (_listen(config.host, config.metrics_port, "metrics", "--metrics-port")
                    if config.metrics_port is not None else None)
    await _announce_admin_key(config)
    async with open_core(config, _public_url(config, config.http_port)) as core:
        server, health = await build_server(core, [], config.trusted_bridges)
        port = _bind_grpc(server, config.host, grpc_held)
        await server.start()
        scraped = (await _start_metrics(metrics_held, _metrics_scrape(config, core))
                   if metrics_held is not None else None)
        metrics_at = (f"  metrics http://{_grpc_host(config.host)}:{metrics_held.getsockname()[1]}/metrics"
                      if metrics_held is not None else "")
        _ready(f"st-ai gRPC ready: {_grpc_host(config.host)}:{port}  db {config.db_path}{metrics_at}")
        try:
            await signals.stop.wait()
        finally:
            await shut_down(Fronts(core.drain, server, health), config.resilience.shutdown_grace, signals.hurry)
            if scraped is not None:
                await scraped.cleanup()


def _metrics_scrape(config: Config, core: Core) -> MetricsScrape:
    return MetricsScrape(core.worker, core.admin if config.metrics_auth == "admin" else None)


async def _start_metrics(sock: socket.socket, scrape: MetricsScrape) -> web.AppRunner:
    """GET /metrics alone on its own HTTP port, for a gRPC-only process."""
    app = web.Application(middlewares=[openai_errors])
    app[metrics_route.SCRAPE] = scrape
    metrics_route.add_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


async def serve_bridge(grpc_target: str, host: str, port: int, max_body_bytes: int,
                       timeouts: ClientTimeouts = ClientTimeouts(), trusted_proxies: tuple = (),
                       shutdown_grace: float = 30.0) -> None:
    signals = _stop_on_signal()
    sock = _listen(host, port)
    drain = Drain()
    runner = await _start_bridge(grpc_target, sock, max_body_bytes, timeouts, drain, trusted_proxies,
                                 cuts_itself=True)
    _ready(f"st-ai REST bridge ready: http://{_grpc_host(host)}:{sock.getsockname()[1]}/v1 -> gRPC {grpc_target}")
    try:
        await signals.stop.wait()
    finally:
        await shut_down(Fronts(drain, bridge=runner), shutdown_grace, signals.hurry)


def _grpc_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run(coro, log_format: str = "text", loop: str = "auto", tag_pid: bool = False) -> None:
    """`tag_pid`: text log lines name their process (`serve --workers`)."""
    logs.configure(log_format, os.environ.get("ST_AI_LOG_LEVEL", "INFO"), tag_pid)
    memory.tune_malloc()
    try:
        event_loop.run(coro, loop)
    except (OSError, event_loop.LoopUnavailable) as exc:
        sys.exit(f"st-ai: {exc}")
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        sys.exit(130)
