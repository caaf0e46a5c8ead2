"""Video tasks end to end against real `st-ai serve` processes: they survive kill -9,
two processes on one database finalise each task once, timeouts, content (409, ranges),
ownership, path tricks, delete and list paging. The simulator channel renders real
MP4s; everything listens on 127.0.0.1."""
from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from server.store.db import open_db
from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.fakes.openai_upstream import FakeOpenAI, sample_mp4_bytes

MODEL = "sim-video"
SMALL = {"duration": 1, "width": 160, "height": 96, "fps": 12}
OPEN = ("queued", "in_progress")


# ---------------------------------------------------------------- helpers


class Running:
    """A started gateway plus everything it printed (drained so its pipe never fills)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.gw.proc.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def kill9(self) -> None:
        self.gw.proc.kill()
        self.gw.proc.wait(10)  # reaped: a zombie would still look alive to the pid check

    def stop(self) -> None:
        stop_gateway(self.gw)
        self._reader.join(5)


def start(db: str, assets: Path, *extra: str, render: float | str = 2, env: dict | None = None) -> Running:
    # tests here fail one channel on purpose, one after another: it is never cooled down
    gateway = start_gateway(db, "--video-poll-interval", "0.2", "--assets-dir", str(assets),
                            "--cooldown-failures", "1000", *extra,
                            env={"ST_AI_SIMULATOR_VIDEO_SECONDS": str(render), **(env or {})})
    return Running(gateway)


@pytest.fixture
def paths(tmp_path):
    db = str(tmp_path / "st-ai.db")
    open_db(db).close()
    return db, tmp_path / "assets"


@pytest.fixture
def running():
    """Every gateway a test starts is stopped at its end, however it ends."""
    started: list[Running] = []
    yield started
    for r in started:
        if r.gw.proc.poll() is None:
            r.stop()


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body[:300]!r}>"


def call(gw: Gateway, method: str, path: str, key: str | None = None, body: dict | None = None,
         headers: dict | None = None, timeout: float = 20) -> Reply:
    """One HTTP request with the path sent exactly as given (no dot-segment cleanup)."""
    url = urlsplit(gw.http_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def create(gw: Gateway, key: str, prompt: str = "a red fox at dusk", **fields) -> dict:
    reply = call(gw, "POST", "/v1/videos", key, {"model": MODEL, "prompt": prompt, **SMALL, **fields})
    assert reply.status == 200, reply
    video = reply.json()
    assert video["id"] == video["task_id"] and video["status"] == "queued", video
    return video


def get(gw: Gateway, key: str, video_id: str) -> dict:
    reply = call(gw, "GET", f"/v1/videos/{video_id}", key)
    assert reply.status == 200, reply
    return reply.json()


def wait_until(condition, what: str, timeout: float, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_final(gateways: list[Gateway], key: str, ids: list[str], timeout: float = 60) -> dict[str, dict]:
    """Poll (through the gateways in turn) until no task is open; the tasks by id."""
    final: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    turn = 0
    while len(final) < len(ids):
        assert time.monotonic() < deadline, (
            f"unfinished after {timeout} s: " + ", ".join(f"{i}={get(gateways[0], key, i)['status']}"
                                                          for i in ids if i not in final))
        for video_id in ids:
            if video_id in final:
                continue
            video = get(gateways[turn % len(gateways)], key, video_id)
            turn += 1
            if video["status"] not in OPEN:
                final[video_id] = video
        time.sleep(0.1)
    return final


def download(gw: Gateway, key: str, video_id: str, headers: dict | None = None) -> Reply:
    return call(gw, "GET", f"/v1/videos/{video_id}/content", key, headers=headers)


def rows(db: str, sql: str, params: tuple = ()) -> list[dict]:
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def tasks_in_db(db: str) -> dict[str, dict]:
    return {r["id"]: r for r in rows(db, "SELECT * FROM videos")}


def mp4_files(assets: Path) -> dict[str, list[Path]]:
    """The stored videos, by task id (files are <task id>-<nonce>.mp4)."""
    out: dict[str, list[Path]] = {}
    for path in sorted((assets / "videos").glob("*.mp4")):
        out.setdefault(path.name.rsplit("-", 1)[0], []).append(path)
    return out


def assert_clean_log(r: Running) -> None:
    assert "Traceback" not in r.log and "unexpected error" not in r.log, r.log[-4000:]


def assert_all_completed_with_content(gw: Gateway, key: str, db: str, assets: Path, ids: list[str]) -> None:
    """Every task completed; its content is a real MP4, stable between downloads and the
    very file the database names; exactly one stored video per task."""
    tasks = tasks_in_db(db)
    files = mp4_files(assets)
    for video_id in ids:
        task = tasks[video_id]
        assert task["status"] == "completed", task
        assert task["completed_at"] and task["asset_path"], task
        first = download(gw, key, video_id)
        assert first.status == 200, first
        assert first.headers["content-type"] == "video/mp4"
        assert first.body[4:8] == b"ftyp"
        assert int(first.headers["content-length"]) == len(first.body) == task["asset_size"]
        again = download(gw, key, video_id)
        assert again.status == 200 and again.body == first.body
        assert Path(task["asset_path"]).read_bytes() == first.body
        assert [str(p) for p in files.get(video_id, [])] == [task["asset_path"]], (video_id, files.get(video_id))


def not_found_body(video_id: str) -> dict:
    shown = video_id if len(video_id) <= 80 else video_id[:80] + "\u2026"
    return {"error": {"message": f"No video found with id '{shown}'.", "type": "invalid_request_error",
                      "param": "video_id", "code": "video_not_found"}}


# ---------------------------------------------------------------- 1. kill -9 and restart


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_restart_after_kill_with_tasks_queued_and_in_progress_all_complete(paths, running, how):
    db, assets = paths
    first = start(db, assets, render=4)
    running.append(first)
    gw = first.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")

    ids = [create(gw, key, f"task {i}")["id"] for i in range(4)]
    wait_until(lambda: any(get(gw, key, i)["status"] == "in_progress" for i in ids), "a task in progress", 10)
    ids += [create(gw, key, f"late task {i}")["id"] for i in range(2)]  # still queued at the kill
    # accepted by the channel before each create answered (one killed while submitting is
    # dropped instead: test_video_billing.py)
    assert all(tasks_in_db(db)[i]["confirmed"] for i in ids)
    if how == "SIGKILL":
        first.kill9()
    else:
        first.stop()
        assert_clean_log(first)

    at_kill = tasks_in_db(db)
    assert sorted(at_kill) == sorted(ids)
    statuses = [at_kill[i]["status"] for i in ids]
    assert "in_progress" in statuses and "queued" in statuses, statuses
    assert all(s in OPEN for s in statuses), statuses  # killed before any render finished
    if how == "SIGTERM":  # a clean stop hands every lease back
        assert all(at_kill[i]["lease_owner"] is None for i in ids), at_kill
    assert not mp4_files(assets)

    second = start(db, assets, render=4)
    running.append(second)
    final = wait_final([second.gw], key, ids, timeout=60)
    assert {v["status"] for v in final.values()} == {"completed"}, final
    assert all(v["progress"] == 100 and v["completed_at"] for v in final.values())
    assert_all_completed_with_content(second.gw, key, db, assets, ids)
    listed = call(second.gw, "GET", "/v1/videos?limit=100", key).json()
    assert sorted(v["id"] for v in listed["data"]) == sorted(ids)
    second.stop()
    assert_clean_log(second)

    after = tasks_in_db(db)
    assert all(after[i]["lease_owner"] is None and after[i]["cost"] == 1.0 for i in ids)
    usage = rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")
    assert len(usage) == len(ids), usage
    assert all(u["status"] == 200 and u["model"] == MODEL for u in usage)


def test_sigkill_mid_download_leaves_one_asset_per_task_after_restart(paths, running, tmp_path):
    db, assets = paths
    sim_tmp = tmp_path / "sim-tmp"
    sim_tmp.mkdir()
    # a big render so the simulator's encode (part of the download) takes a second or more
    big = {"duration": 4, "width": 1920, "height": 1080, "fps": 24}
    first = start(db, assets, render=0.3, env={"TMPDIR": str(sim_tmp)})
    running.append(first)
    gw = first.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")
    ids = [create(gw, key, f"big {i}", **big)["id"] for i in range(2)]
    wait_until(lambda: list((assets / "tmp").glob("*.part")), "a download in progress", 20, every=0.01)
    first.kill9()

    at_kill = tasks_in_db(db)
    assert any(t["status"] in OPEN for t in at_kill.values()), at_kill
    # the dead process still holds the lease of what it was downloading: the next one
    # must see that its holder is gone rather than wait the lease (60 s) out
    assert any(t["lease_owner"] for t in at_kill.values()), at_kill

    second = start(db, assets, render=0.3, env={"TMPDIR": str(sim_tmp)})
    running.append(second)
    final = wait_final([second.gw], key, ids, timeout=40)
    assert {v["status"] for v in final.values()} == {"completed"}, final
    assert_all_completed_with_content(second.gw, key, db, assets, ids)
    second.stop()
    assert_clean_log(second)
    assert len(rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")) == len(ids)


# ---------------------------------------------------------------- 2. two processes, one database


def test_two_processes_on_one_database_finalise_each_task_exactly_once(paths, running):
    db, assets = paths
    one = start(db, assets, render=1.5)
    running.append(one)
    two = start(db, assets, render=1.5)
    running.append(two)
    one.gw.channel("sim", "simulator", [MODEL])
    key = one.gw.token("alice")
    two.gw.wait_for(lambda: MODEL in two.gw._models(key), "the second process to see the channel")

    ids = []
    for i in range(12):
        ids.append(create((one.gw, two.gw)[i % 2], key, f"shared task {i}")["id"])
        time.sleep(0.05)
    final = wait_final([one.gw, two.gw], key, ids, timeout=60)
    assert {v["status"] for v in final.values()} == {"completed"}, final
    # either process serves any task's content, the same bytes
    for video_id in ids:
        a, b = download(one.gw, key, video_id), download(two.gw, key, video_id)
        assert a.status == b.status == 200 and a.body == b.body and a.body[4:8] == b"ftyp"
    one.stop()
    two.stop()
    assert_clean_log(one)
    assert_clean_log(two)

    tasks = tasks_in_db(db)
    assert sorted(tasks) == sorted(ids)
    files = mp4_files(assets)
    assert sorted(files) == sorted(ids), files
    for video_id, task in tasks.items():
        assert task["status"] == "completed" and task["completed_at"], task
        assert task["cost"] == 1.0 and task["lease_owner"] is None
        assert Path(task["asset_path"]).is_file()
        assert [str(p) for p in files[video_id]] == [task["asset_path"]], files[video_id]
        thumbs = sorted((assets / "videos").glob(f"{video_id}-*.thumb"))
        assert [str(p) for p in thumbs] == ([task["thumbnail_path"]] if task["thumbnail_path"] else []), thumbs
    assert not list((assets / "tmp").glob("*.part"))
    usage = rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")
    assert len(usage) == len(ids), usage


def test_survivor_of_two_processes_finishes_the_tasks_of_the_one_killed(paths, running, tmp_path):
    db, assets = paths
    sim_tmp = {"TMPDIR": str(tmp_path)}  # where a killed simulator's half-written render stays
    one = start(db, assets, render=1, env=sim_tmp)
    running.append(one)
    two = start(db, assets, render=1, env=sim_tmp)
    running.append(two)
    one.gw.channel("sim", "simulator", [MODEL])
    key = one.gw.token("alice")
    two.gw.wait_for(lambda: MODEL in two.gw._models(key), "the second process to see the channel")
    # big enough that downloading (the simulator encodes then) takes a while
    big = {"duration": 3, "width": 1280, "height": 720, "fps": 24}
    ids = [create((one.gw, two.gw)[i % 2], key, f"failover {i}", **big)["id"] for i in range(6)]
    # each accepted upstream before its create answered
    assert all(tasks_in_db(db)[i]["confirmed"] for i in ids)

    def holder() -> tuple[Running, Running] | None:
        """(the process holding an unfinished task right now, the other one)"""
        owners = {t["lease_owner"] for t in tasks_in_db(db).values() if t["status"] in OPEN and t["lease_owner"]}
        for victim, survivor in ((one, two), (two, one)):
            if any(f":{victim.gw.proc.pid}:" in owner for owner in owners):
                return victim, survivor
        return None

    victim, survivor = wait_until(holder, "a process holding an unfinished task", 20, every=0.01)
    victim.kill9()

    final = wait_final([survivor.gw], key, ids, timeout=40)  # less than the lease: freed by the pid check
    assert {v["status"] for v in final.values()} == {"completed"}, final
    assert_all_completed_with_content(survivor.gw, key, db, assets, ids)
    survivor.stop()
    assert_clean_log(survivor)
    assert len(rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")) == len(ids)
    assert all(t["lease_owner"] is None for t in tasks_in_db(db).values())


# ---------------------------------------------------------------- 3. failed submission


def test_a_create_no_channel_accepted_leaves_nothing_to_submit_after_a_restart(paths, running):
    db, assets = paths
    fake = FakeOpenAI().start()
    try:
        fake.fail_with = (503, {"error": {"message": "The server is overloaded.", "type": "server_error",
                                          "param": None, "code": None}})
        first = start(db, assets)
        running.append(first)
        gw = first.gw
        gw.channel("openai", "openai", ["sora-2"], base_url=fake.base_url, key=fake.api_key)
        key = gw.token("alice")
        body = {"model": "sora-2", "prompt": "a lighthouse", "seconds": "4", "size": "720x1280"}
        reply = call(gw, "POST", "/v1/videos", key, body)
        assert reply.status == 502, reply  # every attempt failed: the create says so at once
        tried = sum(r.method == "POST" for r in fake.video_received)
        assert tried == 3  # st-ai serve's default --max-attempts
        assert tasks_in_db(db) == {}
        first.kill9()

        fake.fail_with = None
        second = start(db, assets)
        running.append(second)
        time.sleep(1.0)  # a task left behind would be submitted by now
        assert sum(r.method == "POST" for r in fake.video_received) == tried and tasks_in_db(db) == {}
        reply = call(second.gw, "POST", "/v1/videos", key, body)  # the client's retry
        assert reply.status == 200, reply
        final = wait_final([second.gw], key, [reply.json()["id"]], timeout=30)
        assert final[reply.json()["id"]]["status"] == "completed", final
        assert len(fake.videos) == 1
        second.stop()
        assert_clean_log(second)
    finally:
        fake.stop()


# ---------------------------------------------------------------- 4. timeout


def test_task_the_provider_never_finishes_fails_after_the_video_timeout(paths, running):
    db, assets = paths
    r = start(db, assets, "--video-timeout", "2", render=100)
    running.append(r)
    gw = r.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")
    video_id = create(gw, key)["id"]
    started = time.monotonic()
    video = wait_final([gw], key, [video_id], timeout=20)[video_id]
    assert time.monotonic() - started >= 1  # not before the timeout (created_at has whole seconds)
    assert video["status"] == "failed", video
    assert video["error"]["code"] == "timeout" and "2 seconds" in video["error"]["message"], video
    reply = download(gw, key, video_id)
    assert reply.status == 409, reply
    assert reply.json()["error"]["code"] == "video_not_ready"
    assert "failed" in reply.json()["error"]["message"]
    task = tasks_in_db(db)[video_id]
    assert task["lease_owner"] is None and task["asset_path"] is None and task["completed_at"] is None
    assert not mp4_files(assets)


# ---------------------------------------------------------------- 5. content: 409 and ranges


def test_content_before_completion_is_409_and_ranges_of_a_completed_video(paths, running):
    db, assets = paths
    r = start(db, assets, render=1.5)
    running.append(r)
    gw = r.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")
    video_id = create(gw, key, duration=2, width=320, height=192)["id"]

    early = download(gw, key, video_id)
    assert early.status == 409, early
    assert early.headers["content-type"].startswith("application/json")
    error = early.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "video_not_ready" and error["type"] == "invalid_request_error"
    assert "queued" in error["message"] or "in_progress" in error["message"]
    early_ranged = download(gw, key, video_id, {"Range": "bytes=0-9"})
    assert early_ranged.status == 409

    wait_final([gw], key, [video_id], timeout=30)
    full = download(gw, key, video_id)
    assert full.status == 200 and full.headers.get("accept-ranges") == "bytes"
    body = full.body
    total = len(body)
    assert total > 1000 and body[4:8] == b"ftyp"

    def ranged(header: str, first: int, last: int) -> None:
        reply = download(gw, key, video_id, {"Range": header})
        assert reply.status == 206, (header, reply)
        assert reply.headers["content-range"] == f"bytes {first}-{last}/{total}", header
        assert int(reply.headers["content-length"]) == last - first + 1
        assert reply.body == body[first:last + 1], header

    ranged("bytes=0-99", 0, 99)
    ranged("bytes=0-0", 0, 0)
    ranged("bytes=100-", 100, total - 1)
    ranged(f"bytes=500-{total + 1000}", 500, total - 1)  # the end is clamped to the size
    ranged(f"bytes={total - 1}-{total - 1}", total - 1, total - 1)
    ranged(f"bytes={total // 2}-{total // 2 + 300}", total // 2, total // 2 + 300)

    ranged("bytes=-100", total - 100, total - 1)  # a suffix: the last 100 bytes
    ranged(f"bytes=-{total + 100}", 0, total - 1)

    for bad in (f"bytes={total}-", f"bytes={total + 5}-{total + 10}", "bytes=200-100", "bytes=-0"):
        reply = download(gw, key, video_id, {"Range": bad})
        assert reply.status == 416, (bad, reply)
        assert reply.headers["content-range"] == f"bytes */{total}", bad
        assert reply.json()["error"]["code"] == "range_not_satisfiable", bad
        assert str(total) in reply.json()["error"]["message"]

    # ranges st-ai does not understand are ignored: the whole video, as HTTP allows
    for ignored in ("bytes=0-10,20-30", "items=0-10", "bytes=a-b"):
        reply = download(gw, key, video_id, {"Range": ignored})
        assert reply.status == 200 and reply.body == body, ignored

    # the thumbnail st-ai extracted is served too
    thumb = call(gw, "GET", f"/v1/videos/{video_id}/content?variant=thumbnail", key)
    assert thumb.status == 200, thumb
    assert thumb.headers["content-type"].startswith("image/") and thumb.body
    bad_variant = call(gw, "GET", f"/v1/videos/{video_id}/content?variant=../../etc/passwd", key)
    assert bad_variant.status == 400 and bad_variant.json()["error"]["param"] == "variant"


# ---------------------------------------------------------------- 6. ownership and path tricks


def test_another_tokens_task_is_indistinguishable_from_a_missing_one_and_path_tricks_are_404(paths, running):
    db, assets = paths
    r = start(db, assets, render=0.5)
    running.append(r)
    gw = r.gw
    gw.channel("sim", "simulator", [MODEL])
    alice, bob = gw.token("alice"), gw.token("bob")
    video_id = create(gw, alice)["id"]
    wait_final([gw], alice, [video_id], timeout=30)
    asset = Path(tasks_in_db(db)[video_id]["asset_path"])
    original = asset.read_bytes()
    missing = "video_" + "0" * 48

    def same_as_missing(reply: Reply, asked: str) -> None:
        assert reply.status == 404, reply
        assert reply.json() == not_found_body(asked)

    for target in (video_id, missing):
        same_as_missing(call(gw, "GET", f"/v1/videos/{target}", bob), target)
        same_as_missing(download(gw, bob, target), target)
        same_as_missing(download(gw, bob, target, {"Range": "bytes=0-10"}), target)
        same_as_missing(call(gw, "GET", f"/v1/videos/{target}/content?variant=thumbnail", bob), target)
        same_as_missing(call(gw, "DELETE", f"/v1/videos/{target}", bob), target)
        same_as_missing(call(gw, "POST", f"/v1/videos/{target}/remix", bob, {"prompt": "mine now"}), target)
    listed = call(gw, "GET", "/v1/videos", bob).json()
    assert listed["data"] == [] and listed["has_more"] is False
    assert call(gw, "GET", f"/v1/videos?after={video_id}", bob).json()["data"] == []
    # nothing bob did touched alice's task
    assert get(gw, alice, video_id)["status"] == "completed"
    assert asset.read_bytes() == original
    assert len(tasks_in_db(db)) == 1  # bob's remix created nothing

    tricks = [
        "/v1/videos/../../../../etc/passwd",
        "/v1/videos/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/v1/videos/%2e%2e%2f%2e%2e%2fetc%2fpasswd/content",
        "/v1/videos/%2e%2e/content",
        "/v1/videos/%2E%2E%2F%2E%2E%2F/content",
        "/v1/videos/..%5c..%5cetc%5cpasswd/content",
        f"/v1/videos/{video_id}%2F..%2F..%2F/content",
        f"/v1/videos/{video_id}%00/content",
        f"/v1/videos/{video_id}.mp4/content",
        f"/v1/videos/{video_id[:-1]}/content",
        f"/v1/videos/{video_id}0/content",
        f"/v1/videos/{video_id.upper()}/content",
        f"/v1/videos/{quote(str(asset), safe='')}/content",
        f"/v1/videos/{quote(asset.name, safe='')}/content",
        "/v1/videos/video_/content",
        "/v1/videos/video_" + "g" * 48 + "/content",
        "/v1/videos/" + "a" * 5000,
        "/v1/videos/" + "a" * 5000 + "/content",
        "/v1/videos/video_" + "0" * 4000 + "/content",
        "/v1/videos/%ff%fe/content",
    ]
    for path in tricks:
        for method, target in (("GET", path), ("DELETE", path.removesuffix("/content"))):
            reply = call(gw, method, target, alice)
            assert reply.status in (400, 404), (method, target, reply)
            assert reply.headers["content-type"].startswith("application/json"), (method, target)
            assert b"ftyp" not in reply.body and b"root:" not in reply.body, (method, target)
            assert "error" in reply.json(), (method, target)
        remix = call(gw, "POST", path.removesuffix("/content") + "/remix", alice, {"prompt": "x"})
        assert remix.status in (400, 404, 405), (path, remix)
    long_reply = call(gw, "GET", "/v1/videos/" + "a" * 5000, alice)
    assert long_reply.status == 404 and len(long_reply.body) < 1000
    for after in ("../../etc/passwd", "video_123", "a" * 3000):
        reply = call(gw, "GET", f"/v1/videos?after={quote(after, safe='')}", alice)
        assert reply.status == 400 and reply.json()["error"]["param"] == "after", (after, reply)

    # still there, untouched, and still alice's
    assert asset.read_bytes() == original
    assert download(gw, alice, video_id).body == original
    assert len(tasks_in_db(db)) == 1
    assert "Traceback" not in r.log, r.log[-4000:]


# ---------------------------------------------------------------- 7. delete and list


def test_delete_removes_the_stored_asset_and_the_task_then_404s(paths, running):
    db, assets = paths
    r = start(db, assets, render=0.5)
    running.append(r)
    gw = r.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")
    keep, doomed = create(gw, key, "keep me")["id"], create(gw, key, "delete me")["id"]
    wait_final([gw], key, [keep, doomed], timeout=30)
    task = tasks_in_db(db)[doomed]
    asset = Path(task["asset_path"])
    assert asset.is_file() and asset.parent == (assets / "videos").resolve()
    thumbnail = Path(task["thumbnail_path"]) if task["thumbnail_path"] else None

    reply = call(gw, "DELETE", f"/v1/videos/{doomed}", key)
    assert reply.status == 200, reply
    assert reply.json() == {"id": doomed, "object": "video.deleted", "deleted": True}
    assert not asset.exists()
    assert thumbnail is None or not thumbnail.exists()
    assert list(mp4_files(assets)) == [keep]
    for method, path in (("GET", f"/v1/videos/{doomed}"), ("GET", f"/v1/videos/{doomed}/content"),
                         ("DELETE", f"/v1/videos/{doomed}")):
        reply = call(gw, method, path, key)
        assert reply.status == 404 and reply.json() == not_found_body(doomed), (method, path, reply)
    assert [v["id"] for v in call(gw, "GET", "/v1/videos", key).json()["data"]] == [keep]
    assert download(gw, key, keep).status == 200


def test_delete_while_in_progress_stores_no_asset_and_books_nothing(paths, running):
    db, assets = paths
    r = start(db, assets, render=1.5)
    running.append(r)
    gw = r.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")
    doomed, kept = create(gw, key, "doomed")["id"], create(gw, key, "kept")["id"]
    wait_until(lambda: get(gw, key, doomed)["status"] == "in_progress", "the task in progress", 10)
    assert call(gw, "DELETE", f"/v1/videos/{doomed}", key).status == 200
    assert get(gw, key, kept)["status"] in OPEN
    wait_final([gw], key, [kept], timeout=30)
    time.sleep(1)  # a poll of the deleted task that was under way has finished too
    assert call(gw, "GET", f"/v1/videos/{doomed}", key).status == 404
    assert list(mp4_files(assets)) == [kept]
    assert not list((assets / "videos").glob(f"{doomed}-*"))
    task = tasks_in_db(db)[doomed]
    assert task["asset_path"] is None and task["status"] in OPEN, task
    r.stop()
    assert len(rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")) == 1


def test_list_shows_own_tasks_newest_first_with_after_limit_order_and_has_more(paths, running):
    db, assets = paths
    r = start(db, assets, render=0.5)
    running.append(r)
    gw = r.gw
    gw.channel("sim", "simulator", [MODEL])
    alice, bob = gw.token("alice"), gw.token("bob")
    mine = []
    for i in range(5):
        mine.append(create(gw, alice, f"alice {i}")["id"])
        if i == 2:
            create(gw, bob, "bob's")  # interleaved: must never show up in alice's list
    newest_first = mine[::-1]

    def page(query: str, key: str = alice) -> dict:
        reply = call(gw, "GET", f"/v1/videos{query}", key)
        assert reply.status == 200, (query, reply)
        return reply.json()

    whole = page("")
    assert whole["object"] == "list" and whole["has_more"] is False
    assert [v["id"] for v in whole["data"]] == newest_first
    assert whole["first_id"] == newest_first[0] and whole["last_id"] == newest_first[-1]
    assert all(v["object"] == "video" and v["model"] == MODEL for v in whole["data"])

    seen, after = [], ""
    for expected_more in (True, True, False):
        p = page(f"?limit=2{after}")
        seen += [v["id"] for v in p["data"]]
        assert p["has_more"] is expected_more, p
        after = f"&after={p['last_id']}"
    assert seen == newest_first

    asc = page("?order=asc&limit=3")
    assert [v["id"] for v in asc["data"]] == mine[:3] and asc["has_more"] is True
    rest = page(f"?order=asc&limit=3&after={asc['last_id']}")
    assert [v["id"] for v in rest["data"]] == mine[3:] and rest["has_more"] is False
    assert page(f"?limit=5&after={mine[0]}")["data"] == []  # nothing is older than the first
    assert [v["id"] for v in page("?limit=5")["data"]] == newest_first
    assert page("?limit=4")["has_more"] is True

    bobs = page("", bob)
    assert len(bobs["data"]) == 1 and bobs["data"][0]["prompt"] == "bob's"
    assert page(f"?after={bobs['data'][0]['id']}")["data"] == []  # bob's id is no anchor for alice

    for query, param in (("?limit=101", "limit"), ("?limit=-1", "limit"), ("?order=sideways", "order"),
                         ("?limit=ten", "limit")):
        reply = call(gw, "GET", f"/v1/videos{query}", alice)
        assert reply.status == 400 and reply.json()["error"]["param"] == param, (query, reply)

    # deleted tasks leave the list; paging still works around them
    assert call(gw, "DELETE", f"/v1/videos/{mine[2]}", alice).status == 200
    left = [i for i in newest_first if i != mine[2]]
    assert [v["id"] for v in page("")["data"]] == left
    assert [v["id"] for v in page(f"?after={mine[2]}")["data"]] == mine[:2][::-1]


def test_task_completed_just_before_sigkill_keeps_its_usage_row(paths, running):
    """The usage row is booked with the finalisation itself: a crash right after a task
    completes must not leave a finished (and downloadable) video that was never booked."""
    db, assets = paths
    first = start(db, assets, render=0.5)
    running.append(first)
    gw = first.gw
    gw.channel("sim", "simulator", [MODEL])
    key = gw.token("alice")
    video_id = create(gw, key)["id"]
    deadline = time.monotonic() + 20
    while tasks_in_db(db)[video_id]["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.005)
    first.kill9()  # at once: well inside any batching interval
    assert tasks_in_db(db)[video_id]["status"] == "completed"
    usage = rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")
    assert len(usage) == 1, usage

    # and a restart does not book it a second time
    second = start(db, assets, render=0.5)
    running.append(second)
    assert get(second.gw, key, video_id)["status"] == "completed"
    time.sleep(1.5)
    second.stop()
    assert len(rows(db, "SELECT * FROM ledger WHERE kind = 'video' AND status = 200")) == 1


async def test_the_sweep_removes_stale_partial_downloads_and_old_images(tmp_path):
    import os
    import time as clock

    from server.assets import AssetStore

    assets = AssetStore(str(tmp_path / "assets"))
    stale = assets.root / "tmp" / "old.mp4.part"
    fresh = assets.root / "tmp" / "new.mp4.part"
    old_image = assets.root / "images" / "img_old.png"
    new_image = assets.root / "images" / "img_new.png"
    for path in (stale, fresh, old_image, new_image):
        path.write_bytes(b"x")
    long_ago = clock.time() - 7200
    os.utime(stale, (long_ago, long_ago))
    os.utime(old_image, (long_ago, long_ago))
    await assets.remove_stale_partials(3600)
    await assets.remove_old_images(3600)
    assert not stale.exists() and not old_image.exists()
    assert fresh.exists() and new_image.exists()
