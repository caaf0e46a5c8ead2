"""`st-ai serve --workers N`: N worker processes, each a whole `st-ai serve` (its own event
loop, gRPC server, REST bridge, settlement writer, catalog reload, video poller, webhook
sender), sharing the REST and gRPC ports (server/shared_ports.py) and one SQLite database.
Quotas, rate limits and task leases already live in the database, so they hold across
the workers as across any processes on one file.

The parent serves nothing. It reserves the ports, prints what a first start prints (the
demo token, the admin key) once, starts the workers (server/worker.py) in sessions of
their own, and prints the ready line once every worker is ready. It forwards SIGTERM,
SIGINT and SIGHUP to them as SIGTERM (each drains: server/shutdown.py; a second SIGTERM or
SIGINT is passed on too, and cuts their drains short) and exits 0 when all of them stopped
cleanly. A worker that dies on its own is started again, after a pause that doubles while
it keeps dying young (a start the system refuses counts as such a death); after
RestartPolicy.limit such deaths in a row the parent stops the others and exits 1 rather
than loop. A worker not ready within the start timeout of its start is stuck: at the first
start the parent gives up (exit 1), later it kills it and counts that as one of those
deaths. Text log lines of the parent and the workers carry their pid, as JSON lines do."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from server import gateway, metrics, metrics_folder, shared_ports
from server.demo import ensure_demo_at
from server.shutdown import CUT_ALLOWANCE, StopSignals
from server.store import quota as quota_store
from server.store.db import open_db

log = logging.getLogger("st_ai.workers")

READY_PREFIX = b"st-ai ready:"  # the line gateway.serve prints once it serves
START_TIMEOUT = 60.0  # default: a worker not ready this long after its start is stuck
STOP_MARGIN = 30.0  # beyond a worker's own drain (grace + cut allowance) before it is killed


@dataclass(frozen=True)
class WorkerStart:
    """What a worker reads on its stdin (pickled): the parent is the same program."""
    config: gateway.Config
    log_format: str
    parent_pid: int


@dataclass
class RestartPolicy:
    """When a worker that died is started again: after `first_pause`, doubling with each
    death in a row up to `max_pause`; a worker that ran `steady` seconds starts the count
    again. None (give up) after more than `limit` deaths in a row."""
    first_pause: float = 0.5
    max_pause: float = 30.0
    limit: int = 5
    steady: float = 60.0
    deaths: int = 0

    def after_exit(self, ran_for: float) -> float | None:
        if ran_for >= self.steady:
            self.deaths = 0
        self.deaths += 1
        if self.deaths > self.limit:
            return None
        return min(self.max_pause, self.first_pause * 2 ** (self.deaths - 1))


@dataclass(eq=False)
class Worker:
    slot: int
    proc: asyncio.subprocess.Process
    ready: asyncio.Future  # True once it printed its ready line; False if it ended first
    started: float = field(default_factory=time.monotonic)
    output: asyncio.Task | None = None
    died: bool = False  # it ended on its own, and was reported (a stop before its restart ignores it)
    hurried: bool = False  # the parent passed a second stop signal on to it

    @property
    def name(self) -> str:
        return f"worker {self.slot} (pid {self.proc.pid})"


class WorkersFailed(Exception):
    pass


class Pool:
    def __init__(self, start: WorkerStart, count: int, start_timeout: float = START_TIMEOUT) -> None:
        self._start = start
        self._count = count
        self._start_timeout = start_timeout
        self.workers: dict[int, Worker] = {}
        self.stopping = False

    async def spawn(self, slot: int) -> Worker:
        # A session of its own: a Ctrl-C or a closed terminal reaches the parent only,
        # which stops each worker once it can take the signal (it is ready).
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, start_new_session=True)
        worker = Worker(slot, proc, asyncio.get_running_loop().create_future())
        self.workers[slot] = worker  # before any await: a stop now still finds it
        worker.output = asyncio.create_task(self._read_output(worker), name=f"worker {slot} output")
        # It may have died at once (its exit is handled like any death): its pipe is then
        # closed, and writing raises (uvloop: RuntimeError) or the drain does (ConnectionError).
        with contextlib.suppress(ConnectionError, RuntimeError):
            proc.stdin.write(pickle.dumps(self._start))
            await proc.stdin.drain()
        proc.stdin.close()
        return worker

    async def _read_output(self, worker: Worker) -> None:
        """Its ready line marks it ready; anything else it prints is passed on."""
        async for line in worker.proc.stdout:
            if line.startswith(READY_PREFIX) and not worker.ready.done():
                worker.ready.set_result(True)
                log.info("%s is ready", worker.name)
            else:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
        if not worker.ready.done():
            worker.ready.set_result(False)

    async def start_all(self) -> None:
        """Every worker started and ready; WorkersFailed if one ends or hangs first."""
        started = [await self.spawn(slot) for slot in range(1, self._count + 1)]
        for worker in started:
            if await self._ready_in_time(worker):
                continue
            if worker.ready.done():
                raise WorkersFailed(f"{worker.name} stopped before it was ready "
                                    f"(exit status {await worker.proc.wait()})")
            raise WorkersFailed(f"{worker.name} was not ready within {self._start_timeout:g} s")

    async def _ready_in_time(self, worker: Worker) -> bool:
        """True once it is ready; False if it ended first, or is not ready within the
        start timeout of its start (then `worker.ready` is not done: it is stuck)."""
        left = worker.started + self._start_timeout - time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(worker.ready), max(0.0, left))
        except TimeoutError:
            return False

    async def _until_exit(self, worker: Worker) -> int:
        """Its exit status, once it ended; one stuck starting is killed first."""
        if not await self._ready_in_time(worker) and not worker.ready.done():
            log.error("%s was not ready within %g s of its start; killing it", worker.name, self._start_timeout)
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
        return await worker.proc.wait()

    async def keep(self, slot: int) -> None:
        """Start the worker of `slot` again whenever it dies, until the pool stops."""
        policy = RestartPolicy()
        while True:
            worker = self.workers[slot]
            status = await self._until_exit(worker)
            if self.stopping:
                return
            worker.died = True
            metrics.process_ended(worker.proc.pid)  # its live gauges (in multiprocess mode) go with it
            # What its requests held would otherwise wait for the stale sweep (minutes).
            try:
                freed = await asyncio.to_thread(_release_held, self._start.config.db_path, worker.proc.pid)
            except Exception:  # the sweep still frees them later
                log.exception("giving back what %s held failed", worker.name)
                freed = 0
            if freed:
                log.info("gave back %d quota reservations %s held", freed, worker.name)
            pause = policy.after_exit(time.monotonic() - worker.started)
            if pause is None:
                raise WorkersFailed(f"worker {slot} died {policy.limit + 1} times in a row "
                                    f"(last exit status {status}); stopping")
            log.warning("%s exited with status %s; starting another in %.1f s", worker.name, status, pause)
            new = await self._respawn(slot, policy, pause)
            log.info("%s started in place of pid %d", new.name, worker.proc.pid)

    async def _respawn(self, slot: int, policy: RestartPolicy, pause: float) -> Worker:
        """A new process for the slot after `pause`; a start that fails (the system refused
        a process: memory, process limits) counts as a death of the slot's worker."""
        while True:
            await asyncio.sleep(pause)
            try:
                return await self.spawn(slot)
            except OSError as exc:
                pause = policy.after_exit(0.0)
                if pause is None:
                    raise WorkersFailed(f"worker {slot} died or could not be started {policy.limit + 1} times "
                                        f"in a row (last: {exc}); stopping") from None
                log.error("starting worker %d failed (%s); trying again in %.1f s", slot, exc, pause)

    async def stop_all(self, timeout: float, hurry: asyncio.Event | None = None) -> bool:
        """SIGTERM to every worker, and a second one when `hurry` is set (each cuts its
        drain short then); True if all of them exited 0."""
        self.stopping = True
        hurrying = asyncio.create_task(self._hurry(hurry)) if hurry is not None else None
        try:
            results = await asyncio.gather(*(self._stop(w, timeout) for w in self.workers.values()))
        finally:
            if hurrying is not None:
                hurrying.cancel()
        return all(results)

    async def _hurry(self, hurry: asyncio.Event) -> None:
        await hurry.wait()
        for worker in self.workers.values():
            # only a ready worker had its first SIGTERM: one still starting would die of it
            if worker.proc.returncode is None and worker.ready.done() and worker.ready.result():
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
                    worker.hurried = True

    async def _stop(self, worker: Worker, timeout: float) -> bool:
        if worker.died:
            return True
        if worker.proc.returncode is None:
            # A worker still starting may have no signal handlers yet: a SIGTERM would kill
            # it outright. It is stopped once ready; one stuck starting serves nothing: killed.
            ready = await self._ready_in_time(worker)
            with contextlib.suppress(ProcessLookupError):
                if ready:
                    worker.proc.send_signal(signal.SIGTERM)
                elif not worker.ready.done():
                    log.error("%s was not ready within %g s of its start; killing it", worker.name,
                              self._start_timeout)
                    worker.proc.kill()
        try:
            status = await asyncio.wait_for(worker.proc.wait(), timeout)
        except TimeoutError:
            log.error("%s did not stop within %g s; killed", worker.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
            status = await worker.proc.wait()
        if worker.output is not None:
            await worker.output
        if status == -signal.SIGTERM and worker.hurried:
            # A ready worker takes SIGTERM on its loop until its shutdown is over: one it killed
            # had nothing left to cut (none in flight, say) and was past its loop, exiting.
            log.info("%s ended at the second signal passed on, its shutdown done", worker.name)
            status = 0
        if status != 0:
            log.error("%s exited with status %s", worker.name, status)
        return status == 0


def _release_held(db_path: str, pid: int) -> int:
    db = open_db(db_path)
    try:
        return quota_store.release_owner(db, f"{socket.gethostname()}:{pid}:")  # video_tasks.process_owner
    finally:
        db.close()


async def serve_workers(config: gateway.Config, count: int, log_format: str,
                        start_timeout: float = START_TIMEOUT) -> None:
    signals = gateway._stop_on_signal()
    metrics.process_ended()  # the parent serves nothing: no live gauges of its own in the sums
    held = [shared_ports.reserve(config.host, config.http_port, "REST", "--http-port"),
            shared_ports.reserve(config.host, config.grpc_port, "gRPC", "--grpc-port")]
    http_port, grpc_port = (sock.getsockname()[1] for sock in held)
    try:
        # what a first start prints, printed once and before any worker could
        if config.demo:
            for line in await asyncio.to_thread(ensure_demo_at, config.db_path,
                                                gateway._public_url(config, http_port)):
                gateway._announce(line)
        await gateway._announce_admin_key(config)
        worker_config = dataclasses.replace(config, http_port=http_port, grpc_port=grpc_port, demo=False,
                                            shared_ports=True)
        pool = Pool(WorkerStart(worker_config, log_format, os.getpid()), count, start_timeout)
        await asyncio.to_thread(metrics_folder.sweep_stale)  # folders of an st-ai killed outright
        with metrics_folder.for_workers():  # one /metrics for all of them, whichever answers
            clean = await _run(pool, signals, config, http_port, grpc_port)
    finally:
        for sock in held:
            sock.close()
    if not clean:
        sys.exit(1)


async def _run(pool: Pool, signals: StopSignals, config: gateway.Config, http_port: int, grpc_port: int) -> bool:
    """Serve until a signal; True if every worker then stopped cleanly."""
    failure: WorkersFailed | None = None
    keepers: list[asyncio.Task] = []
    stopped = asyncio.create_task(signals.stop.wait())
    try:
        starting = asyncio.create_task(pool.start_all())
        await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # WorkersFailed: stop what started
            host = gateway._grpc_host(config.host)
            gateway._announce(f"st-ai ready: REST http://{host}:{http_port}/v1  gRPC {host}:{grpc_port}"
                              f"  db {config.db_path}  workers {len(pool.workers)}")
            keepers = [asyncio.create_task(pool.keep(slot), name=f"keep worker {slot}") for slot in pool.workers]
            done, _ = await asyncio.wait([stopped, *keepers], return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopped}:
                task.result()  # WorkersFailed
        else:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
    except WorkersFailed as exc:
        failure = exc
        log.error("%s", exc)
    finally:
        stopped.cancel()
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        log.info("stopping %d workers", len(pool.workers))
        clean = await pool.stop_all(config.resilience.shutdown_grace + CUT_ALLOWANCE + STOP_MARGIN, signals.hurry)
    return clean and failure is None


def run(config: gateway.Config, count: int, log_format: str, start_timeout: float = START_TIMEOUT) -> None:
    gateway.run(serve_workers(config, count, log_format, start_timeout), log_format, config.loop, tag_pid=True)
