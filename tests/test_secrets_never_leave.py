"""No secret of a channel leaves st-ai: hostile upstreams (tests/fakes/echoing_upstream.py)
put their key, key parts, the credentials st-ai sent (Kling's JWT), their Host header,
`host:port` and URL, in several cases and encodings, into every field of every error
shape they have. A real `st-ai serve` at DEBUG relays chat (plain and streamed),
images and videos (submit and poll failures) to them; then every response body, every
row and the raw bytes of the database and its WAL, and every log line are searched for
each secret in each form."""
from __future__ import annotations

import base64
import json
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import grpc
import pytest

from server.store.db import open_db
from st_ai.v1 import chat_pb2, chat_pb2_grpc
from server.upstream_errors import KNOWN_TYPES
from tests.conftest import Gateway, start_gateway, stop_gateway
from tests.fakes.echoing_upstream import POLL_SHAPES, SHAPES, STREAM_SHAPES, EchoingUpstream

POLL = 0.1
DEADLINE = 20.0  # seconds for every poll-failure task to end
MODELS = {"openai": "echo-openai", "kling": "echo-kling", "runway": "echo-runway"}
UPSTREAM_MODEL = {"openai": "sora-2", "kling": "kling-v1", "runway": "gen4.5"}


def _mixed_case(text: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(text))


class Probe:
    """The gateway, its three hostile upstreams, and everything st-ai said."""

    def __init__(self, tmp: Path) -> None:
        hexes = [uuid.uuid4().hex for _ in range(4)]
        self.fakes = {
            "openai": EchoingUpstream("openai", "sk-" + _mixed_case(hexes[0] + hexes[1])).start(),
            "kling": EchoingUpstream("kling", f"Ak{_mixed_case(hexes[1])}:Sk{_mixed_case(hexes[2])}").start(),
            "runway": EchoingUpstream("runway", "key_" + _mixed_case(hexes[3] * 2)).start(),
        }
        self.db_path = str(tmp / "st-ai.db")
        open_db(self.db_path).close()
        # every failing shape goes through one channel: its circuit breaker must not trip
        self.gw: Gateway = start_gateway(self.db_path, "--video-poll-interval", str(POLL),
                                         "--cooldown-failures", "1000",
                                         env={"ST_AI_LOG_LEVEL": "DEBUG"})
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        for kind, fake in self.fakes.items():
            model = MODELS[kind]
            self.gw.channel(f"echo-{kind}", kind, [model], base_url=fake.base_url, key=fake.key,
                            model_map={model: UPSTREAM_MODEL[kind]} if kind != "openai" else None)
        self.key = self.gw.token("prober")
        self.responses: list[tuple[str, int, str]] = []  # (what, status, body)

    def _read_log(self) -> None:
        for line in self.gw.proc.stdout:
            self.log.append(line)

    def call(self, what: str, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        request = urllib.request.Request(
            self.gw.http_url + path, method=method, data=json.dumps(body).encode() if body else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode("utf-8", "replace")
        self.responses.append((what, status, text))
        if re.search(r"-40[13](-|$)", what):
            self._back_in_service()
        return status, text

    def _back_in_service(self, wait: float = 2.0) -> None:
        """A rejected key disables its channel (server/core/channel_health.py); the next
        shapes need it, so the operator enables it again, as `st-ai channel enable` would."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.gw.enable_auto_disabled():
                self.gw.wait_for(lambda: all(m in self.gw._models(self.key) for m in MODELS.values()),
                                 "the channels to be routed again")
                return
            time.sleep(0.05)

    def call_grpc(self, what: str, shape: str, stream: bool) -> None:
        """A chat over gRPC; the failure's status message and trailing metadata (with its
        ErrorDetail) are kept as the response body."""
        request = chat_pb2.ChatCompletionRequest(model=MODELS["openai"], messages=[
            chat_pb2.ChatMessage(role="user", text=f"Please answer. shape={shape}")])
        metadata = (("authorization", f"Bearer {self.key}"),)
        with grpc.insecure_channel(self.gw.grpc_target) as channel:
            stub = chat_pb2_grpc.ChatStub(channel)
            try:
                if stream:
                    list(stub.StreamChatCompletion(request, metadata=metadata, timeout=15))
                else:
                    stub.CreateChatCompletion(request, metadata=metadata, timeout=15)
            except grpc.RpcError as error:
                trailers = b"".join(value if isinstance(value, bytes) else value.encode()
                                    for _, value in error.trailing_metadata() or ())
                self.responses.append((what, 400 if error.code() != grpc.StatusCode.INTERNAL else 500,
                                       json.dumps({"error": {"message": error.details(), "type": "grpc",
                                                             "param": None, "code": None},
                                                   "trailers": trailers.decode("latin-1")})))
                return
        raise AssertionError(f"{what}: the gRPC call did not fail")

    def secret_forms(self) -> dict[str, str]:
        """name -> a secret as it must appear nowhere (compared case-insensitively)."""
        forms: dict[str, str] = {}
        for kind, fake in self.fakes.items():
            host = f"127.0.0.1:{fake.port}"
            key = fake.key
            forms |= {f"{kind} key": key, f"{kind} key cut": key[3:19], f"{kind} key end": key[-16:],
                      f"{kind} host:port": host,
                      f"{kind} base url": fake.base_url, f"{kind} host:port encoded": quote(host, safe=""),
                      f"{kind} key encoded": quote(key, safe=""),
                      f"{kind} key base64": base64.b64encode(key.encode()).decode().rstrip("=")}
            for i, part in enumerate(key.split(":") if ":" in key else []):
                forms[f"{kind} key part {i}"] = part
            for i, auth in enumerate(sorted(fake.seen_credentials)):
                forms[f"{kind} credential {i} ({auth[:12]}...)"] = auth.partition(" ")[2]
        return forms

    def close(self) -> None:
        stop_gateway(self.gw)
        self._reader.join(5)
        for fake in self.fakes.values():
            fake.stop()


def _leaks(text: str, forms: dict[str, str]) -> list[str]:
    lowered = text.lower()
    return [name for name, form in forms.items() if form and form.lower() in lowered]


def _shape_message(shape: str) -> list[dict]:
    return [{"role": "user", "content": f"Please answer. shape={shape}"}]


def _wait_failed(probe: Probe, video_id: str) -> dict:
    """The video once it has ended (failed, or completed)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        status, text = probe.call(f"poll {video_id}", "GET", f"/v1/videos/{video_id}")
        video = json.loads(text)
        if video.get("status") in ("failed", "completed"):
            return video
        time.sleep(POLL)
    raise AssertionError(f"video {video_id} did not end within {DEADLINE}s: {video}")


def _ended(probe: Probe, tasks: dict, wait: float = 8.0) -> dict:
    """Those of `tasks` (where -> video id) that end within `wait` seconds, as they ended."""
    ended: dict = {}
    deadline = time.monotonic() + wait
    while len(ended) < len(tasks) and time.monotonic() < deadline:
        for where, video_id in tasks.items():
            if where not in ended:
                video = json.loads(probe.call(f"poll {video_id}", "GET", f"/v1/videos/{video_id}")[1])
                if video.get("status") in ("failed", "completed"):
                    ended[where] = video
        time.sleep(POLL)
    return ended


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Runs every shape on every endpoint once; the tests below read what came back."""
    probe = Probe(tmp_path_factory.mktemp("secrets"))
    try:
        openai_model = MODELS["openai"]
        for shape in SHAPES["openai"]:
            probe.call(f"chat {shape}", "POST", "/v1/chat/completions",
                       {"model": openai_model, "messages": _shape_message(shape)})
            probe.call(f"chat stream {shape}", "POST", "/v1/chat/completions",
                       {"model": openai_model, "stream": True, "messages": _shape_message(shape)})
            probe.call(f"images {shape}", "POST", "/v1/images/generations",
                       {"model": openai_model, "prompt": f"A fox. shape={shape}"})
        for shape in STREAM_SHAPES:
            probe.call(f"chat stream {shape}", "POST", "/v1/chat/completions",
                       {"model": openai_model, "stream": True, "messages": _shape_message(shape)})
        for shape in ("json-400", "string-400", "json-422", "json-404", "midstream", "first-event"):
            if shape not in STREAM_SHAPES:
                probe.call_grpc(f"grpc chat {shape}", shape, stream=False)
            probe.call_grpc(f"grpc chat stream {shape}", shape, stream=True)
        submitted = {}
        for kind, shapes in SHAPES.items():
            for shape in shapes:
                status, text = probe.call(f"video submit {kind} {shape}", "POST", "/v1/videos",
                                          {"model": MODELS[kind], "prompt": f"A cat. shape={shape}"})
                if status == 200:  # accepted (a refusal is the create's own answer)
                    submitted[(kind, f"submit-{shape}")] = json.loads(text)["id"]
        failed = {}
        for kind, shapes in POLL_SHAPES.items():
            for shape in shapes:
                status, text = probe.call(f"video create {kind} {shape}", "POST", "/v1/videos",
                                          {"model": MODELS[kind], "prompt": f"A cat. shape={shape}"})
                assert status == 200, (kind, shape, text)
                failed[(kind, shape)] = json.loads(text)["id"]
        status, text = probe.call("video create to remix", "POST", "/v1/videos",
                                  {"model": openai_model, "prompt": "A dog. shape=poll-completed"})
        source = json.loads(text)["id"]
        probe.videos = {where: _wait_failed(probe, video_id) for where, video_id in failed.items()}
        probe.refused = _ended(probe, submitted)
        assert _wait_failed(probe, source)["status"] == "completed"
        remixed = {}
        for shape in ("json-400", "string-400", "json-404", "json-422"):
            status, text = probe.call(f"video remix {shape}", "POST", f"/v1/videos/{source}/remix",
                                      {"prompt": f"Now at night. shape={shape}"})
            if status == 200:
                remixed[("openai", f"remix-{shape}")] = json.loads(text)["id"]
        probe.refused |= _ended(probe, remixed)
        probe.call("video list", "GET", "/v1/videos?limit=100")
        db = Path(probe.db_path)
        probe.stored_while_running = db.read_bytes() + Path(f"{db}-wal").read_bytes()
    finally:
        probe.close()
    yield probe


def test_every_error_shape_was_answered_as_an_openai_error_without_a_500(probed):
    errors = [(what, status, text) for what, status, text in probed.responses if status >= 400]
    assert len(errors) + len(probed.refused) > 60, "the probe sent fewer failing calls than it should"
    for what, status, text in errors:
        assert status != 500, (what, text)
        error = json.loads(text)["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], (what, error)


def test_no_secret_in_any_response_body(probed):
    forms = probed.secret_forms()
    assert any("credential" in name for name in forms), "the fakes saw no credentials"
    for what, status, text in probed.responses:
        assert not _leaks(text, forms), (what, status, _leaks(text, forms), text)


def test_upstream_type_code_and_param_are_st_ais_not_the_upstreams(probed):
    for what, status, text in probed.responses:
        if status < 400:
            continue
        error = json.loads(text)["error"]
        assert error["type"] in KNOWN_TYPES | {"grpc"}, (what, error)
        if status < 500 and status != 429 and not what.startswith("grpc"):  # the client's fault
            assert error["type"] == "invalid_request_error", (what, error)
        assert error["code"] is None or re.fullmatch(r"[a-z_]+", error["code"]), (what, error)
        # the client's requests name model, messages, prompt, stream: nothing else
        assert error["param"] in (None, "model", "messages", "prompt", "stream"), (what, error)


def test_no_secret_in_refused_creates_and_failed_videos_and_their_messages_are_kept(probed):
    forms = probed.secret_forms()
    refusals = [(what, text) for what, status, text in probed.responses
                if what.startswith(("video submit ", "video remix ")) and status >= 400]
    assert len(refusals) >= 15, "too few submissions were refused: the search would prove little"
    for what, text in refusals:  # a refused submission is the create's (or remix's) answer
        assert not _leaks(text, forms), (what, text)
    for (kind, shape), video in (probed.videos | probed.refused).items():
        assert video["status"] == "failed", (kind, shape, video)
        assert not _leaks(json.dumps(video), forms), (kind, shape, video)
        assert re.fullmatch(r"[a-z_]+", video["error"]["code"]), video["error"]
        if shape == "poll-failed":  # the provider's own failure text is shown, scrubbed
            assert "Failed calling ***" in video["error"]["message"], video["error"]


def test_no_secret_in_any_database_row(probed):
    forms = probed.secret_forms()
    db = sqlite3.connect(probed.db_path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert "videos" in tables and "usage" in tables
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            columns = [c[0] for c in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row):
                    if table == "channels" and column in ("key", "base_url"):
                        continue  # where the operator stored them
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    assert not _leaks(text, forms), (table, column, _leaks(text, forms))
    finally:
        db.close()


def test_no_secret_in_the_raw_database_and_wal_bytes(probed):
    """Raw bytes catch what rows hide (freed pages, old WAL frames). Each channel's own
    row holds its base URL and key side by side; that one place is cut out first."""
    forms = probed.secret_forms()
    db = Path(probed.db_path)
    raw = probed.stored_while_running + db.read_bytes()
    if Path(f"{db}-wal").exists():
        raw += Path(f"{db}-wal").read_bytes()
    for fake in probed.fakes.values():
        stored = (fake.base_url + fake.key).encode()
        assert stored in raw, "the channel row is not where this test expects it"
        raw = raw.replace(stored, b"")
    text = raw.decode("latin-1")
    assert not _leaks(text, forms), _leaks(text, forms)


def test_no_secret_in_the_gateway_log(probed):
    forms = probed.secret_forms()
    log = "".join(probed.log)
    assert " DEBUG " in log or " INFO " in log, "the gateway logged nothing: the search would prove nothing"
    for line in probed.log:
        assert not _leaks(line, forms), (_leaks(line, forms), line)


def test_404_or_405_on_a_channel_endpoint_is_a_502_naming_the_channel_in_the_log(probed):
    for what, status, text in probed.responses:
        if what.startswith(("chat ", "images ", "video submit ")) and re.search(r"-40[45](-|$)", what):
            error = json.loads(text)["error"]
            assert status == 502 and error["type"] == "upstream_error" and error["code"] == "upstream_error", \
                (what, status, error)
    # a video is submitted before its create answers: the create itself is that 502
    assert len([what for what, _, _ in probed.responses
                if what.startswith("video submit ") and re.search(r"-40[45](-|$)", what)]) == 6
    log = "".join(probed.log)
    for kind in probed.fakes:
        assert re.search(rf"channel 'echo-{kind}' is misconfigured", log), kind


def test_404_polling_a_known_task_stays_a_task_level_not_found(probed):
    # Kling says which task it lacks by its service code 1203, which st-ai reports as the upstream's refusal
    for kind, shape, code in (("openai", "poll-json-404", "not_found"), ("runway", "poll-rw-404", "not_found"),
                              ("kling", "poll-env-404-1203", "upstream_error")):
        video = probed.videos[(kind, shape)]
        assert video["error"]["code"] == code, (kind, video["error"])
        assert "could not serve this request" not in video["error"]["message"], (kind, video["error"])
