"""`st-ai serve --workers N` end to end: real processes on 127.0.0.1 in front of FakeOpenAI.
Two workers share the REST and gRPC ports and serve requests on both (the JSON log lines
name their pid); a quota and a rate limit hold exactly across them; their video pollers
never poll one task twice at once; SIGTERM drains both and books every request; a worker
killed outright is started again."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.billing.prices import PriceChanges
from server.store import prices as price_store
from server.store import quota as quota_store
from server.store import tokens as token_store
from server.store.db import open_db
from server.store.rate_limits import Limits
from server.workers import RestartPolicy
from st_ai.v1 import models_pb2, models_pb2_grpc
from tests.conftest import READY, ROOT, Gateway
from tests.fakes.openai_upstream import FakeOpenAI, StreamPlan, VideoPlan
from tests.test_quota_relay import fake, upstream  # noqa: F401 (fixtures)
from tests.test_relay_upstream import SSEStream, event_json

pytestmark = pytest.mark.timeout(180)

HI = [{"role": "user", "content": "Hi"}]
A_REQUEST = 10_000  # the price of one chat request: 0.01


# -- a gateway of two workers ---------------------------------------------------------------

class Workers:
    """`st-ai serve --workers N` on free ports, its log lines (JSON, INFO) kept in a file."""

    def __init__(self, tmp: Path, count: int = 2, *extra: str, env: dict | None = None) -> None:
        self.db_path = str(tmp / "st-ai.db")
        open_db(self.db_path).close()
        self.log_path = tmp / "gateway.log"
        self.stdout: list[str] = []
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--db", self.db_path, "--host", "127.0.0.1",
                 "--http-port", "0", "--grpc-port", "0", "--assets-dir", str(tmp / "assets"),
                 "--workers", str(count), "--log-format", "json", *extra],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, "ST_AI_LOG_LEVEL": "INFO", **(env or {})})
        threading.Thread(target=self._read, daemon=True).start()
        match = wait_until(lambda: next(filter(None, map(READY.search, self.stdout)), None)
                           or self.proc.poll() is not None, "the ready line", 60)
        if not hasattr(match, "group"):
            raise RuntimeError(f"st-ai serve --workers did not start:\n{self.log_path.read_text()[-3000:]}")
        self.gw = Gateway(self.proc, self.db_path, match.group(1), match.group(2))

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.stdout.append(line)

    def lines(self) -> list[dict]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def pids_serving(self, request_ids: set[str]) -> set[int]:
        """The pids that wrote the access lines of these requests."""
        return {line["pid"] for line in self.lines()
                if line["logger"] == "st_ai.access" and line.get("request_id") in request_ids}

    def worker_pids(self) -> set[int]:
        return children(self.proc.pid)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in self.worker_pids():
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(10)
            raise


def children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (from /proc/*/stat)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def wait_until(condition, what: str, timeout: float, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def db_do(gw: Gateway, fn, *args, **kwargs):
    db = open_db(gw.db_path)
    try:
        return fn(db, *args, **kwargs)
    finally:
        db.close()


def post(gw: Gateway, key: str, path: str, body: dict, request_id: str | None = None) -> tuple[int, dict]:
    """One request on a connection of its own (the kernel picks its worker per connection)."""
    url = urlsplit(gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        if request_id:
            headers["X-Request-Id"] = request_id
        conn.request("POST" if body is not None else "GET", path,
                     body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def chat(gw: Gateway, key: str, model: str, request_id: str | None = None) -> int:
    return post(gw, key, "/v1/chat/completions", {"model": model, "messages": HI}, request_id)[0]


def at_once(calls: list) -> list:
    """Every call on its own thread, all in flight together; their results."""
    results: list = []
    threads = [threading.Thread(target=lambda c=c: results.append(c())) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def known_everywhere(workers: Workers, check, what: str) -> None:
    """Each worker reloads the catalog on its own: wait until many fresh connections,
    which the kernel spreads over the workers, all see the change."""
    wait_until(lambda: all(check() for _ in range(12)), what, 15)


def priced_channel(workers: Workers, fake: FakeOpenAI) -> str:
    model = unique("gpt-4o-mini")
    db_do(workers.gw, price_store.set_price, model, PriceChanges(per_request=A_REQUEST))
    workers.gw.channel(unique("ch"), "openai", [model], base_url=fake.base_url, key=fake.api_key)
    return model


def new_token(workers: Workers, quota: int | None = None, **limits) -> tuple[str, str]:
    name = unique("t")
    _, key = db_do(workers.gw, token_store.create, name, quota=quota, limits=Limits(**limits))
    return name, key


def ready_for(workers: Workers, key: str, model: str) -> None:
    known_everywhere(workers, lambda: model in workers.gw._models(key), f"every worker to serve {model}")


def ledger(gw: Gateway, name: str) -> list[dict]:
    def rows(db):
        token = token_store.get(db, name)
        return [dict(r) for r in db.query("SELECT * FROM ledger WHERE token_id = ?", [token.id])]
    return db_do(gw, rows)


def used(gw: Gateway, name: str) -> int:
    return db_do(gw, quota_store.status, name).used


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    workers = Workers(tmp_path_factory.mktemp("workers"))
    yield workers
    workers.stop()


# -- serving ----------------------------------------------------------------------------------

def test_two_workers_share_the_rest_and_grpc_ports_and_both_serve(two, upstream):
    assert len(two.worker_pids()) == 2
    model = priced_channel(two, upstream)
    name, key = new_token(two)
    ready_for(two, key, model)

    rest_ids = {f"rest-{i}-{uuid.uuid4().hex[:6]}" for i in range(40)}
    assert at_once([lambda rid=rid: chat(two.gw, key, model, rid) for rid in rest_ids]) == [200] * 40

    grpc_ids = {f"grpc-{i}-{uuid.uuid4().hex[:6]}" for i in range(24)}

    def grpc_list(rid: str) -> int:
        # a connection of its own: grpc otherwise shares one among channels to one target
        with grpc.insecure_channel(two.gw.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            answer = models_pb2_grpc.ModelsStub(channel).ListModels(
                models_pb2.ListModelsRequest(), timeout=20,
                metadata=[("authorization", f"Bearer {key}"), ("x-request-id", rid)])
        return len(answer.data)

    assert all(at_once([lambda rid=rid: grpc_list(rid) for rid in grpc_ids]))

    wait_until(lambda: len(two.pids_serving(grpc_ids)) == 2, "the gRPC calls' access lines", 5)
    workers = two.worker_pids()
    assert two.pids_serving(rest_ids) == workers, "REST requests reached both workers, and only them"
    assert two.pids_serving(grpc_ids) == workers, "gRPC calls reached both workers, and only them"
    assert two.proc.pid not in two.pids_serving(rest_ids | grpc_ids)
    assert len(ledger(two.gw, name)) == 40 and used(two.gw, name) == 40 * A_REQUEST
    assert sum(1 for line in two.stdout if READY.search(line)) == 1  # one ready line, from the parent


def test_a_token_made_a_moment_ago_works_at_once_on_every_worker(two):
    """Not after each worker's next look at the database: its first requests, on fresh
    connections the kernel spreads over both workers, are all served."""
    _, key = new_token(two)
    ids = {f"fresh-{i}-{uuid.uuid4().hex[:6]}" for i in range(16)}
    assert at_once([lambda rid=rid: post(two.gw, key, "/v1/models", None, rid)[0] for rid in ids]) == [200] * 16
    wait_until(lambda: len(two.pids_serving(ids)) == 2, "both workers to have answered", 5)


def test_a_quota_is_never_overspent_across_workers_under_concurrent_load(two, upstream):
    upstream.delay = 0.05  # requests overlap in flight
    model = priced_channel(two, upstream)
    name, key = new_token(two, quota=5 * A_REQUEST)
    ready_for(two, key, model)
    ids = [f"quota-{i}-{uuid.uuid4().hex[:6]}" for i in range(50)]
    statuses = at_once([lambda rid=rid: chat(two.gw, key, model, rid) for rid in ids])
    assert sorted(statuses) == [200] * 5 + [429] * 45
    assert used(two.gw, name) == 5 * A_REQUEST
    rows = ledger(two.gw, name)
    assert len(rows) == 50 and sum(r["cost"] for r in rows) == 5 * A_REQUEST
    wait_until(lambda: len(two.pids_serving(set(ids))) == 2, "both workers to have answered", 5)


def test_a_rate_limit_holds_exactly_across_workers(two, upstream):
    model = priced_channel(two, upstream)
    _, key = new_token(two, rpm=5)
    ready_for(two, key, model)  # reads: they never count
    ids = [f"rpm-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
    statuses = at_once([lambda rid=rid: chat(two.gw, key, model, rid) for rid in ids])
    assert sorted(statuses) == [200] * 5 + [429] * 15
    wait_until(lambda: len(two.pids_serving(set(ids))) == 2, "both workers to have answered", 5)


# -- video tasks ------------------------------------------------------------------------------

POLL_INTERVAL = 0.3
POLL_SECONDS = 0.2  # how long the fake takes to answer one poll


class TimedPolls(FakeOpenAI):
    """FakeOpenAI whose video retrievals take POLL_SECONDS, each one timed."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: dict[str, list[tuple[float, float]]] = defaultdict(list)

    async def _retrieve_video(self, request):
        started = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)
        try:
            return await super()._retrieve_video(request)
        finally:
            self.polls[request.match_info["video_id"]].append((started, time.monotonic()))


def test_two_workers_never_poll_one_video_task_twice_at_once(tmp_path):
    fake = TimedPolls().start()
    fake.video_plan = VideoPlan(seconds_to_finish=3)
    workers = Workers(tmp_path, 2, "--video-poll-interval", str(POLL_INTERVAL))
    try:
        model = unique("sora")
        workers.gw.channel("videos", "openai", [model], base_url=fake.base_url, key=fake.api_key,
                           model_map={model: "sora-2"})
        name, key = new_token(workers)
        ready_for(workers, key, model)
        ids = []
        for i in range(8):
            status, video = post(workers.gw, key, "/v1/videos",
                                 {"model": model, "prompt": f"task {i}", "seconds": "4", "size": "1280x720"})
            assert status == 200, video
            ids.append(video["id"])

        owners: set[str] = set()  # every process seen holding a task's lease while it polls

        def all_final() -> bool:
            rows = db_do(workers.gw, lambda db: list(db.query("SELECT status, lease_owner FROM videos")))
            owners.update(r["lease_owner"] for r in rows if r["lease_owner"])
            return all(r["status"] not in ("queued", "in_progress") for r in rows)

        wait_until(all_final, "every task to end", 60, every=0.02)
        tasks = db_do(workers.gw, lambda db: list(db.query("SELECT status, error_code, error_message FROM videos")))
        assert [t["status"] for t in tasks] == ["completed"] * 8, [t for t in tasks if t["status"] != "completed"]

        # Which worker claims a due task is a race; one of them may win every claim. What must
        # hold is that only the workers held leases, and no task was polled twice at once.
        assert owners and {int(owner.split(":")[1]) for owner in owners} <= workers.worker_pids()
        assert len(fake.polls) == 8
        for upstream_id, polls in fake.polls.items():
            polls.sort()
            for (start, end), (next_start, _) in zip(polls, polls[1:]):
                assert next_start >= end, f"{upstream_id} was polled twice at once"
                assert next_start - start >= POLL_INTERVAL * 0.5, f"{upstream_id} was polled twice in an interval"
        assert len(ledger(workers.gw, name)) == 8  # each task booked once
        assert workers.stop() == 0
    finally:
        if workers.proc.poll() is None:
            workers.stop()
        fake.stop()


# -- stopping and restarting ----------------------------------------------------------------

def test_sigterm_drains_every_worker_books_every_request_and_exits_0(tmp_path, upstream):
    workers = Workers(tmp_path)
    try:
        upstream.delay = 1.5  # every request is still in flight when SIGTERM comes
        model = priced_channel(workers, upstream)
        name, key = new_token(workers)
        ready_for(workers, key, model)
        pids = workers.worker_pids()
        ids = [f"drain-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
        results: list[int] = []
        threads = [threading.Thread(target=lambda rid=rid: results.append(chat(workers.gw, key, model, rid)))
                   for rid in ids]
        for thread in threads:
            thread.start()
        wait_until(lambda: len([r for r in upstream.received if r.path.endswith("/chat/completions")]) >= 20,
                   "all twenty requests to reach the upstream", 15)
        workers.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        assert results == [200] * 20
        assert workers.proc.wait(30) == 0
        assert not any(pid_alive(pid) for pid in pids)
        assert workers.pids_serving(set(ids)) == pids
        rows = ledger(workers.gw, name)
        assert len(rows) == 20 and {r["status"] for r in rows} == {200}
        assert used(workers.gw, name) == 20 * A_REQUEST
    finally:
        if workers.proc.poll() is None:
            workers.stop()


def test_a_second_sigterm_is_passed_on_and_every_worker_cuts_its_drain_at_once(tmp_path, upstream):
    # a grace longer than the test may last: only the second signal can end the drains in time
    workers = Workers(tmp_path, 2, "--shutdown-grace", "600")
    try:
        upstream.delay = 120  # the upstream never answers within the test
        model = priced_channel(workers, upstream)
        name, key = new_token(workers)
        ready_for(workers, key, model)
        pids = workers.worker_pids()
        results: list[tuple[int, dict]] = []
        threads = [threading.Thread(target=lambda: results.append(
            post(workers.gw, key, "/v1/chat/completions", {"model": model, "messages": HI}))) for _ in range(6)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len([r for r in upstream.received if r.path.endswith("/chat/completions")]) >= 6,
                   "all six requests to reach the upstream", 15)
        workers.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: {line["pid"] for line in workers.lines()
                            if line["message"] == "shutting down"} == pids,
                   "both workers to drain", 15)

        workers.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=30)
        assert workers.proc.wait(30) == 0
    finally:
        if workers.proc.poll() is None:
            workers.stop()
    assert [(status, body["error"]["code"]) for status, body in results] == [(503, "shutting_down")] * 6
    assert not any(pid_alive(pid) for pid in pids)
    rows = ledger(workers.gw, name)
    assert len(rows) == 6 and {(r["status"], r["error_code"], r["cost"]) for r in rows} == {(503, "shutting_down", 0)}
    assert used(workers.gw, name) == 0


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_killed_outright_is_started_again_and_serves(tmp_path, upstream):
    workers = Workers(tmp_path)
    try:
        model = priced_channel(workers, upstream)
        _, key = new_token(workers)
        ready_for(workers, key, model)
        before = workers.worker_pids()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> set[int] | None:
            pids = workers.worker_pids()
            return pids if len(pids) == 2 and victim not in pids else None

        after = wait_until(replaced, "a new worker", 30)
        replacement = (after - before).pop()
        wait_until(lambda: any(line.get("message", "").endswith("is ready") and f"pid {replacement}" in
                               line["message"] for line in workers.lines()), "the new worker to be ready", 30)
        assert any(line["level"] == "WARNING" and f"pid {victim}" in line["message"] for line in workers.lines())
        ids = {f"after-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)}
        assert at_once([lambda rid=rid: chat(workers.gw, key, model, rid) for rid in ids]) == [200] * 30
        wait_until(lambda: replacement in workers.pids_serving(ids), "the new worker to serve", 5)
        assert workers.stop() == 0
    finally:
        if workers.proc.poll() is None:
            workers.stop()


def test_what_a_killed_worker_held_is_given_back_at_once(tmp_path, upstream):
    workers = Workers(tmp_path)
    try:
        model = priced_channel(workers, upstream)
        name, key = new_token(workers, quota=100 * A_REQUEST, max_concurrency=1)
        ready_for(workers, key, model)
        gate = threading.Event()
        upstream.stream_plan = StreamPlan(upstream.default_chunks(model, include_usage=True), gates={2: gate})
        stream = SSEStream(workers.gw, key, {"model": model, "messages": HI})
        try:
            event_json(stream.next_event())  # in flight: its slot and its reservation are held
            owner = db_do(workers.gw, lambda db: db.execute("SELECT owner FROM inflight").fetchone()[0])
            assert db_do(workers.gw, quota_store.status, name).reserved > 0
            os.kill(int(owner.split(":")[1]), signal.SIGKILL)
            # not after the stale sweep's minutes: the parent gives them back when it sees the death
            wait_until(lambda: db_do(workers.gw, quota_store.status, name).reserved == 0, "the reservation", 10)
            wait_until(lambda: chat(workers.gw, key, model) == 200, "the token's only slot to be free", 10)
        finally:
            gate.set()
            stream.conn.close()
            upstream.stream_plan = None
        assert workers.stop() == 0
    finally:
        if workers.proc.poll() is None:
            workers.stop()


def test_a_busy_port_stops_serve_workers_before_it_creates_anything(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        db = tmp_path / "never.db"
        proc = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--db", str(db), "--http-port", str(port),
             "--grpc-port", "0", "--workers", "2", "--assets-dir", str(tmp_path / "assets")],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"cannot listen for REST on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    assert not db.exists() and not (tmp_path / "assets").exists()


STUCK_AFTER = 10  # --worker-start-timeout of the tests that make a worker hang (a start takes 1-3 s)


def is_worker(pid: int) -> bool:
    """The process runs a worker already: a child between its fork and its exec is still
    the parent (which waits for that exec), not a worker starting."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"server.worker" in f.read()
    except OSError:
        return False


def ready_line_of(workers: Workers, pid: int) -> bool:
    return any(line.get("message", "").endswith("is ready") and f"pid {pid})" in line["message"]
               for line in workers.lines())


@pytest.mark.parametrize("fault", ["dies", "hangs"])
def test_a_replacement_worker_that_dies_or_hangs_before_it_is_ready_is_replaced_in_turn(tmp_path, upstream, fault):
    workers = Workers(tmp_path, 2, "--worker-start-timeout", str(STUCK_AFTER))
    try:
        model = priced_channel(workers, upstream)
        _, key = new_token(workers)
        ready_for(workers, key, model)
        before = workers.worker_pids()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        starting = wait_until(lambda: next((pid for pid in workers.worker_pids() - before if is_worker(pid)), None),
                              "a replacement", 30, every=0.01)
        # a start takes a second or more (imports, database, ports): this comes well before its ready line
        os.kill(starting, signal.SIGKILL if fault == "dies" else signal.SIGSTOP)

        def replaced_again() -> set[int] | None:
            pids = workers.worker_pids()
            return pids if len(pids) == 2 and not pids & {victim, starting} else None

        after = wait_until(replaced_again, "another replacement", STUCK_AFTER + 30)
        third = (after - before).pop()
        wait_until(lambda: ready_line_of(workers, third), "the third worker to be ready", 30)
        assert not ready_line_of(workers, starting), "the replacement was ready before the fault: no test"
        assert not pid_alive(starting)
        messages = [(line["level"], line["message"]) for line in workers.lines() if line["logger"] == "st_ai.workers"]
        if fault == "hangs":
            assert any(level == "ERROR" and f"(pid {starting}) was not ready within {STUCK_AFTER} s" in message
                       for level, message in messages), messages
        assert any(level == "WARNING" and f"pid {starting})" in message and "starting another" in message
                   for level, message in messages), messages
        ids = {f"third-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)}
        assert at_once([lambda rid=rid: chat(workers.gw, key, model, rid) for rid in ids]) == [200] * 30
        wait_until(lambda: third in workers.pids_serving(ids), "the third worker to serve", 5)
        assert workers.proc.poll() is None
        assert workers.stop() == 0
    finally:
        if workers.proc.poll() is None:
            workers.stop()


def test_a_worker_stuck_at_the_first_start_stops_the_others_and_exits_1(tmp_path):
    db_path = str(tmp_path / "st-ai.db")
    open_db(db_path).close()
    log_path = tmp_path / "gateway.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--db", db_path, "--host", "127.0.0.1", "--http-port", "0",
             "--grpc-port", "0", "--assets-dir", str(tmp_path / "assets"), "--workers", "2", "--log-format", "json",
             "--worker-start-timeout", str(STUCK_AFTER)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, "ST_AI_LOG_LEVEL": "INFO"})
    try:
        stuck = wait_until(lambda: next((pid for pid in children(proc.pid) if is_worker(pid)), None),
                           "a worker to start", 30, every=0.01)
        os.kill(stuck, signal.SIGSTOP)
        others = wait_until(lambda: children(proc.pid) - {stuck}, "the other worker", 30)
        assert proc.wait(STUCK_AFTER + 60) == 1
        out = proc.stdout.read()
        assert not READY.search(out), out
        assert not pid_alive(stuck) and not any(pid_alive(pid) for pid in others)
        lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
        assert any(line["level"] == "ERROR" and f"(pid {stuck}) was not ready within {STUCK_AFTER} s" in line["message"]
                   for line in lines), lines
    finally:
        if proc.poll() is None:
            for pid in children(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
            proc.wait(10)


def test_text_log_lines_name_the_process_that_wrote_them(tmp_path):
    workers = Workers(tmp_path, 2, "--log-format", "text")  # the last --log-format given wins
    try:
        ids = {f"text-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)}
        assert at_once([lambda rid=rid: post(workers.gw, "sk-nobody", "/v1/models", None, rid)[0]
                        for rid in ids]) == [401] * 20
        pids = workers.worker_pids()
        assert workers.stop() == 0

        text = workers.log_path.read_text()
        access = {int(m.group(1)) for m in re.finditer(r" INFO st_ai\.access\[(\d+)\]: request_id=text-", text)}
        assert access and access <= pids, (access, pids)
        assert re.search(rf" INFO st_ai\.workers\[{workers.proc.pid}\]: worker 1 \(pid \d+\) is ready", text)
        assert not re.search(r" st_ai\.\w+: ", text), "a line without its pid"
    finally:
        if workers.proc.poll() is None:
            workers.stop()


def scrape(workers: Workers, request_id: str) -> str:
    url = urlsplit(workers.gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"X-Request-Id": request_id})
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def series(text: str, name: str) -> list[tuple[dict, float]]:
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]


def scrapes_from_every_worker(workers: Workers) -> list[str]:
    """Scrapes on fresh connections until each worker has answered one."""
    texts, ids = [], set()
    deadline = time.monotonic() + 30
    while not ids or workers.pids_serving(ids) != workers.worker_pids():
        assert time.monotonic() < deadline, "a worker answered no scrape"
        ids.add(rid := f"scrape-{uuid.uuid4().hex[:8]}")
        texts.append(scrape(workers, rid))
        time.sleep(0.05)  # its access line is written just after the answer
    return texts


def test_every_worker_scrapes_the_same_sums_and_video_states_and_its_live_processes_tasks(tmp_path, upstream):
    shared = tmp_path / "prometheus"
    shared.mkdir()
    workers = Workers(tmp_path, 2, "--video-poll-interval", "0.2",
                      env={"PROMETHEUS_MULTIPROC_DIR": str(shared), "ST_AI_SIMULATOR_VIDEO_SECONDS": "1"})
    try:
        model = priced_channel(workers, upstream)
        _, key = new_token(workers)
        ready_for(workers, key, model)
        ids = {f"sum-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)}
        assert at_once([lambda rid=rid: chat(workers.gw, key, model, rid) for rid in ids]) == [200] * 20
        video_model = unique("sim")
        workers.gw.channel(video_model, "simulator", [video_model])
        ready_for(workers, key, video_model)
        status, video = post(workers.gw, key, "/v1/videos", {"model": video_model, "prompt": "a lighthouse",
                                                             "duration": 1.0, "width": 160, "height": 96, "fps": 12})
        assert status == 200, video
        wait_until(lambda: db_do(workers.gw, lambda db: db.execute("SELECT status FROM videos").fetchone()[0])
                   == "completed", "the video", 30)

        pids = {str(pid) for pid in workers.worker_pids()}
        for text in scrapes_from_every_worker(workers):
            assert sum(v for labels, v in series(text, "st_ai_requests_total") if labels["model"] == model) == 20
            states = {labels["state"]: v for labels, v in series(text, "st_ai_video_tasks_by_state")}
            assert states["completed"] == 1 and states["queued"] == states["in_progress"] == 0, states
            tasks = series(text, "st_ai_asyncio_tasks")
            assert {labels["pid"] for labels, _ in tasks} == pids and all(v >= 1 for _, v in tasks), tasks

        victim = min(workers.worker_pids())
        os.kill(victim, signal.SIGKILL)
        before = {int(p) for p in pids}

        def replaced() -> int | None:
            # one look at the processes: two looks may see the victim alive, then gone, and no
            # replacement yet
            now = workers.worker_pids()
            started = now - before
            return started.pop() if len(now) == 2 and victim not in now and started else None
        replacement = wait_until(replaced, "a new worker", 30)
        wait_until(lambda: ready_line_of(workers, replacement), "the new worker to be ready", 30)
        pids = {str(pid) for pid in workers.worker_pids()}
        for text in scrapes_from_every_worker(workers):  # the dead worker's live series went with it
            assert {labels["pid"] for labels, _ in series(text, "st_ai_asyncio_tasks")} == pids
            assert sum(v for labels, v in series(text, "st_ai_requests_total") if labels["model"] == model) == 20
        assert workers.stop() == 0
    finally:
        if workers.proc.poll() is None:
            workers.stop()



def test_without_a_folder_named_every_worker_scrapes_the_sums_in_one_serve_made_and_removes(
        tmp_path, upstream, monkeypatch):
    """The operator set no PROMETHEUS_MULTIPROC_DIR: each worker's /metrics still tells all of them."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    workers = Workers(tmp_path, 2, env={"TMPDIR": str(tmp_path)})
    try:
        shared = [p for p in tmp_path.glob("st-ai-metrics-*") if (p / "pid").read_text() == str(workers.proc.pid)]
        assert len(shared) == 1, "serve made one folder of its own"
        model = priced_channel(workers, upstream)
        _, key = new_token(workers)
        ready_for(workers, key, model)
        ids = {f"sum-{i}-{uuid.uuid4().hex[:6]}" for i in range(20)}
        assert at_once([lambda rid=rid: chat(workers.gw, key, model, rid) for rid in ids]) == [200] * 20
        wait_until(lambda: len(workers.pids_serving(ids)) == 2, "both workers to have answered", 5)
        for text in scrapes_from_every_worker(workers):
            assert sum(v for labels, v in series(text, "st_ai_requests_total") if labels["model"] == model) == 20
        assert workers.stop() == 0
        assert not shared[0].exists(), "removed when serve stopped"
    finally:
        if workers.proc.poll() is None:
            workers.stop()

# -- the restart policy ---------------------------------------------------------------------

def test_a_worker_dying_young_is_restarted_ever_later_then_given_up():
    policy = RestartPolicy(first_pause=0.5, max_pause=4, limit=5, steady=60)
    assert [policy.after_exit(ran_for=1) for _ in range(5)] == [0.5, 1, 2, 4, 4]
    assert policy.after_exit(ran_for=1) is None


def test_a_worker_that_ran_steadily_before_dying_starts_a_fresh_count():
    policy = RestartPolicy(first_pause=0.5, max_pause=30, limit=2, steady=60)
    assert policy.after_exit(ran_for=1) == 0.5
    assert policy.after_exit(ran_for=1) == 1
    assert policy.after_exit(ran_for=600) == 0.5
